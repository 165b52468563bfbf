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
    /// redis-cli's arguments for TLS and the user, when it has them.
    cli_auth: Vec<String>,
    /// `redis://`, or `rediss://user:password@`.
    url_start: String,
    _dir: TempDir,
}

/// How a secured server is reached: the CA of its certificate, and a user's credentials.
pub struct Secured {
    /// `ca.pem`, `server.pem`, `server.key` (see `tls::make_certificates`).
    pub certs: PathBuf,
    pub user: &'static str,
    pub password: &'static str,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(None)
    }

    /// TLS only (no plain port), and the default user off: only `user` with its password.
    pub fn start_secure(s: &Secured) -> Redis {
        Redis::start_with(Some(s))
    }

    fn start_with(secured: Option<&Secured>) -> Redis {
        let program = require("redis-server", "redis-server");
        let dir = TempDir::new("redis");
        let port = free_port();
        let mut args: Vec<String> = Vec::new();
        let mut cli_auth = Vec::new();
        match secured {
            None => args.extend(["--port".to_string(), port.to_string()]),
            Some(s) => {
                let f = |n: &str| s.certs.join(n).display().to_string();
                args.extend(
                    [
                        "--port",
                        "0",
                        "--tls-port",
                        &port.to_string(),
                        "--tls-cert-file",
                        &f("server.pem"),
                        "--tls-key-file",
                        &f("server.key"),
                        "--tls-ca-cert-file",
                        &f("ca.pem"),
                        "--tls-auth-clients",
                        "optional",
                        "--user",
                        "default",
                        "off",
                        "--user",
                        s.user,
                        "on",
                        &format!(">{}", s.password),
                        "~*",
                        "&*",
                        "+@all",
                    ]
                    .map(str::to_string),
                );
                cli_auth.extend(
                    [
                        "--tls",
                        "--cacert",
                        &f("ca.pem"),
                        "--user",
                        s.user,
                        "--pass",
                        s.password,
                        "--no-auth-warning",
                    ]
                    .map(str::to_string),
                );
            }
        }
        args.extend(
            [
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir.0.display().to_string(),
            ]
            .map(|s| s.to_string()),
        );
        let url_start = match secured {
            None => "redis://".to_string(),
            Some(s) => format!("rediss://{}:{}@", s.user, s.password),
        };
        let mut r = Redis {
            port,
            cli_auth,
            url_start,
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
        format!("{}127.0.0.1:{}/0", self.url_start, self.port)
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
            .args(&self.cli_auth)
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
    scheme: &'static str,
    /// etcdctl's arguments for TLS and the user, when it has them.
    ctl_auth: Vec<String>,
    _dir: TempDir,
}

impl Etcd {
    pub fn start() -> Etcd {
        Etcd::start_with(None)
    }

    /// https only, with auth enabled: `root` and `user` (read-write on `/cronvisor`) have
    /// `password`.
    pub fn start_secure(s: &Secured) -> Etcd {
        let mut e = Etcd::start_with(Some(s));
        let role_cmds: [&[&str]; 6] = [
            &[
                "user",
                "add",
                "root",
                &format!("--new-user-password={}", s.password),
            ],
            &["role", "add", "cronvisor"],
            &[
                "role",
                "grant-permission",
                "cronvisor",
                "--prefix=true",
                "readwrite",
                "/cronvisor",
            ],
            &[
                "user",
                "add",
                s.user,
                &format!("--new-user-password={}", s.password),
            ],
            &["user", "grant-role", s.user, "cronvisor"],
            &["auth", "enable"],
        ];
        for args in role_cmds {
            assert!(e.ctl(args).is_some(), "etcdctl {args:?}");
        }
        e.ctl_auth.push(format!("--user=root:{}", s.password));
        e
    }

    fn start_with(secured: Option<&Secured>) -> Etcd {
        let program = require("etcd", "etcd-server");
        let dir = TempDir::new("etcd");
        let port = free_port();
        let peer = free_port();
        let scheme = if secured.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{port}");
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
        let mut args = args;
        let mut ctl_auth = Vec::new();
        if let Some(s) = secured {
            let f = |n: &str| s.certs.join(n).display().to_string();
            args.extend([
                format!("--cert-file={}", f("server.pem")),
                format!("--key-file={}", f("server.key")),
            ]);
            ctl_auth.push(format!("--cacert={}", f("ca.pem")));
        }
        let mut e = Etcd {
            port,
            scheme,
            ctl_auth,
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
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
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
            .args(&self.ctl_auth)
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
