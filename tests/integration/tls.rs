//! Outbound https: HTTP jobs and webhooks reach a real TLS server whose CA the operator
//! configured (`tls.ca_file`), and a certificate for another name is refused.

use std::time::Duration;

use crate::harness::tls::TlsServer;
use crate::harness::{wait_for, Cronvisor};

fn finished(state: &str) -> bool {
    !matches!(state, "scheduled" | "dispatched" | "running")
}

fn add_http_job(cv: &Cronvisor, name: &str, url: &str) {
    cv.ok(&[
        "job",
        "add",
        "--name",
        name,
        "--schedule",
        "@yearly",
        "--http-url",
        url,
    ]);
}

#[test]
fn https_jobs_and_webhooks_trust_the_configured_ca_and_check_the_name() {
    let server = TlsServer::start();
    let port = server.port;
    let cfg = format!(
        "[monitor]\ncheck_interval_ms = 100\n[tls]\nca_file = \"{}\"\n\
         [alarm]\nwebhook_urls = [\"https://127.0.0.1:{port}/hook\"]\n",
        server.ca.display()
    );
    let cv = Cronvisor::start_with("tls", &cfg);

    // The certificate is for 127.0.0.1 and signed by the configured CA: the job succeeds and
    // its output is the answer.
    let url = format!("https://127.0.0.1:{port}/ping");
    add_http_job(&cv, "secure", &url);
    let id = cv.run_now("secure");
    let run = cv.wait_run(&id, "the https run", finished);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["exit_code"], 200);
    assert!(
        run["stdout"]
            .as_str()
            .unwrap_or("")
            .contains("hello over tls"),
        "{run}"
    );

    // Same server, another name: verification refuses it, and the run says why.
    let wrong = format!("https://localhost:{port}/ping");
    add_http_job(&cv, "wrong-name", &wrong);
    let id = cv.run_now("wrong-name");
    let run = cv.wait_run(&id, "the refused https run", finished);
    assert_eq!(run["state"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or("");
    assert!(error.contains("not valid for name"), "{run}");

    // That failure is alarmed through the https webhook.
    let hook = wait_for(Duration::from_secs(20), "the https webhook", || {
        server.requests().into_iter().find(|r| {
            r["path"] == "/hook" && r["body"].as_str().is_some_and(|b| b.contains("wrong-name"))
        })
    });
    assert_eq!(hook["method"], "POST");
    let pings = server
        .requests()
        .iter()
        .filter(|r| r["path"] == "/ping")
        .count();
    assert_eq!(pings, 1, "only the trusted name was answered");
}

/// The serial number of the certificate `addr` presents.
fn served_serial(addr: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn every_listener_serves_https_and_a_reload_picks_up_rotated_certificates() {
    use std::io::{Read, Write};
    let certs = crate::harness::TempDir::new("tls-listeners");
    crate::harness::tls::make_certificates(&certs.0, "server");
    let path = |f: &str| certs.0.join(f).display().to_string();
    let cv = Cronvisor::start_with(
        "tls-listeners",
        &format!(
            "[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            path("ca.pem"),
            path("server.pem"),
            path("server.key")
        ),
    );
    // The CLI, the dispatcher (to the executor) and the monitor (live output) all go over
    // https, verifying the certificate against the configured CA.
    cv.add_job("secure", "@yearly", "echo over tls", &[]);
    let id = cv.run_now("secure");
    let run = cv.wait_run(&id, "the run over https", finished);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(cv.ok(&["run", "tail", &id]), "over tls\n");
    // Plain http gets no answer from any listener.
    for listener in ["api", "rpc", "dispatch"] {
        let mut s = std::net::TcpStream::connect(cv.endpoint(listener)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            !out.starts_with(b"HTTP/1.1 200"),
            "{listener} answered plain http"
        );
    }
    // Over https the console is HSTS and its session cookie `__Host-` prefixed: a browser
    // keeps to https and takes the cookie from this host only.
    cv.add_user("tls-ann", "viewer", None, "a long password");
    let login = std::process::Command::new("curl")
        .args(["-sS", "-i", "--cacert", &path("ca.pem"), "--data"])
        .arg("name=tls-ann&password=a+long+password&next=%2F")
        .arg(format!("https://{}/login", cv.endpoint("api")))
        .output()
        .expect("curl (installed by scripts/install-deps.sh)");
    let answer = String::from_utf8_lossy(&login.stdout).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 303"), "{answer}");
    assert!(
        answer.contains("strict-transport-security: max-age=31536000"),
        "{answer}"
    );
    assert!(
        answer.contains("set-cookie: __host-cronvisor_session=") && answer.contains("; secure"),
        "{answer}"
    );
    // Rotate: new files in place, then a reload; the new generation serves the new certificate.
    let before = served_serial(&cv.endpoint("api"));
    assert!(before.starts_with("serial="), "{before}");
    crate::harness::tls::make_certificates(&certs.0, "rotated");
    std::fs::copy(certs.0.join("rotated.pem"), certs.0.join("server.pem")).expect("cert");
    std::fs::copy(certs.0.join("rotated.key"), certs.0.join("server.key")).expect("key");
    assert!(cv.cli(&["reload"]).status.success(), "{}", cv.log());
    wait_for(Duration::from_secs(10), "the rotated certificate", || {
        let now = served_serial(&cv.endpoint("api"));
        (now.starts_with("serial=") && now != before).then_some(())
    });
    let id = cv.run_now("secure");
    assert_eq!(
        cv.wait_run(&id, "a run after rotation", finished)["state"],
        "succeeded"
    );
}

/// Mutual TLS (`tls.client_auth`): the executor's RPC takes only clients with a certificate of
/// the CA. The dispatcher and the monitor present theirs (runs and live output work); a
/// client with the RPC token but no certificate does not get past the handshake.
#[test]
fn under_client_auth_the_rpc_takes_only_clients_with_a_certificate_of_the_ca() {
    let certs = crate::harness::TempDir::new("mtls");
    crate::harness::tls::make_certificates(&certs.0, "server");
    crate::harness::tls::make_certificates(&certs.0, "client");
    let path = |f: &str| certs.0.join(f).display().to_string();
    let cv = Cronvisor::start_with(
        "mtls",
        &format!(
            "[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_auth = true\n",
            path("ca.pem"),
            path("server.pem"),
            path("server.key")
        ),
    );
    cv.add_job("mutual", "@yearly", "echo both ways", &[]);
    let id = cv.run_now("mutual");
    let run = cv.wait_run(&id, "the run over mutual TLS", finished);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(cv.ok(&["run", "tail", &id]), "both ways\n");
    let token = std::fs::read_to_string(cv.data_dir().join("rpc.token")).expect("rpc token");
    let (host, port) = cv
        .endpoint("rpc")
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .expect("addr");
    let ask = |with_cert: bool| {
        let script = "import socket, ssl, sys\n\
            c = ssl.create_default_context(cafile=sys.argv[3])\n\
            if sys.argv[5] == 'yes': c.load_cert_chain(sys.argv[6], sys.argv[7])\n\
            s = c.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10), server_hostname=sys.argv[1])\n\
            s.sendall(('GET /readyz HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer ' + sys.argv[4] + '\\r\\nConnection: close\\r\\n\\r\\n').encode())\n\
            print(s.recv(12).decode())\n";
        std::process::Command::new("python3")
            .args(["-c", script, &host, &port, &path("ca.pem"), token.trim()])
            .arg(if with_cert { "yes" } else { "no" })
            .args([path("client.pem"), path("client.key")])
            .output()
            .expect("python3")
    };
    let with = ask(true);
    assert_eq!(
        String::from_utf8_lossy(&with.stdout).trim(),
        "HTTP/1.1 200",
        "{with:?}"
    );
    let without = ask(false);
    assert!(
        !without.status.success(),
        "answered without a client certificate: {without:?}"
    );
    assert!(
        String::from_utf8_lossy(&without.stderr)
            .to_lowercase()
            .contains("certificate"),
        "{without:?}"
    );
}
