//! The security review's web and API findings (issue 23), each as the request that got through
//! before and the answer it gets now.

use serde_json::Value;

use crate::access::from_address;
use crate::harness::{http, wait_for, Cronvisor};

/// A named token made by the admin; its secret.
fn token(cv: &Cronvisor, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let out = cv.cli(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One request with raw headers from 127.0.0.1: (status, body).
fn raw(cv: &Cronvisor, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let api = cv.endpoint("api");
    let reply = from_address(
        [127, 0, 0, 1],
        &api,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {api}\r\n{headers}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A JSON body sent as `text/plain` (what a cross-site form or `fetch` sends without asking)
/// is refused with 415, not read as JSON; the same body as `application/json` is taken.
#[test]
fn an_api_body_that_is_not_sent_as_json_is_refused() {
    let cv = Cronvisor::start("hard-json");
    let auth = format!("Authorization: Bearer {}\r\n", cv.token());
    let job = r#"{"name": "plain", "schedule": "@daily", "command": "true"}"#;
    for kind in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let (code, body) = raw(
            &cv,
            "POST",
            "/api/v1/jobs",
            &format!("{auth}Content-Type: {kind}\r\n"),
            job,
        );
        assert_eq!(code, 415, "{kind}: {body}");
        assert!(body.contains("application/json"), "{body}");
    }
    let (code, _) = raw(&cv, "POST", "/api/v1/jobs", &auth, job);
    assert_eq!(code, 415, "no Content-Type");
    let (code, body) = raw(
        &cv,
        "POST",
        "/api/v1/jobs",
        &format!("{auth}Content-Type: application/json; charset=utf-8\r\n"),
        job,
    );
    assert_eq!(code, 201, "{body}");
    // A body-less call needs no type.
    let (code, body) = raw(&cv, "POST", "/api/v1/jobs/plain/pause", &auth, "");
    assert_eq!(code, 200, "{body}");
}

/// An admin of some groups grants those groups only: no unscoped or wider token or user, no
/// change to a user outside them, and its audit log holds its groups' jobs only.
#[test]
fn a_group_scoped_admin_cannot_widen_itself_or_read_other_groups_audit() {
    let cv = Cronvisor::start("hard-scoped");
    cv.add_job("a-job", "@yearly", "true", &["--group", "a"]);
    cv.add_job("b-job", "@yearly", "true", &["--group", "b"]);
    cv.add_user("root-admin", "admin", None, "a long password");
    let admin_a = token(
        &cv,
        &["--name", "admin-a", "--role", "admin", "--groups", "a"],
    );
    let api = cv.endpoint("api");
    let post = |path: &str, body: &str| http(&api, "POST", path, Some(&admin_a), Some(body));
    for (what, body) in [
        ("unscoped token", r#"{"name": "t1", "role": "admin"}"#),
        (
            "wider token",
            r#"{"name": "t2", "role": "viewer", "groups": ["a", "b"]}"#,
        ),
    ] {
        let (code, reply) = post("/api/v1/tokens", body);
        assert_eq!(code, 403, "{what}: {reply}");
    }
    let (code, reply) = post(
        "/api/v1/users",
        r#"{"name": "wide", "role": "operator", "password": "a long password"}"#,
    );
    assert_eq!(code, 403, "unscoped user: {reply}");
    let (code, reply) = http(
        &api,
        "PATCH",
        "/api/v1/users/root-admin",
        Some(&admin_a),
        Some(r#"{"groups": ["a"]}"#),
    );
    assert_eq!(code, 403, "edit of an unscoped admin: {reply}");
    let (code, reply) = post(
        "/api/v1/users/root-admin/password",
        r#"{"password": "taken over now"}"#,
    );
    assert_eq!(code, 403, "password of an unscoped admin: {reply}");
    let (code, reply) = post(
        "/api/v1/tokens",
        r#"{"name": "t3", "role": "viewer", "groups": ["a"]}"#,
    );
    assert_eq!(code, 201, "within its groups: {reply}");
    // Its audit log: what was done to group a's jobs, nothing else.
    let (code, reply) = http(&api, "GET", "/api/v1/audit", Some(&admin_a), None);
    assert_eq!(code, 200, "{reply}");
    let entries: Vec<Value> = serde_json::from_str(&reply).expect("json");
    let objects: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["object"].as_str())
        .collect();
    assert!(objects.iter().any(|o| o.contains("a-job")), "{objects:?}");
    assert!(
        objects
            .iter()
            .all(|o| !o.contains("b-job") && !o.contains("user") && !o.contains("token")),
        "{objects:?}"
    );
}

/// Failed logins cannot fill the disk: a 1 MiB name reaches the audit log cut to 64
/// characters, a name with control characters escaped, and a name no user could have adds no
/// row of its own to the failure counts.
#[test]
fn failed_logins_are_bounded_in_the_audit_log_and_the_failure_counts() {
    let cv = Cronvisor::start("hard-login");
    let api = cv.endpoint("api");
    let login = |name: &str| {
        let form = format!("name={name}&password=wrong-password&next=%2F");
        let (code, _) = raw(
            &cv,
            "POST",
            "/login",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            &form,
        );
        code
    };
    assert_eq!(login(&"x".repeat(1 << 20)), 401);
    assert_eq!(login("eve%0Aforged%20line"), 401);
    let audit = cv.json(&["audit", "--limit", "10"]);
    let objects: Vec<String> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["object"].as_str().map(str::to_string))
        .collect();
    assert!(objects.iter().all(|o| o.len() < 100), "{objects:?}");
    assert!(
        objects.iter().any(|o| o == "user eve\\u{a}forged line"),
        "{objects:?}"
    );
    let subjects = cv.sqlite("SELECT subject FROM login_failures ORDER BY subject");
    assert_eq!(subjects.trim(), "addr:127.0.0.1", "{subjects}");
    drop(api);
}

/// Smaller holes: a user named like the install token, a token that would expire past the
/// arithmetic of instants, a page number past any page, a viewer reading an HTTP job's keys,
/// a key in a URL reaching a run's error, and a token outliving the user who made it.
#[test]
fn the_smaller_holes_are_closed() {
    let cv = Cronvisor::start("hard-small");
    let api = cv.endpoint("api");
    let admin = cv.token();

    let out = cv.cli_input(
        &[
            "user",
            "add",
            "api.token",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "a long password\n",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("install token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cv.cli(&[
        "token",
        "create",
        "--name",
        "forever",
        "--role",
        "viewer",
        "--expires",
        "99999999d",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: expires: at most 10 years"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (code, page) = raw(
        &cv,
        "GET",
        "/jobs?page=100000000000000000000",
        &format!("Authorization: Bearer {admin}\r\n"),
        "",
    );
    assert!(code == 200 || code == 400 || code == 303, "{code}: {page}");
    let (code, _) = raw(
        &cv,
        "GET",
        "/jobs?page=9223372036854775807",
        &format!("Authorization: Bearer {admin}\r\n"),
        "",
    );
    assert!(code < 500, "{code}");

    // A viewer sees an HTTP job's URL without its query or credentials, and no body.
    cv.add_job(
        "hook",
        "@yearly",
        "",
        &[
            "--http-url",
            "http://user:pw@127.0.0.1:9/notify?key=s3cret-key",
            "--http-body",
            "{\"key\": \"s3cret-body\"}",
        ],
    );
    let viewer = token(&cv, &["--name", "watcher", "--role", "viewer"]);
    let (code, shown) = http(&api, "GET", "/api/v1/jobs/hook", Some(&viewer), None);
    assert_eq!(code, 200, "{shown}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("pw@"),
        "{shown}"
    );
    assert!(shown.contains("http://127.0.0.1:9/notify?***"), "{shown}");
    let (_, listed) = http(&api, "GET", "/api/v1/jobs", Some(&viewer), None);
    assert!(!listed.contains("s3cret"), "{listed}");
    // The URL's key does not reach the run's error (nothing listens on port 9).
    let id = cv.run_now("hook");
    let run = cv.wait_run(&id, "the failed call", |s| s == "failed");
    let error = run["error"].as_str().unwrap_or("");
    assert!(error.contains("127.0.0.1:9/notify?***"), "{error}");
    assert!(
        !error.contains("s3cret") && !error.contains("pw@"),
        "{error}"
    );

    // A token dies with the user who made it.
    cv.add_user("maker", "admin", None, "a long password");
    let session = console_session(&cv, "maker", "a long password");
    let made = {
        let (code, reply) = raw(
            &cv,
            "POST",
            "/api/v1/tokens",
            &format!(
                "Cookie: cronvisor_session={}\r\nX-CSRF-Token: {}\r\n\
                 Content-Type: application/json\r\n",
                session.0, session.1
            ),
            r#"{"name": "made-by-maker", "role": "viewer"}"#,
        );
        assert_eq!(code, 201, "{reply}");
        let v: Value = serde_json::from_str(&reply).expect("json");
        v["token"].as_str().expect("secret").to_string()
    };
    let (code, _) = http(&api, "GET", "/api/v1/whoami", Some(&made), None);
    assert_eq!(code, 200);
    cv.ok(&["user", "delete", "maker"]);
    let (code, _) = http(&api, "GET", "/api/v1/whoami", Some(&made), None);
    assert_eq!(code, 401, "the token outlived its maker");
}

/// Logs in through the console: (session secret, CSRF token).
fn console_session(cv: &Cronvisor, name: &str, password: &str) -> (String, String) {
    let api = cv.endpoint("api");
    let form = format!(
        "name={name}&password={}&next=%2F",
        password.replace(' ', "+")
    );
    let reply = from_address(
        [127, 0, 0, 1],
        &api,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {api}\r\nContent-Type: \
             application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 303"), "{reply}");
    let secret = reply
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: cronvisor_session=")
                .then(|| l["set-cookie: cronvisor_session=".len()..].to_string())
        })
        .and_then(|v| v.split(';').next().map(str::to_string))
        .unwrap_or_else(|| panic!("no session cookie: {reply}"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf '%s' \"cronvisor csrf:$1\" | sha256sum | cut -d' ' -f1")
        .arg("sh")
        .arg(&secret)
        .output()
        .expect("sha256sum");
    (
        secret,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// An HTTP job cannot call loopback (cronvisor's own API there), link-local or metadata
/// addresses unless `executor.http_allow` names them — whether the URL names the address or
/// a name that resolves to it.
#[test]
fn http_jobs_cannot_reach_loopback_or_metadata_by_default() {
    let cv = Cronvisor::start_with("hard-egress", "[executor]\nhttp_allow = []\n");
    let api = cv.endpoint("api");
    let port = api.rsplit(':').next().unwrap_or("");
    for (name, url) in [
        ("own-api", format!("http://{api}/api/v1/jobs")),
        ("by-name", format!("http://localhost:{port}/api/v1/jobs")),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ),
    ] {
        cv.add_job(name, "@yearly", "", &["--http-url", &url]);
        let id = cv.run_now(name);
        let run = cv.wait_run(&id, "the refused call", |s| s == "failed");
        let error = run["error"].as_str().unwrap_or("");
        assert!(error.contains("egress policy"), "{name}: {error}");
        assert_eq!(run["stdout"], "", "{name}: nothing was fetched");
    }
}

/// One client address holds at most `http.max_connections_per_client` connections: past it a
/// new one from the same address is closed at once, while another client is still served.
#[test]
fn one_client_cannot_take_every_connection() {
    use std::io::{Read, Write};
    let cv = Cronvisor::start_with(
        "hard-per-client",
        "[http]\nmax_connections_per_client = 4\n",
    );
    let api = cv.endpoint("api");
    let addr: std::net::SocketAddr = api.parse().expect("addr");
    let held: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    // The listener has seen the four before the fifth comes (each answered once).
    for mut s in &held {
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {api}\r\n\r\n").as_bytes())
            .expect("write");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).expect("answered");
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    let mut fifth = std::net::TcpStream::connect(addr).expect("connect");
    fifth
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let _ = fifth.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {api}\r\n\r\n").as_bytes());
    let mut buf = [0u8; 64];
    assert_eq!(fifth.read(&mut buf).unwrap_or(0), 0, "the fifth was served");
    let other = from_address(
        [127, 0, 0, 2],
        &api,
        &format!("GET /healthz HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"),
    );
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    drop(held);
}

/// A body trickled slowly holds its connection no longer than `http.header_read_timeout`
/// after the headers: it is answered 408 and closed.
#[test]
fn a_slow_body_is_cut_off() {
    use std::io::{Read, Write};
    let cv = Cronvisor::start_with("hard-slow-body", "[http]\nheader_read_timeout = \"2s\"\n");
    let api = cv.endpoint("api");
    let mut s = std::net::TcpStream::connect(&api).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "POST /api/v1/jobs HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na",
        cv.token()
    )
    .expect("write");
    let started = std::time::Instant::now();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "held for {:?}",
        started.elapsed()
    );
}

/// Live output streams: at most 16 at once per caller (the 17th answers 429), and a stream
/// ends once its caller's token is revoked.
#[test]
fn live_output_streams_are_capped_per_caller_and_end_on_revocation() {
    use std::io::{BufRead, BufReader, Read, Write};
    let cv = Cronvisor::start("hard-streams");
    cv.add_job("long", "@yearly", "sleep 60", &[]);
    let id = cv.run_now("long");
    cv.wait_running_pid(&id);
    let viewer = token(&cv, &["--name", "watcher", "--role", "viewer"]);
    let api = cv.endpoint("api");
    let open = || {
        let mut s = std::net::TcpStream::connect(&api).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(40)))
            .expect("timeout");
        write!(
            s,
            "GET /api/v1/runs/{id}/output HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer \
             {viewer}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("write");
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        (status, reader)
    };
    let mut streams = Vec::new();
    for _ in 0..16 {
        let (status, reader) = open();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        streams.push(reader);
    }
    let (status, _) = open();
    assert!(status.starts_with("HTTP/1.1 429"), "the 17th: {status}");
    cv.ok(&["token", "revoke", "watcher"]);
    // Every stream ends (within the 10 s recheck), as the connection's chunked body closes.
    let started = std::time::Instant::now();
    let mut first = streams.remove(0);
    let mut rest = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&rest).contains("\r\n0\r\n\r\n") {
        match first.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("\r\n0\r\n\r\n"), "not ended: {text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "ended after {:?}",
        started.elapsed()
    );
    cv.ok(&["run", "kill", &id]);
}

/// Viewers of one running run share one long-poll at its executor: eight live output streams
/// caught up on a run hold one waiting read there, not eight.
#[test]
fn viewers_of_a_run_share_one_long_poll_at_its_executor() {
    use std::io::{BufRead, BufReader, Write};
    let cv = Cronvisor::start("hard-shared-poll");
    cv.add_job("talk", "@yearly", "echo first; sleep 60", &[]);
    let id = cv.run_now("talk");
    cv.wait_running_pid(&id);
    let (api, token) = (cv.endpoint("api"), cv.token());
    let mut streams = Vec::new();
    for _ in 0..8 {
        let mut s = std::net::TcpStream::connect(&api).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("timeout");
        write!(
            s,
            "GET /api/v1/runs/{id}/output HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer \
             {token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("write");
        let mut reader = BufReader::new(s);
        // Caught up: its first line came.
        let mut line = String::new();
        while !line.contains("first") {
            line.clear();
            assert!(
                reader.read_line(&mut line).expect("a line") > 0,
                "stream ended"
            );
        }
        streams.push(reader);
    }
    let waiting = || {
        let (_, body) = http(&cv.endpoint("rpc"), "GET", "/metrics", None, None);
        body.lines()
            .find(|l| l.starts_with("cronvisor_output_reads_waiting"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(-1)
    };
    wait_for(
        std::time::Duration::from_secs(20),
        "one shared read waiting",
        || (waiting() == 1).then_some(()),
    );
    // And it stays one (the readers' polls come back every 15 s and join again).
    let samples: Vec<i64> = (0..10)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            waiting()
        })
        .collect();
    assert!(samples.iter().all(|n| *n <= 1), "{samples:?}");
    drop(streams);
    cv.ok(&["run", "kill", &id]);
}

/// The monitors' token (`monitor.token`) reads output and kills on an executor but never
/// starts a run: only the dispatchers' `rpc.token` does.
#[test]
fn the_monitors_token_cannot_start_a_run() {
    let cv = Cronvisor::start("hard-monitor-token");
    let rpc = cv.endpoint("rpc");
    let monitor = std::fs::read_to_string(cv.data_dir().join("monitor.token")).expect("token");
    let dispatch = std::fs::read_to_string(cv.data_dir().join("rpc.token")).expect("token");
    let body = r#"{"runs": []}"#;
    let (code, reply) = http(
        &rpc,
        "POST",
        "/rpc/v1/runs",
        Some(monitor.trim()),
        Some(body),
    );
    assert_eq!(code, 401, "{reply}");
    let (code, reply) = http(
        &rpc,
        "POST",
        "/rpc/v1/runs",
        Some(dispatch.trim()),
        Some(body),
    );
    assert_eq!(code, 202, "{reply}");
    let (code, reply) = http(
        &rpc,
        "GET",
        "/rpc/v1/runs/999999/output",
        Some(monitor.trim()),
        None,
    );
    assert!(code != 401 && code < 500, "{code}: {reply}");
    // And the console's live output, which goes through the monitor's token, still works.
    cv.add_job("talk", "@yearly", "echo hello", &[]);
    let id = cv.run_now("talk");
    cv.wait_run(&id, "the run", |s| s == "succeeded");
    assert_eq!(cv.ok(&["run", "tail", &id]), "hello\n");
}
