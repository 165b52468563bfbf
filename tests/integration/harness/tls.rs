//! A real https server for the TLS tests: Python's `http.server` behind `ssl`, serving a
//! certificate for 127.0.0.1 signed by a throwaway CA that `openssl` makes in a temp dir.
//! Every request is appended to a log as a JSON line; every answer is 200 "hello over tls".

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::TempDir;

const SERVER: &str = r#"
import http.server, json, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n).decode('utf-8', 'replace')
        with open(sys.argv[3], 'a') as log:
            log.write(json.dumps({'method': self.command, 'path': self.path, 'body': body}) + '\n')
        out = b'hello over tls'
        self.send_response(200)
        self.send_header('Content-Length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = answer
    def log_message(self, *args):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print('ready', server.server_address[1], flush=True)
server.serve_forever()
"#;

pub struct TlsServer {
    pub port: u16,
    /// The CA that signed the server's certificate (PEM), for `tls.ca_file`.
    pub ca: PathBuf,
    log: PathBuf,
    child: Child,
    _dir: TempDir,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA (`ca.pem`) and a certificate for 127.0.0.1 it signed (`server.pem`,
/// `server.key`, 0600) in `d`; `prefix` names a second certificate of the same CA.
pub fn make_certificates(d: &std::path::Path, prefix: &str) {
    make_certificate(d, prefix, "IP:127.0.0.1");
}

/// As [`make_certificates`], the certificate naming `names` (`DNS:e1,IP:127.0.0.1`).
pub fn make_certificate(d: &std::path::Path, prefix: &str, names: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if !d.join("ca.pem").exists() {
        let mut ca = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=cronvisor test CA",
        ];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        openssl(d, &ca);
    }
    let (key, csr, pem) = (
        format!("{prefix}.key"),
        format!("{prefix}.csr"),
        format!("{prefix}.pem"),
    );
    let mut req = vec!["req", "-subj", "/CN=127.0.0.1"];
    req.extend(ec);
    req.extend(["-keyout", key.as_str(), "-out", csr.as_str()]);
    openssl(d, &req);
    std::fs::write(
        d.join("server.ext"),
        format!(
            "subjectAltName = {names}\nbasicConstraints = CA:FALSE\n\
             extendedKeyUsage = serverAuth, clientAuth\n"
        ),
    )
    .expect("write server.ext");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            &pem,
        ],
    );
    std::fs::set_permissions(
        d.join(&key),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod key");
}

impl TlsServer {
    pub fn start() -> TlsServer {
        let dir = TempDir::new("tls");
        make_certificates(&dir.0, "server");
        let certs = dir.0.clone();
        TlsServer::serving(&certs, "server", dir)
    }

    /// A server presenting the certificate `prefix` of the CA in `certs`, logging in `dir`.
    pub fn serving(certs: &std::path::Path, prefix: &str, dir: TempDir) -> TlsServer {
        let d = dir.0.as_path();
        let log = d.join("requests.jsonl");
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(certs.join(format!("{prefix}.pem")))
            .arg(certs.join(format!("{prefix}.key")))
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        // Readiness: the server prints its port once it listens; bounded by a channel timeout.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the https server did not start: {line:?}");
        };
        TlsServer {
            port,
            ca: certs.join("ca.pem"),
            log,
            child,
            _dir: dir,
        }
    }

    /// The requests received so far: `{method, path, body}` each.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
