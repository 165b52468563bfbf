//! Releases without downtime: SIGHUP / `cronvisor reload` start a new generation, wait for it,
//! then drain the old one; a bad config or a failing generation changes nothing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{alive, group_survivors, http, ms, wait_for, Cronvisor};

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    refused: AtomicU64,
    reset: AtomicU64,
    timeout: AtomicU64,
    non_2xx: AtomicU64,
}

impl Tally {
    fn count_io(&self, e: &std::io::Error) {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionRefused => &self.refused,
            WouldBlock | TimedOut => &self.timeout,
            _ => &self.reset,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        format!(
            "ok {} refused {} reset {} timeout {} non-2xx {}",
            self.ok.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.reset.load(Ordering::Relaxed),
            self.timeout.load(Ordering::Relaxed),
            self.non_2xx.load(Ordering::Relaxed)
        )
    }
}

/// Reads one HTTP/1.1 response: (status, server asked to close).
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed before the response",
        ));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (mut len, mut close) = (0usize, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if h == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, close))
}

/// Requests `/healthz` until `stop`, on new connections or on one kept-alive connection
/// (reconnecting only when the server says `Connection: close`). Bounded by `limit`.
fn client(
    addr: String,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    limit: Duration,
) {
    let start = Instant::now();
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        if conn.is_none() {
            match TcpStream::connect(&addr) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let reader = BufReader::new(s.try_clone().expect("clone"));
                    conn = Some((s, reader));
                }
                Err(e) => {
                    tally.count_io(&e);
                    continue;
                }
            }
        }
        let Some((stream, reader)) = conn.as_mut() else {
            continue;
        };
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: {}\r\n\r\n",
            if keep_alive { "keep-alive" } else { "close" }
        );
        let result = stream
            .write_all(req.as_bytes())
            .and_then(|_| read_response(reader));
        match result {
            Ok((status, close)) => {
                if (200..300).contains(&status) {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.non_2xx.fetch_add(1, Ordering::Relaxed);
                }
                if close || !keep_alive {
                    conn = None;
                }
            }
            Err(e) => {
                tally.count_io(&e);
                conn = None;
            }
        }
    }
}

#[test]
fn twenty_reloads_under_load_refuse_and_reset_nothing_and_fire_every_instant_once() {
    let cv = Cronvisor::start("reload-load");
    cv.add_job("tick", "* * * * * *", "echo tick", &[]);
    cv.wait_succeeded("tick", 1);
    let addr = cv.endpoint("api");
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = [false, false, true, true]
        .into_iter()
        .map(|keep_alive| {
            let (addr, stop, tally) = (addr.clone(), stop.clone(), tally.clone());
            std::thread::spawn(move || {
                client(addr, keep_alive, stop, tally, Duration::from_secs(120))
            })
        })
        .collect();

    let mut pids = cv.role_pids();
    for i in 0..20u64 {
        // SIGHUP, as `systemctl reload` sends it; the status file shows when it is done.
        cv.signal(libc::SIGHUP);
        wait_for(Duration::from_secs(30), "the next generation", || {
            let st = cv.status();
            (st["generation"] == 2 + i && st["phase"] == "ready").then_some(())
        });
        assert_eq!(cv.status()["last_reload"]["ok"], true, "{}", cv.log());
        let now = cv.role_pids();
        for (old, new) in pids.iter().zip(&now) {
            assert_ne!(old, new, "reload {i}: a role kept its pid");
            assert!(alive(*new), "reload {i}: new child {new} not running");
        }
        assert_eq!(cv.status()["generation"], 2 + i);
        pids = now;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let line = tally.line();
    assert!(tally.ok.load(Ordering::Relaxed) > 100, "{line}");
    for bad in [&tally.refused, &tally.reset, &tally.timeout, &tally.non_2xx] {
        assert_eq!(bad.load(Ordering::Relaxed), 0, "{line}");
    }

    // The job fired once per instant across all the switches, with no instant skipped.
    let runs = cv.wait_succeeded("tick", 3);
    let mut per_instant: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &runs {
        *per_instant.entry(ms(r, "instant")).or_default() += 1;
    }
    assert!(
        per_instant.values().all(|&n| n == 1),
        "doubled: {per_instant:?}"
    );
    let instants: Vec<i64> = per_instant.keys().copied().collect();
    for w in instants.windows(2) {
        assert_eq!(w[1] - w[0], 1000, "an instant was skipped: {instants:?}");
    }
}

#[test]
fn a_bad_config_on_reload_changes_nothing() {
    let cv = Cronvisor::start("reload-bad-config");
    let before = cv.role_pids();
    let good = std::fs::read_to_string(cv.config_path()).expect("config");
    std::fs::write(
        cv.config_path(),
        format!("{good}\n[monitor]\ncheck_interval = 3\n"),
    )
    .expect("write");
    let out = cv.cli(&["reload"]);
    // The CLI itself reads the config to find the data dir: the error names the key either way.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("check_interval"), "{stderr}");

    // A config the CLI can read but the supervisor refuses: a listener moved.
    std::fs::write(
        cv.config_path(),
        good.replace("api = \"127.0.0.1:0\"", "api = \"127.0.0.1:1\""),
    )
    .expect("write");
    let out = cv.cli(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("configuration rejected") && stderr.contains("listeners"),
        "{stderr}"
    );
    assert_eq!(
        cv.role_pids(),
        before,
        "a rejected reload replaced children"
    );
    assert_eq!(cv.status()["last_reload"]["ok"], false);
    let (code, _) = http(&cv.endpoint("api"), "GET", "/healthz", None, None);
    assert_eq!(code, 200);
}

#[test]
fn a_generation_that_fails_is_rolled_back_and_the_old_one_keeps_serving() {
    let cv = Cronvisor::start("reload-rollback");
    cv.add_job("yearly", "@yearly", "echo still here", &[]);
    let before = cv.role_pids();
    let good = std::fs::read_to_string(cv.config_path()).expect("config");
    // Valid syntax, but nothing listens there: the new roles cannot open the store.
    std::fs::write(
        cv.config_path(),
        format!("{good}\n[store]\nurl = \"mysql://u:p@127.0.0.1:1/none\"\n"),
    )
    .expect("write");
    let out = cv.cli(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "reload succeeded");
    assert!(stderr.contains("rolled back"), "{stderr}");
    assert_eq!(cv.role_pids(), before);
    assert_eq!(cv.status()["generation"], 1);
    // Nothing of the failed generation is left running or listed.
    let children = cv.status()["children"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        children.iter().all(|c| c["generation"] == 1),
        "{children:?}"
    );

    std::fs::write(cv.config_path(), good).expect("restore");
    let id = cv.run_now("yearly");
    let run = cv.wait_run(&id, "a run after the rollback", |s| s == "succeeded");
    assert_eq!(run["stdout"], "still here\n");
}

#[test]
fn a_job_running_during_a_reload_finishes_and_keeps_its_result() {
    let cv = Cronvisor::start("reload-running-job");
    cv.add_job("slow", "@yearly", "sleep 2; echo survived", &[]);
    let id = cv.run_now("slow");
    let pid = cv.wait_running_pid(&id);
    // SIGHUP, as systemd's ExecReload sends it.
    cv.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(30), "generation 2", || {
        (cv.status()["generation"] == 2).then_some(())
    });
    let run = cv.wait_run(&id, "the run to end", |s| {
        !matches!(s, "scheduled" | "dispatched" | "running")
    });
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["stdout"], "survived\n");
    assert!(!alive(pid));
}

#[test]
fn a_job_running_past_the_drain_timeout_is_killed_with_its_group() {
    let cv = Cronvisor::start_with(
        "reload-drain-timeout",
        "[supervisor]\ndrain_timeout_secs = 2\n",
    );
    cv.add_job("stuck", "@yearly", "sleep 300 & sleep 300", &[]);
    let id = cv.run_now("stuck");
    let pid = cv.wait_running_pid(&id);
    assert!(cv.cli(&["reload"]).status.success());
    let run = cv.wait_run(&id, "the run to be killed", |s| s == "killed");
    assert_eq!(run["error"], "killed: executor stopping");
    let left = group_survivors(pid);
    assert!(left.is_empty(), "processes of group {pid} left: {left:?}");
}

#[test]
fn a_new_generation_not_ready_in_time_is_killed_and_rolled_back() {
    // A "database" that accepts connections and never answers: the new roles hang opening it.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").expect("blackhole");
    let port = blackhole.local_addr().expect("addr").port();
    let cv = Cronvisor::start_with(
        "reload-ready-timeout",
        "[supervisor]\nready_timeout_secs = 2\n",
    );
    let before = cv.role_pids();
    let good = std::fs::read_to_string(cv.config_path()).expect("config");
    std::fs::write(
        cv.config_path(),
        format!("{good}\n[store]\nurl = \"mysql://u:p@127.0.0.1:{port}/x\"\n"),
    )
    .expect("write");
    let out = cv.cli(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("rolled back") && stderr.contains("not ready within 2 s"),
        "{stderr}"
    );
    assert_eq!(cv.role_pids(), before);
    drop(blackhole);
}

#[test]
fn concurrent_reloads_run_one_after_the_other() {
    let cv = Cronvisor::start("reload-concurrent");
    let a = cv.cli_spawn(&["reload"]);
    let b = cv.cli_spawn(&["reload"]);
    for child in [a, b] {
        let out = child.wait_with_output().expect("reload");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(cv.status()["generation"], 3);
}

#[test]
fn fifty_reloads_leak_no_descriptor() {
    let cv = Cronvisor::start_with("reload-fds", "[supervisor]\nhttp_close_grace_ms = 100\n");
    let sup = cv.child.as_ref().expect("running").id();
    let count = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // One reload first, so that lazily opened descriptors (pools, caches) exist on both sides.
    assert!(cv.cli(&["reload"]).status.success());
    let settle = |cv: &Cronvisor| {
        wait_for(Duration::from_secs(30), "old generations to drain", || {
            let st = cv.status();
            let gens: std::collections::HashSet<String> = st["children"]
                .as_array()?
                .iter()
                .map(|c| c["generation"].to_string())
                .collect();
            (gens.len() == 1).then_some(())
        })
    };
    settle(&cv);
    let sup_before = count(sup);
    let roles_before: Vec<usize> = cv.role_pids().into_iter().map(count).collect();
    for i in 0..50 {
        let out = cv.cli(&["reload"]);
        assert!(
            out.status.success(),
            "reload {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    settle(&cv);
    assert_eq!(count(sup), sup_before, "supervisor fds");
    // A role's own count moves a little with what it has opened lazily so far (store pool
    // connections, pooled HTTP connections); a descriptor leaked per reload would add 50.
    let roles_after: Vec<usize> = cv.role_pids().into_iter().map(count).collect();
    for (before, after) in roles_before.iter().zip(&roles_after) {
        assert!(
            *after <= before + 6,
            "role fds grew: before {roles_before:?}, after 50 reloads {roles_after:?}"
        );
    }
}

#[test]
fn self_upgrade_keeps_the_pid_replaces_the_children_and_a_failing_dry_run_changes_nothing() {
    let cv = Cronvisor::start_copied("upgrade");
    let sup = cv.child.as_ref().expect("running").id();
    let before = cv.role_pids();
    cv.add_job("slow", "@yearly", "sleep 2; echo across", &[]);
    let id = cv.run_now("slow");
    cv.wait_running_pid(&id);

    // A new binary whose dry-run fails: refused, nothing changes.
    let bin = cv.bin_path();
    let real = bin.with_extension("real");
    std::fs::rename(&bin, &real).expect("move binary");
    std::fs::write(&bin, "#!/bin/sh\necho broken build >&2\nexit 3\n").expect("write fake");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = cv.cli(&["reload", "--upgrade"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("dry-run") && stderr.contains("broken build"),
        "{stderr}"
    );
    assert_eq!(cv.role_pids(), before);
    assert_eq!(cv.status()["pid"], sup);
    assert_eq!(cv.status()["generation"], 1);

    // The real binary: exec in place, same PID, new children, the running job unharmed.
    std::fs::rename(&real, &bin).expect("restore binary");
    let out = cv.cli(&["reload", "--upgrade"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cv.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("upgraded"));
    let st = cv.status();
    assert_eq!(st["pid"], sup, "the supervisor's PID changed");
    assert_eq!(st["generation"], 2);
    let after = cv.role_pids();
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old, new);
        assert!(alive(*new));
    }
    let run = cv.wait_run(&id, "the run to end", |s| {
        !matches!(s, "scheduled" | "dispatched" | "running")
    });
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["stdout"], "across\n");
    wait_for(Duration::from_secs(30), "the adopted roles to exit", || {
        before.iter().all(|p| !alive(*p)).then_some(())
    });
    let (code, _) = http(&cv.endpoint("api"), "GET", "/healthz", None, None);
    assert_eq!(code, 200);
}
