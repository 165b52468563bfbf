//! One alarm per fault (issue 28, item 4): a process gone of any role, a supervisor killed, a
//! host's clock off the store's, and the store's own outage across several monitors — each
//! alarmed once, and its end once, however many processes or monitors see it.
use std::time::Duration;

use crate::harness::capture::Capture;
use crate::harness::cluster::Cluster;
use crate::harness::mariadb::MariaDb;
use crate::harness::services::{Etcd, Redis};
use crate::harness::{wait_for, Cronvisor};

/// A monitor killed is alarmed `monitor_lost` once, by the monitor the supervisor starts in
/// its place, as executors and dispatchers are.
#[test]
fn a_killed_monitor_is_alarmed_once_by_its_successor() {
    let cv = Cronvisor::start_with(
        "monitor-lost",
        "[monitor]\nlost_after = \"3s\"\n[executor]\nheartbeat = \"1s\"\n",
    );
    let pid = cv.child_pid("monitor").expect("monitor pid");
    // SAFETY: plain kill(2) of this test's own process.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let alarm = wait_for(Duration::from_secs(40), "the monitor_lost alarm", || {
        cv.alarms_of("monitor_lost").into_iter().next()
    });
    let subject = alarm["details"]["error"].as_str().unwrap_or("");
    assert!(subject.contains(&format!("/{pid}/")), "{alarm}");
    assert!(subject.contains("stopped without leaving"), "{alarm}");
    // The old row went with the alarm; only the new monitor beats.
    wait_for(Duration::from_secs(20), "one monitor row", || {
        (cv.sqlite("SELECT COUNT(*) FROM monitors").trim() == "1").then_some(())
    });
    assert_eq!(cv.alarms_of("monitor_lost").len(), 1);
    // As a person reads it: `cronvisor alarms` lists it, once, as the system's.
    let listed = cv.ok(&["alarms"]);
    let rows: Vec<&str> = listed
        .lines()
        .filter(|l| l.contains("monitor_lost"))
        .collect();
    assert_eq!(rows.len(), 1, "{listed}");
    assert!(rows[0].contains("(cronvisor)"), "{listed}");
    // A stop the operator asked for is no fault: nothing more is alarmed.
    assert!(cv.alarms_of("executor_lost").is_empty());
    assert!(cv.alarms_of("dispatcher_lost").is_empty());
}

/// A supervisor killed (its roles orphaned: they drain and exit) is a fault, where a stop is
/// not: its roles do not leave, so the other host's monitor alarms each of them once. A second
/// host's loss is its own alarm, not a repeat folded into the first's.
#[test]
fn a_killed_supervisor_is_alarmed_through_the_roles_it_left() {
    let mut c = Cluster::start();
    c.host("m", &["monitor"]);
    c.host("a", &["dispatcher", "executor"]);
    c.host("b", &["executor"]);
    wait_for(Duration::from_secs(20), "the hosts' roles beating", || {
        let n = |t: &str, h: &str| {
            c.sql(&format!(
                "SELECT COUNT(*) FROM cron.{t} WHERE instance LIKE '{h}/%'"
            ))[0][0]
                .clone()
        };
        (n("executors", "a") == "1" && n("dispatchers", "a") == "1" && n("executors", "b") == "1")
            .then_some(())
    });
    c.kill_supervisor("a");
    let lost = |c: &Cluster, kind: &str, host: &str| -> Vec<serde_json::Value> {
        c.get("m")
            .alarms_of(kind)
            .into_iter()
            .filter(|a| {
                a["details"]["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!(" {host}/"))
            })
            .collect()
    };
    for kind in ["executor_lost", "dispatcher_lost"] {
        wait_for(Duration::from_secs(40), kind, || {
            (!lost(&c, kind, "a").is_empty()).then_some(())
        });
    }
    c.kill_supervisor("b");
    wait_for(Duration::from_secs(40), "b's executor_lost", || {
        (!lost(&c, "executor_lost", "b").is_empty()).then_some(())
    });
    for (kind, host) in [
        ("executor_lost", "a"),
        ("dispatcher_lost", "a"),
        ("executor_lost", "b"),
    ] {
        let found = lost(&c, kind, host);
        assert_eq!(found.len(), 1, "{kind} of {host}: {found:?}");
        assert_eq!(found[0]["count"], 1, "{found:?}");
        assert_eq!(found[0]["details"]["host"], "m", "{found:?}");
    }
}

/// A host's wall clock stepped 5 s ahead of the store's (MariaDB's clock, which every host
/// shares) is alarmed `clock_skew` once — though its executor, dispatcher and monitor each
/// measure it — and stepped back, `clock_back` once.
#[test]
fn a_hosts_clock_off_the_stores_is_alarmed_once_and_its_return_once() {
    let db = MariaDb::start();
    let clock = crate::harness::TempDir::new("skew-clock");
    let offset = clock.0.join("offset");
    std::fs::write(&offset, "+0\n").expect("offset");
    let env = crate::harness::faketime_env(&offset);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cv = Cronvisor::start_with_env(
        "clock-skew",
        &format!(
            "[store]\nurl = \"{}\"\n[monitor]\nlost_after = \"4s\"\n[executor]\nheartbeat = \"1s\"\n",
            db.url()
        ),
        &env,
    );
    // In step with the store: each process has measured, nothing alarmed.
    wait_for(Duration::from_secs(20), "every role's measurement", || {
        let n = |t: &str| {
            db.sql_root(&format!(
                "SELECT COUNT(*) FROM cron.{t} WHERE skew_ms IS NOT NULL"
            ))
            .ok()
            .is_some_and(|n| n.trim() != "0")
        };
        (n("executors") && n("dispatchers") && n("monitors")).then_some(())
    });
    assert!(cv.alarms_of("clock_skew").is_empty());
    std::fs::write(&offset, "+5\n").expect("step ahead");
    let alarm = wait_for(Duration::from_secs(30), "the clock_skew alarm", || {
        cv.alarms_of("clock_skew").into_iter().next()
    });
    let subject = alarm["details"]["error"].as_str().unwrap_or("");
    assert!(subject.contains("ahead of the store's"), "{alarm}");
    assert!(subject.contains("monitor.max_clock_skew"), "{alarm}");
    std::fs::write(&offset, "+0\n").expect("step back");
    let back = wait_for(Duration::from_secs(30), "the clock_back alarm", || {
        cv.alarms_of("clock_back").into_iter().next()
    });
    assert!(
        back["details"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("agrees with the store's again"),
        "{back}"
    );
    assert_eq!(cv.alarms_of("clock_skew").len(), 1);
    assert_eq!(cv.alarms_of("clock_back").len(), 1);
}

/// The store away: two monitors see it, one sends `store_down` (they agree through Redis), and
/// when it returns one `store_back` is raised and the `store_down` sent is on record.
#[test]
fn a_store_outage_is_alarmed_once_across_monitors_and_recorded_when_it_ends() {
    let capture = Capture::start(0);
    let mut c = Cluster::start_on(
        Etcd::start(),
        Redis::start(),
        MariaDb::start(),
        String::new(),
        format!(
            "[alarm]\nwebhook_urls = [\"http://{}/hook\"]\n",
            capture.addr
        ),
    );
    c.host("m1", &["monitor"]);
    c.host("m2", &["monitor"]);
    wait_for(Duration::from_secs(20), "both monitors beating", || {
        (c.sql("SELECT COUNT(*) FROM cron.monitors")[0][0] == "2").then_some(())
    });
    c.db.stop();
    let logs = |c: &Cluster| [c.get("m1").log(), c.get("m2").log()];
    wait_for(
        Duration::from_secs(60),
        "both monitors to see the outage",
        || {
            let l = logs(&c);
            let sent = l
                .iter()
                .filter(|l| l.contains("store unreachable: alarming directly"))
                .count();
            let other = l
                .iter()
                .filter(|l| l.contains("another monitor alarmed it"))
                .count();
            (sent + other == 2).then_some(())
        },
    );
    let downs = capture
        .requests()
        .into_iter()
        .filter(|r| r.body.contains("\"store_down\""))
        .count();
    assert_eq!(downs, 1, "one store_down for one outage");
    c.db.resume();
    wait_for(
        Duration::from_secs(60),
        "both monitors to see it back",
        || {
            logs(&c)
                .iter()
                .all(|l| l.contains("store outage over"))
                .then_some(())
        },
    );
    let m1 = c.get("m1");
    let back = wait_for(Duration::from_secs(30), "the store_back alarm sent", || {
        m1.alarms_of("store_back")
            .into_iter()
            .find(|a| a["status"] == "sent")
    });
    assert!(
        back["details"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("unreachable for"),
        "{back}"
    );
    assert_eq!(m1.alarms_of("store_back").len(), 1);
    let down = m1.alarms_of("store_down");
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(down[0]["status"], "sent", "{down:?}");
}
