//! The web console in a real headless Chromium: `tests/browser/console_test.py` (Playwright
//! for Python driving Debian's /usr/bin/chromium, both installed by scripts/install-deps.sh)
//! against a real `cronvisor up`. The script's checks: login and cookie attributes, security
//! headers and CSRF, the job form with a field error, a job firing, live output, kill, markup
//! that runs no script, a SIGHUP during a live tail, paging, every page at 1280 px.
//!
//! `CONSOLE_SCREENSHOTS=DIR` also saves a screenshot of each page there (docs/CONSOLE.md's
//! come from `scripts/console-screenshots.sh`).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{http, Cronvisor};

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn the_console_works_in_a_real_browser() {
    let cv = Cronvisor::start("console");
    cv.add_user("ann", "admin", None, "ann-password-1");
    cv.add_user("vic", "viewer", None, "vic-password-1");
    cv.add_user("bob", "operator", Some("other"), "bob-password-1");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/console_test.py");
    let pid = cv.child.as_ref().expect("running").id();
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg("--url")
        .arg(format!("http://{}", cv.endpoint("api")))
        .arg("--pid")
        .arg(pid.to_string())
        .args(["--admin", "ann:ann-password-1"])
        .args(["--viewer", "vic:vic-password-1"])
        .args(["--operator-b", "bob:bob-password-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") {
        cmd.arg("--screenshots").arg(dir);
    }
    let mut child = cmd
        .spawn()
        .expect("python3 (scripts/install-deps.sh installs it with playwright)");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser test ran past {LIMIT:?}\n{}", cv.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut out, mut err) = (String::new(), String::new());
    let _ = child.stdout.take().map(|mut o| o.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    assert!(
        status.success(),
        "browser checks failed:\n{out}\n{err}\n--- cronvisor log ---\n{}",
        cv.log()
    );
    assert!(out.contains("console: all checks passed"), "{out}");
}

#[test]
fn console_pages_need_a_session_and_api_writes_need_the_csrf_token() {
    let cv = Cronvisor::start("console-auth");
    let api = cv.endpoint("api");
    for page in [
        "/",
        "/jobs",
        "/runs",
        "/runs/1",
        "/fleet",
        "/alarms",
        "/jobs/new",
    ] {
        let (status, _) = http(&api, "GET", page, None, None);
        assert_eq!(status, 303, "{page} without a session");
    }
    // A forged cookie is no session.
    let forged = raw(
        &api,
        "GET /jobs HTTP/1.1\r\nHost: x\r\nCookie: cronvisor_session=abc.99999999999999.00\r\n\
         Connection: close\r\n\r\n",
    );
    assert!(forged.starts_with("HTTP/1.1 303"), "{forged}");
    // Log in: the cookie comes HttpOnly and SameSite=Strict.
    cv.add_user("ann", "admin", None, "ann-password-1");
    let body = "name=ann&password=ann-password-1&next=%2Fjobs".to_string();
    let login = raw(
        &api,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let set_cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    let cookie = set_cookie
        .split_once(':')
        .map(|(_, v)| v.trim())
        .and_then(|v| v.split(';').next())
        .expect("value")
        .to_string();
    let page = raw(
        &api,
        &format!(
            "GET /jobs HTTP/1.1\r\nHost: {api}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    // The session reads the API, but writes without the CSRF token are refused.
    let read = raw(
        &api,
        &format!("GET /api/v1/jobs HTTP/1.1\r\nHost: {api}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"),
    );
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
    let write = raw(
        &api,
        &format!(
            "POST /api/v1/jobs HTTP/1.1\r\nHost: {api}\r\nCookie: {cookie}\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    );
    assert!(write.starts_with("HTTP/1.1 403"), "{write}");
    // A login posted from another site is refused.
    let cross = raw(
        &api,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {api}\r\nOrigin: http://evil.example\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(cross.starts_with("HTTP/1.1 403"), "{cross}");
    // `next` never leads off the site.
    let off = "name=ann&password=ann-password-1&next=%2F%2Fevil.example".to_string();
    let away = raw(
        &api,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{off}",
            off.len()
        ),
    );
    assert!(away.contains("\r\nlocation: /\r\n"), "{away}");
}

/// One raw HTTP exchange (request as given); the whole answer.
fn raw(addr: &str, request: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}
