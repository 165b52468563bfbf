//! Under systemd: sockets adopted by name from socket activation (with the connection that
//! triggered the activation served, not dropped), and the sd_notify lifecycle of the
//! supervisor (`READY=1`, `RELOADING=1` + `MONOTONIC_USEC`, `STOPPING=1`). Uses Debian's
//! `systemd-socket-activate`, a real LISTEN_FDS client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, TempDir, BIN};

/// The lifecycle states (READY, RELOADING, STOPPING) in one datagram, in order.
fn states_in(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .filter(|l| matches!(*l, "READY=1" | "RELOADING=1" | "STOPPING=1"))
        .map(str::to_string)
}

/// Collects notify datagrams until one contains `want` (bounded); appends the lifecycle
/// states to `states` in arrival order.
fn expect_notify(sock: &UnixDatagram, want: &str, seen: &mut String, states: &mut Vec<String>) {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no `{want}` in: {seen}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            states.extend(states_in(&text));
            seen.push_str(&text);
            seen.push('\n');
        }
    }
}

#[test]
fn socket_activation_and_sd_notify_lifecycle() {
    let activate = "/usr/bin/systemd-socket-activate";
    assert!(
        std::path::Path::new(activate).exists(),
        "{activate} not found: install systemd (scripts/install-deps.sh does)"
    );
    let dir = TempDir::new("systemd");
    let port = free_port();
    std::fs::write(
        dir.0.join("cronvisor.toml"),
        format!(
            "data_dir = \"{}\"\n[listeners]\napi = \"127.0.0.1:{port}\"\nrpc = \"127.0.0.1:0\"\ndispatch = \"127.0.0.1:0\"\n",
            dir.0.join("var").display()
        ),
    )
    .expect("config");
    let notify_path = dir.0.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let log = std::fs::File::create(dir.0.join("up.log")).expect("log");
    let mut child = Command::new(activate)
        .args(["-l", &format!("127.0.0.1:{port}"), "--fdname=api"])
        // systemd-socket-activate passes only the variables it is given.
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify_path.display()))
        .arg("--setenv=RUST_LOG=info")
        .args([BIN, "up", "--config"])
        .arg(dir.0.join("cronvisor.toml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("systemd-socket-activate");

    // The first connection triggers the activation; it waits in the accept queue and is served.
    let start = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "activation socket: {e}\n{}",
                    std::fs::read_to_string(dir.0.join("up.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("response");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"role\":\"monitor\""), "{reply}");

    let mut seen = String::new();
    let mut states = Vec::new();
    expect_notify(&notify, "READY=1", &mut seen, &mut states);
    let up_log = std::fs::read_to_string(dir.0.join("up.log")).unwrap_or_default();
    assert!(
        up_log.contains("listener=api") && up_log.contains("source=\"systemd\""),
        "{up_log}"
    );

    // SIGHUP (ExecReload): RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
    seen.clear();
    // SAFETY: kill(2) on our own child, which exec'd into the supervisor (same pid).
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    expect_notify(&notify, "RELOADING=1", &mut seen, &mut states);
    expect_notify(&notify, "MONOTONIC_USEC=", &mut seen, &mut states);
    expect_notify(&notify, "READY=1", &mut seen, &mut states);

    // SIGTERM: STOPPING=1, then a clean exit.
    seen.clear();
    // SAFETY: as above.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    expect_notify(&notify, "STOPPING=1", &mut seen, &mut states);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("supervisor did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    // Nothing else reached the service manager after STOPPING.
    let mut buf = [0u8; 4096];
    while let Ok(n) = notify.recv(&mut buf) {
        states.extend(states_in(&String::from_utf8_lossy(&buf[..n])));
    }
    assert_eq!(states, ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]);
}
