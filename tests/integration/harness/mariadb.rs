//! A real MariaDB server for a test: `mariadb-install-db` into a temp datadir, `mariadbd` on a
//! free loopback port, an application user created over the unix socket (root may only log in
//! there), killed and removed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for, TempDir};

pub struct MariaDb {
    pub port: u16,
    child: Child,
    socket: String,
    _dir: TempDir,
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
        let install = require("mariadb-install-db");
        let server = require("mariadbd");
        let dir = TempDir::new("mariadb");
        let data = dir.0.join("data");
        let socket = dir.0.join("sock").display().to_string();
        let out = Command::new(&install)
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=socket",
            ])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = Command::new(&server)
            .args([
                "--no-defaults",
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={socket}"))
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", dir.0.join("pid").display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("mariadbd.log")).expect("log"))
            .spawn()
            .expect("start mariadbd");
        let db = MariaDb {
            port,
            child,
            socket,
            _dir: dir,
        };
        wait_for(
            Duration::from_secs(30),
            "mariadbd to accept connections",
            || db.sql_root("SELECT 1").ok(),
        );
        db.sql_root(
            "CREATE DATABASE cron; \
             CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-pw'; \
             GRANT ALL ON cron.* TO 'app'@'127.0.0.1';",
        )
        .expect("create app user");
        db
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
        format!("mysql://app:app-pw@127.0.0.1:{}/cron", self.port)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
