//! Users, roles, scoped tokens and the audit log, end to end through the binary: a viewer
//! changes nothing; an operator of group A can do everything to A's jobs and runs and sees
//! nothing of B's (every route answers 404, as for a missing id); revoked and expired tokens
//! are refused at once; failed logins slow down; the trusted-proxy header is believed only
//! from the proxy; the audit log names who did each thing.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{http, wait_for, Cronvisor};

/// `token create` as the install's admin: the new token.
fn token(
    cv: &Cronvisor,
    name: &str,
    role: &str,
    groups: Option<&str>,
    expires: Option<&str>,
) -> String {
    let mut args = vec!["token", "create", "--name", name, "--role", role];
    if let Some(g) = groups {
        args.extend(["--groups", g]);
    }
    if let Some(e) = expires {
        args.extend(["--expires", e]);
    }
    let out = cv.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("it is shown this once"), "{err}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn call(
    cv: &Cronvisor,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String) {
    http(&cv.endpoint("api"), method, path, Some(token), body)
}

/// A run of `job` (run now as the admin), once it ended.
fn ended_run(cv: &Cronvisor, job: &str) -> String {
    let id = cv.run_now(job);
    cv.wait_run(&id, "the run to end", |s| s == "succeeded");
    id
}

/// Every job and run route, for B's job and run with A's operator token: all 404, as for
/// ids that do not exist; for A's, the real answer.
pub fn walk_every_route_out_of_scope(cv: &Cronvisor) {
    cv.add_job("a-job", "@yearly", "echo a", &["--group", "a"]);
    cv.add_job("b-job", "@yearly", "echo b", &["--group", "b"]);
    let a_run = ended_run(cv, "a-job");
    let b_run = ended_run(cv, "b-job");
    let op = token(cv, "op-a", "operator", Some("a"), None);
    let routes = |job: &str, run: &str| -> Vec<(&'static str, String, Option<&'static str>)> {
        vec![
            ("GET", format!("/api/v1/jobs/{job}"), None),
            (
                "PATCH",
                format!("/api/v1/jobs/{job}"),
                Some(r#"{"timeout_secs": 60}"#),
            ),
            ("POST", format!("/api/v1/jobs/{job}/pause"), None),
            ("POST", format!("/api/v1/jobs/{job}/resume"), None),
            ("POST", format!("/api/v1/jobs/{job}/run"), None),
            ("GET", format!("/api/v1/runs?job={job}"), None),
            ("GET", format!("/api/v1/runs/{run}"), None),
            ("GET", format!("/api/v1/runs/{run}/output"), None),
            ("POST", format!("/api/v1/runs/{run}/kill"), None),
            ("DELETE", format!("/api/v1/jobs/{job}?force=true"), None),
        ]
    };
    for (method, path, body) in routes("b-job", &b_run) {
        let (status, answer) = call(cv, method, &path, &op, body);
        assert_eq!(status, 404, "{method} {path} out of scope: {answer}");
        let (missing, _) = call(
            cv,
            method,
            &path
                .replace("b-job", "no-such-job")
                .replace(&b_run, "999999"),
            &op,
            body,
        );
        assert_eq!(
            missing, 404,
            "{method} {path}: a missing id answers the same"
        );
    }
    // B's job and its history are untouched.
    let b = cv.json(&["job", "show", "b-job"]);
    assert_eq!(b["timeout_secs"], Value::Null);
    // Listings show A's only.
    let (_, jobs) = call(cv, "GET", "/api/v1/jobs", &op, None);
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&jobs)
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["a-job"]);
    let (_, runs) = call(cv, "GET", "/api/v1/runs", &op, None);
    let runs: Vec<Value> = serde_json::from_str(&runs).expect("runs");
    assert!(
        !runs.is_empty() && runs.iter().all(|r| r["job_name"] == "a-job"),
        "{runs:?}"
    );
    // No job of another group, neither new nor moved there.
    let (status, answer) = call(
        cv,
        "POST",
        "/api/v1/jobs",
        &op,
        Some(r#"{"name": "sneak", "schedule": "@yearly", "command": "true", "group": "b"}"#),
    );
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("\"field\":\"group\""), "{answer}");
    let (status, _) = call(
        cv,
        "PATCH",
        "/api/v1/jobs/a-job",
        &op,
        Some(r#"{"group": "b"}"#),
    );
    assert_eq!(status, 403);
    // Admin routes are refused outright.
    for path in ["/api/v1/users", "/api/v1/tokens", "/api/v1/audit"] {
        assert_eq!(call(cv, "GET", path, &op, None).0, 403, "{path}");
    }
    // In its own group it can do everything.
    for (method, path, body) in routes("a-job", &a_run) {
        let (status, answer) = call(cv, method, &path, &op, body);
        let expected: &[u16] = if path.ends_with("/kill") {
            &[409]
        } else {
            &[200, 202, 204]
        };
        assert!(
            expected.contains(&status),
            "{method} {path} in scope: {status} {answer}"
        );
    }
}

#[test]
fn an_operator_of_one_group_sees_and_touches_nothing_of_another() {
    let cv = Cronvisor::start("access-scope");
    walk_every_route_out_of_scope(&cv);
}

#[test]
fn a_viewer_reads_everything_and_changes_nothing() {
    let cv = Cronvisor::start("access-viewer");
    cv.add_job("seen", "@yearly", "echo seen", &[]);
    let run = ended_run(&cv, "seen");
    let viewer = token(&cv, "watcher", "viewer", None, None);
    let runs_before = cv.runs("seen").len();
    for path in [
        "/api/v1/jobs".to_string(),
        "/api/v1/jobs/seen".into(),
        "/api/v1/runs".into(),
        format!("/api/v1/runs/{run}"),
        format!("/api/v1/runs/{run}/output"),
        "/api/v1/alarms".into(),
        "/api/v1/fleet".into(),
        "/api/v1/whoami".into(),
    ] {
        let (status, answer) = call(&cv, "GET", &path, &viewer, None);
        assert_eq!(status, 200, "GET {path}: {answer}");
    }
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/jobs",
            Some(r#"{"name": "x", "schedule": "@yearly", "command": "true"}"#),
        ),
        ("PATCH", "/api/v1/jobs/seen", Some(r#"{"timeout_secs": 5}"#)),
        ("POST", "/api/v1/jobs/seen/pause", None),
        ("POST", "/api/v1/jobs/seen/resume", None),
        ("POST", "/api/v1/jobs/seen/run", None),
        ("DELETE", "/api/v1/jobs/seen", None),
        (
            "POST",
            "/api/v1/users",
            Some(r#"{"name": "y", "role": "admin", "password": "12345678"}"#),
        ),
        (
            "POST",
            "/api/v1/tokens",
            Some(r#"{"name": "y", "role": "admin"}"#),
        ),
    ] {
        let (status, answer) = call(&cv, method, path, &viewer, body);
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    // Its "run now" above started nothing.
    assert_eq!(cv.runs("seen").len(), runs_before);
    // The CLI with the viewer's token says who it is.
    let out = cv
        .cli_command_with_token(&["whoami"], &viewer)
        .output()
        .expect("whoami");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "token:watcher (viewer of every group)\n"
    );
}

#[test]
fn revoked_and_expired_tokens_are_refused_at_once() {
    let cv = Cronvisor::start("access-tokens");
    let t = token(&cv, "ci", "operator", None, None);
    assert_eq!(call(&cv, "GET", "/api/v1/whoami", &t, None).0, 200);
    let listed = cv.ok(&["token", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("ci ") && l.ends_with("live")),
        "{listed}"
    );
    assert_eq!(cv.ok(&["token", "revoke", "ci"]), "token `ci` revoked\n");
    assert_eq!(call(&cv, "GET", "/api/v1/whoami", &t, None).0, 401);
    let listed = cv.ok(&["token", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("ci ") && l.ends_with("revoked")),
        "{listed}"
    );
    // The store keeps a hash, never the token.
    assert!(!cv.sqlite("SELECT token_hash FROM api_tokens").contains(&t));
    let short = token(&cv, "brief", "viewer", None, Some("2s"));
    assert_eq!(call(&cv, "GET", "/api/v1/whoami", &short, None).0, 200);
    wait_for(Duration::from_secs(10), "the token to expire", || {
        (call(&cv, "GET", "/api/v1/whoami", &short, None).0 == 401).then_some(())
    });
    let bad = cv.cli(&[
        "token",
        "create",
        "--name",
        "x",
        "--role",
        "viewer",
        "--expires",
        "soon",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).starts_with("error: expires: "),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// `POST /login` from the console's form; the status and the answer's headers.
fn login(cv: &Cronvisor, name: &str, password: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let api = cv.endpoint("api");
    let body = format!("name={name}&password={password}&next=%2F");
    let mut s = TcpStream::connect(&api).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "POST /login HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[test]
fn five_wrong_passwords_slow_the_next_attempts_and_everything_is_audited() {
    let cv = Cronvisor::start("access-login");
    cv.add_user("ann", "operator", None, "ann-password-1");
    assert_eq!(login(&cv, "ann", "ann-password-1").0, 303);
    for _ in 0..5 {
        assert_eq!(login(&cv, "ann", "guess").0, 401);
    }
    let (status, answer) = login(&cv, "ann", "ann-password-1");
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: "),
        "{answer}"
    );
    assert!(answer.contains("Too many failed logins"), "{answer}");
    // An unknown name is throttled the same way (names cannot be probed by their answers).
    assert_eq!(
        login(&cv, "nobody", "guess").0,
        429,
        "the address is throttled too"
    );

    let audit = cv.ok(&["audit", "--user", "ann"]);
    let actions: Vec<&str> = audit
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "login.failed").count(),
        5,
        "{audit}"
    );
    assert!(
        actions.contains(&"login") && actions.contains(&"login.throttled"),
        "{audit}"
    );
    // Job changes name their actor and show what changed, secrets masked.
    let op = token(&cv, "deployer", "operator", None, None);
    let (status, answer) = call(
        &cv,
        "POST",
        "/api/v1/jobs",
        &op,
        Some(
            r#"{"name": "hook", "schedule": "@yearly", "http_url": "https://127.0.0.1:9/x?key=s3cret",
            "http_headers": {"Authorization": "Bearer s3cret"}}"#,
        ),
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        call(
            &cv,
            "PATCH",
            "/api/v1/jobs/hook",
            &op,
            Some(r#"{"timeout_secs": 30}"#)
        )
        .0,
        200
    );
    let entries: Vec<Value> =
        serde_json::from_str(&cv.ok(&["audit", "--job", "hook", "--json"])).expect("json");
    let what: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        what,
        [
            ("job.edit", "token:deployer"),
            ("job.add", "token:deployer")
        ]
    );
    assert_eq!(
        entries[0]["details"]["timeout_secs"],
        serde_json::json!([null, 30])
    );
    assert_eq!(entries[0]["address"], "127.0.0.1");
    let text = entries.iter().map(|e| e.to_string()).collect::<String>();
    assert!(
        !text.contains("s3cret"),
        "a secret reached the audit log: {text}"
    );
}

/// A raw request from a chosen loopback source address (127.0.0.2 is loopback too).
pub fn from_address(source: [u8; 4], target: &str, request: &str) -> String {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let target: std::net::SocketAddrV4 = target.parse().expect("v4 address");
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::new(source[0], source[1], source[2], source[3], 0),
    )
    .expect("bind");
    connect(fd.as_raw_fd(), &SockaddrIn::from(target)).expect("connect");
    let mut s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn the_proxy_user_header_is_believed_only_from_the_trusted_proxy_with_its_secret() {
    let cv = Cronvisor::start_with_env(
        "access-proxy",
        "[auth]\nproxy_header = \"X-Forwarded-User\"\ntrusted_proxies = [\"127.0.0.2\"]\n",
        &[("CRONVISOR_PROXY_SECRET", "proxy-shared-secret-1234")],
    );
    cv.add_user("sso-ann", "viewer", None, "unused-password");
    let api = cv.endpoint("api");
    let ask_with = |extra: &str| {
        format!("GET /api/v1/whoami HTTP/1.1\r\nHost: {api}\r\n{extra}Connection: close\r\n\r\n")
    };
    let secret = "X-Cronvisor-Proxy-Secret: proxy-shared-secret-1234\r\n";
    let ask = ask_with(&format!("X-Forwarded-User: sso-ann\r\n{secret}"));
    let trusted = from_address([127, 0, 0, 2], &api, &ask);
    assert!(trusted.starts_with("HTTP/1.1 200"), "{trusted}");
    assert!(trusted.contains("\"name\":\"sso-ann\""), "{trusted}");
    let untrusted = from_address([127, 0, 0, 1], &api, &ask);
    assert!(untrusted.starts_with("HTTP/1.1 403"), "{untrusted}");
    // From the proxy's address but without its secret (a job on the proxy's host), with a
    // wrong one, with the user header twice, or naming no possible user: refused.
    for (case, extra) in [
        ("no secret", "X-Forwarded-User: sso-ann\r\n".to_string()),
        (
            "wrong secret",
            "X-Forwarded-User: sso-ann\r\nX-Cronvisor-Proxy-Secret: guess\r\n".to_string(),
        ),
        (
            "two users",
            format!("X-Forwarded-User: admin\r\nX-Forwarded-User: sso-ann\r\n{secret}"),
        ),
        (
            "not a name",
            format!("X-Forwarded-User: ann\tsmith\r\n{secret}"),
        ),
    ] {
        let refused = from_address([127, 0, 0, 2], &api, &ask_with(&extra));
        assert!(refused.starts_with("HTTP/1.1 403"), "{case}: {refused}");
    }
    let audit = cv.ok(&["audit", "--user", "sso-ann"]);
    assert!(
        audit.contains("login.proxy_refused") && audit.contains("127.0.0.1"),
        "{audit}"
    );
    // An unknown name gets nothing (no viewer is created unless configured).
    let unknown = from_address([127, 0, 0, 2], &api, &ask.replace("sso-ann", "mallory"));
    assert!(unknown.starts_with("HTTP/1.1 401"), "{unknown}");
    // The proxy login is refused at start without a secret, naming the key.
    let check = std::process::Command::new(crate::harness::BIN)
        .args([
            "--config",
            &cv.config_path().display().to_string(),
            "config",
            "check",
        ])
        .env_remove("CRONVISOR_PROXY_SECRET")
        .output()
        .expect("config check");
    assert!(!check.status.success());
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("auth.proxy_secret"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
