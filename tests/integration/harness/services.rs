//! Real etcd and Redis servers for the cluster tests, each on free loopback ports with its own
//! temp data dir, started as plain child processes (no systemd here). Each can be stopped and
//! started again on the same port and data, to inject faults; all are killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for, TempDir};

/// The path of a server binary, or a panic naming the package that provides it: a test that
/// needs a real server never skips silently.
pub fn require(bin: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = PathBuf::from(dir).join(bin);
        if p.exists() {
            return p;
        }
    }
    panic!("`{bin}` not found: install {package} (scripts/install-deps.sh does)");
}

/// A server process with the command that (re)starts it.
struct Server {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// Stops it hard (SIGKILL) and reaps it, so the port is free when this returns.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// redis-server on a free loopback port, no persistence.
pub struct Redis {
    pub port: u16,
    server: Server,
    _dir: TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        let program = require("redis-server", "redis-server");
        let dir = TempDir::new("redis");
        let port = free_port();
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.0.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut r = Redis {
            port,
            server: Server {
                name: "redis-server",
                program,
                args,
                log: dir.0.join("redis.log"),
                child: None,
            },
            _dir: dir,
        };
        r.resume();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts it again on the same port and waits until it answers.
    pub fn resume(&mut self) {
        self.server.spawn();
        wait_for(Duration::from_secs(20), "redis-server to answer", || {
            self.cli(&["PING"]).filter(|o| o.trim() == "PONG")
        });
    }

    /// Runs redis-cli against it; stdout on success.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(require("redis-cli", "redis-tools"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }
}

/// A one-member etcd cluster on free loopback ports.
pub struct Etcd {
    pub port: u16,
    server: Server,
    _dir: TempDir,
}

impl Etcd {
    pub fn start() -> Etcd {
        let program = require("etcd", "etcd-server");
        let dir = TempDir::new("etcd");
        let port = free_port();
        let peer = free_port();
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let args = vec![
            "--name".to_string(),
            "t".to_string(),
            "--data-dir".to_string(),
            dir.0.join("data").display().to_string(),
            "--listen-client-urls".to_string(),
            client_url.clone(),
            "--advertise-client-urls".to_string(),
            client_url,
            "--listen-peer-urls".to_string(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".to_string(),
            peer_url.clone(),
            "--initial-cluster".to_string(),
            format!("t={peer_url}"),
            "--log-level".to_string(),
            "warn".to_string(),
        ];
        let mut e = Etcd {
            port,
            server: Server {
                name: "etcd",
                program,
                args,
                log: dir.0.join("etcd.log"),
                child: None,
            },
            _dir: dir,
        };
        e.resume();
        e
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts it again on the same ports and data and waits until it serves.
    pub fn resume(&mut self) {
        self.server.spawn();
        wait_for(Duration::from_secs(30), "etcd to serve", || {
            self.ctl(&["endpoint", "health"])
        });
    }

    /// Runs etcdctl (v3 API) against it; stdout on success.
    pub fn ctl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(require("etcdctl", "etcd-client"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .arg("--command-timeout=2s")
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// The keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.ctl(&["get", "--prefix", "--keys-only", prefix])
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}
