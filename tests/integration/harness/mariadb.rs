//! A real MariaDB server for a test: `mariadb-install-db` into a temp datadir, `mariadbd` on a
//! free loopback port, an application user created over the unix socket (root may only log in
//! there), killed and removed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for, TempDir};

pub struct MariaDb {
    pub port: u16,
    child: Option<Child>,
    socket: String,
    server: Command,
    /// The CA of its certificate, when it takes TLS only.
    tls_ca: Option<std::path::PathBuf>,
    dir: TempDir,
}

fn require(bin: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
        let p = format!("{dir}/{bin}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("`{bin}` not found: install mariadb-server (scripts/install-deps.sh does)");
}

impl MariaDb {
    pub fn start() -> MariaDb {
        MariaDb::start_with(None)
    }

    /// TLS only (`require_secure_transport`), with the certificate of `certs` (`server.pem`,
    /// `server.key`, signed by `ca.pem`); the app user must use TLS too.
    pub fn start_secure(certs: &std::path::Path) -> MariaDb {
        MariaDb::start_with(Some(certs))
    }

    fn start_with(certs: Option<&std::path::Path>) -> MariaDb {
        let install = require("mariadb-install-db");
        let server = require("mariadbd");
        let dir = TempDir::new("mariadb");
        let data = dir.0.join("data");
        let socket = dir.0.join("sock").display().to_string();
        // Its temporary files in its own dir: in the shared /tmp, a bootstrap's temporary
        // table vanished once under the full suite (ENOENT, "Unknown table mysql.tmp_user_sys").
        let tmp = dir.0.join("tmp");
        std::fs::create_dir_all(&tmp).expect("mariadb tmpdir");
        let out = Command::new(&install)
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=socket",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut command = Command::new(&server);
        command
            .args([
                "--no-defaults",
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--max-connections=500",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--socket={socket}"))
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", dir.0.join("pid").display()));
        if let Some(c) = certs {
            command
                .arg(format!("--ssl-cert={}", c.join("server.pem").display()))
                .arg(format!("--ssl-key={}", c.join("server.key").display()))
                .arg(format!("--ssl-ca={}", c.join("ca.pem").display()))
                .arg("--require-secure-transport=ON");
        }
        let mut db = MariaDb {
            port,
            child: None,
            socket,
            server: command,
            tls_ca: certs.map(|c| c.join("ca.pem")),
            dir,
        };
        db.resume();
        db.sql_root(&format!(
            "CREATE DATABASE cron; \
             CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-pw'{}; \
             GRANT ALL ON cron.* TO 'app'@'127.0.0.1';",
            if certs.is_some() { " REQUIRE SSL" } else { "" }
        ))
        .expect("create app user");
        db
    }

    /// `cronvisor migrate` against this database; its stdout.
    pub fn migrate(&self) -> String {
        let out = Command::new(super::BIN)
            .arg("migrate")
            .env("CRONVISOR_STORE_URL", self.url())
            .output()
            .expect("run cronvisor migrate");
        assert!(
            out.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Stops the server hard (SIGKILL), as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) on the same port and data, and waits until it answers.
    pub fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join("mariadbd.log"))
            .expect("log");
        let child = self
            .server
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        wait_for(
            Duration::from_secs(30),
            "mariadbd to accept connections",
            || self.sql_root("SELECT 1").ok(),
        );
    }

    /// Runs SQL as root over the unix socket; stdout on success.
    pub fn sql_root(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(require("mariadb"))
            .args(["--no-defaults", "-u", "root", "-N", "-B"])
            .arg(format!("--socket={}", self.socket))
            .arg("-e")
            .arg(sql)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    pub fn url(&self) -> String {
        match &self.tls_ca {
            None => format!("mysql://app:app-pw@127.0.0.1:{}/cron", self.port),
            Some(ca) => format!(
                "mysql://app:app-pw@127.0.0.1:{}/cron?ssl-mode=verify_identity&ssl-ca={}",
                self.port,
                ca.display()
            ),
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}
