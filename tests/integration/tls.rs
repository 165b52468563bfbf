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
