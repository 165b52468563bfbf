//! Alarms reach a real HTTP listener (webhook and SMS gateway) with the run's details; a
//! recovery follows a failure; repeats are merged; failed deliveries are retried.

use std::time::Duration;

use serde_json::Value;

use crate::harness::capture::Capture;
use crate::harness::{wait_for, Cronvisor};

/// The webhook bodies `capture` received of alarms of `kind`.
fn hooks_of(capture: &Capture, kind: &str) -> Vec<Value> {
    capture
        .requests()
        .iter()
        .filter(|r| r.path == "/hook")
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter(|v| v["kind"] == kind)
        .collect()
}

fn alarm_config(capture: &Capture) -> String {
    format!(
        "[monitor]\ncheck_interval_ms = 100\n[alarm]\nwebhook_urls = [\"http://{a}/hook\"]\n\
         [alarm.sms]\nurl = \"http://{a}/sms?to={{mobile}}\"\nbody = \"ALARM {{job}} {{kind}} {{state}} {{link}}\"\n\
         to = [\"100\"]\n",
        a = capture.addr
    )
}

#[test]
fn webhook_and_sms_carry_the_run_and_a_recovery_follows() {
    let capture = Capture::start(0);
    let cv = Cronvisor::start_with("alarms", &alarm_config(&capture));
    cv.add_job(
        "broken",
        "@yearly",
        "echo boom >&2; exit 3",
        &["--admin-mobile", "200"],
    );
    let id = cv.run_now("broken");
    cv.wait_run(&id, "the failure", |s| s == "failed");
    let got = wait_for(Duration::from_secs(20), "1 webhook and 2 SMS", || {
        let r = capture.requests();
        (r.len() >= 3).then_some(r)
    });
    let hooks: Vec<_> = got.iter().filter(|r| r.path == "/hook").collect();
    assert_eq!(hooks.len(), 1, "{got:?}");
    let hook: Value = serde_json::from_str(&hooks[0].body).expect("webhook JSON");
    assert_eq!(hooks[0].method, "POST");
    assert_eq!(hook["job"], "broken");
    assert_eq!(hook["kind"], "failed");
    assert_eq!(hook["run"].to_string(), id);
    assert_eq!(hook["exit_code"], 3);
    assert!(
        hook["link"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("/runs/{id}")),
        "{hook}"
    );
    let text = hook["text"].as_str().unwrap_or("");
    assert!(
        text.contains("`broken` failed") && text.contains("exit code 3"),
        "{text}"
    );
    let mut sms: Vec<_> = got.iter().filter(|r| r.path.starts_with("/sms")).collect();
    sms.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        sms.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/sms?to=100", "/sms?to=200"]
    );
    for s in &sms {
        assert!(
            s.body.starts_with("ALARM broken failed failed http://"),
            "{}",
            s.body
        );
        assert!(s.body.ends_with(&format!("/runs/{id}")), "{}", s.body);
    }

    // The job is fixed: its next success sends "recovered" (once per channel and recipient).
    cv.ok(&["job", "edit", "broken", "--command", "true"]);
    let id = cv.run_now("broken");
    cv.wait_run(&id, "the success", |s| s == "succeeded");
    let recovered = wait_for(Duration::from_secs(20), "the recovery webhook", || {
        capture
            .requests()
            .into_iter()
            .filter(|r| r.path == "/hook")
            .find(|r| r.body.contains("\"recovered\""))
    });
    let v: Value = serde_json::from_str(&recovered.body).expect("json");
    assert_eq!(v["state"], "succeeded");
    // Every alarm is on record with its delivery state: 3 failure + 3 recovery deliveries.
    wait_for(Duration::from_secs(20), "six alarms sent", || {
        let alarms = cv.json(&["alarms"]);
        let sent = alarms
            .as_array()?
            .iter()
            .filter(|x| x["status"] == "sent")
            .count();
        (sent == 6).then_some(())
    });
}

#[test]
fn repeated_alarms_merge_and_a_failed_delivery_is_retried() {
    // The webhook answers 500 once: the alarm is stored failed-then-retried, and delivered.
    let capture = Capture::start(1);
    let cfg = format!(
        "[monitor]\ncheck_interval_ms = 100\n[alarm]\nwebhook_urls = [\"http://{}/hook\"]\n",
        capture.addr
    );
    let cv = Cronvisor::start_with("alarm-merge", &cfg);
    cv.add_job("flaky", "@yearly", "exit 1", &[]);
    for _ in 0..3 {
        let id = cv.run_now("flaky");
        cv.wait_run(&id, "the failure", |s| s == "failed");
    }
    let alarm = wait_for(
        Duration::from_secs(30),
        "the merged alarm delivered",
        || {
            let alarms = cv.json(&["alarms"]);
            let a = alarms.as_array()?.first()?.clone();
            (a["status"] == "sent" && a["count"] == 3).then_some(a)
        },
    );
    assert_eq!(
        cv.json(&["alarms"]).as_array().map(Vec::len),
        Some(1),
        "merged into one"
    );
    assert_eq!(alarm["attempts"], 2, "{alarm}");
    assert!(
        alarm["last_error"].is_null() || alarm["last_error"].as_str().unwrap_or("").contains("500")
    );
    let hooks = capture.requests();
    assert_eq!(hooks.len(), 2, "one refused, one delivered: {hooks:?}");
    // Firing was not held up: all three runs are recorded.
    assert_eq!(cv.runs("flaky").len(), 3);
}

#[test]
fn a_job_alarms_only_through_its_own_channels() {
    let capture = Capture::start(0);
    let cv = Cronvisor::start_with("alarm-channels", &alarm_config(&capture));
    cv.add_job(
        "sms-only",
        "@yearly",
        "exit 1",
        &["--alarm-channels", "sms", "--admin-mobile", "300"],
    );
    let id = cv.run_now("sms-only");
    cv.wait_run(&id, "the failure", |s| s == "failed");
    // Every target of an alarm is recorded in the same pass: once one is, all are.
    let alarms = wait_for(Duration::from_secs(20), "the job's alarms sent", || {
        let alarms = cv.json(&["alarms"]).as_array().cloned()?;
        (!alarms.is_empty() && alarms.iter().all(|a| a["status"] == "sent")).then_some(alarms)
    });
    let mut got: Vec<(String, String)> = alarms
        .iter()
        .map(|a| {
            (
                a["channel"].as_str().unwrap_or("").to_string(),
                a["recipient"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("sms".to_string(), "100".to_string()),
            ("sms".to_string(), "300".to_string())
        ],
        "the webhook is configured but not one of this job's channels"
    );
    assert!(capture.requests().iter().all(|r| r.path != "/hook"));
    // An unknown channel is refused, naming the field.
    let out = cv.cli(&[
        "job",
        "add",
        "--name",
        "x",
        "--schedule",
        "@daily",
        "--command",
        "true",
        "--alarm-channels",
        "pager",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("alarm_channels"));
}

/// A real SMTP server (aiosmtpd, from PyPI) printing what it receives.
struct Smtp {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Smtp {
    fn start(port: u16, out: std::path::PathBuf) -> Smtp {
        let child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(std::fs::File::create(&out).expect("smtp log"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (scripts/install-deps.sh installs it)");
        Smtp { child, out }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn email_waits_for_a_down_smtp_server_then_arrives() {
    let port = crate::harness::free_port();
    let cfg = format!(
        "[monitor]\ncheck_interval_ms = 100\n[alarm]\nmerge_window_secs = 1\n[alarm.email]\n\
         smtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsecurity = \"none\"\n\
         from = \"cron@example.test\"\nto = [\"ops@example.test\"]\n"
    );
    let cv = Cronvisor::start_with("alarm-email", &cfg);
    cv.add_job(
        "mailme",
        "@yearly",
        "exit 2",
        &["--admin-email", "dev@example.test"],
    );
    let id = cv.run_now("mailme");
    cv.wait_run(&id, "the failure", |s| s == "failed");
    // The SMTP server is down: both alarms are stored, attempted, and waiting for a retry.
    wait_for(
        Duration::from_secs(20),
        "failed delivery attempts on record",
        || {
            let alarms = cv.json(&["alarms"]);
            let a = alarms.as_array()?;
            (a.len() == 2
                && a.iter().all(|x| {
                    x["channel"] == "email"
                        && x["attempts"].as_i64() >= Some(1)
                        && x["status"] != "sent"
                }))
            .then_some(())
        },
    );
    // Firing is unaffected meanwhile.
    let other = cv.run_now("mailme");
    cv.wait_run(&other, "another run", |s| s == "failed");

    let smtp = Smtp::start(port, cv.dir.0.join("smtp.out"));
    wait_for(Duration::from_secs(40), "both e-mails delivered", || {
        let alarms = cv.json(&["alarms"]);
        let a = alarms.as_array()?;
        (a.iter().filter(|x| x["status"] == "sent").count() >= 2).then_some(())
    });
    let mail = wait_for(Duration::from_secs(10), "the SMTP server's output", || {
        let m = smtp.received();
        (m.contains("ops@example.test") && m.contains("dev@example.test")).then_some(m)
    });
    assert!(
        mail.contains("Subject: [cronvisor] mailme: failed"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("/runs/{id}")),
        "link missing: {mail}"
    );
}

#[test]
fn a_store_outage_is_alarmed_directly_and_its_end_through_the_store() {
    let mut db = crate::harness::mariadb::MariaDb::start();
    let capture = Capture::start(0);
    let cv = Cronvisor::start_with(
        "store-down",
        &format!(
            "[store]\nurl = \"{}\"\n[executor]\nheartbeat_ms = 2000\n\
             [monitor]\ncheck_interval_ms = 100\nlost_after_ms = 5000\n\
             [alarm]\nwebhook_urls = [\"http://{}/hook\"]\n",
            db.url(),
            capture.addr
        ),
    );
    // A job runs through an outage longer than lost_after_ms, so that every heartbeat is
    // stale when the store returns (and the monitor sees it back before the executor's next
    // beat lands); the job ends when the test says so.
    let release = cv.dir.0.join("release");
    let command = format!(
        "while [ ! -f {r} ]; do sleep 0.1; done; echo done",
        r = release.display()
    );
    cv.add_job("through", "@yearly", &command, &[]);
    let id = cv.run_now("through");
    cv.wait_running_pid(&id);
    db.stop();
    // Nothing can be stored: the alarm goes out at once, straight from the monitor.
    let down = wait_for(Duration::from_secs(40), "the store_down webhook", || {
        capture
            .requests()
            .into_iter()
            .find(|r| r.body.contains("store_down"))
    });
    let hook: Value = serde_json::from_str(&down.body).expect("webhook JSON");
    assert_eq!(hook["kind"], "store_down");
    assert!(
        hook["text"].as_str().unwrap_or("").contains("unreachable"),
        "{hook}"
    );
    // The outage under test: longer than lost_after_ms.
    std::thread::sleep(Duration::from_secs(6));
    db.resume();
    // Its end is an ordinary stored alarm, delivered (and retried) like the others.
    let back = wait_for(Duration::from_secs(60), "the store_back alarm sent", || {
        cv.json(&["alarms"])
            .as_array()?
            .iter()
            .find(|a| a["kind"] == "store_back" && a["status"] == "sent")
            .cloned()
    });
    assert!(
        back["details"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("unreachable for"),
        "{back}"
    );
    // Every heartbeat looked stale when the store came back; the monitor waited for fresh
    // ones instead of declaring the executor dead and its run lost.
    std::fs::write(&release, "").expect("release the job");
    let run = cv.wait_run(&id, "the job's end", |s| {
        !matches!(s, "scheduled" | "dispatched" | "running")
    });
    assert_eq!(run["state"], "succeeded", "{run}");
    let alarms = cv.json(&["alarms"]);
    assert!(
        alarms.as_array().is_some_and(|a| a
            .iter()
            .all(|x| x["kind"] != "executor_lost" && x["kind"] != "lost")),
        "{alarms}"
    );
}

#[test]
fn no_dispatcher_is_alarmed_once_and_the_missed_instants_once_when_one_returns() {
    let capture = Capture::start(0);
    // The supervisor waits 6 s before restarting a crashed role: an outage of the only
    // dispatcher while the monitor and the executor keep running.
    let cfg = format!(
        "[executor]\nheartbeat_ms = 200\n[monitor]\nlost_after_ms = 1000\ncheck_interval_ms = 100\n\
         [supervisor]\nrestart_backoff_initial_ms = 6000\n\
         [alarm]\nwebhook_urls = [\"http://{}/hook\"]\n",
        capture.addr
    );
    let cv = Cronvisor::start_with("no-dispatcher", &cfg);
    crate::policies::add_misfire_jobs(&cv);
    let dispatcher = cv.child_pid("dispatcher").expect("dispatcher");
    // SAFETY: kill(2) of the dispatcher child.
    unsafe {
        libc::kill(dispatcher as i32, libc::SIGKILL);
    }
    let hooks_of = |kind: &str| hooks_of(&capture, kind);
    // The alarm of `kind` (within `secs`), whose text says `says`.
    let hook_saying = |kind: &str, secs: u64, says: &str| -> Value {
        let hook = wait_for(Duration::from_secs(secs), kind, || hooks_of(kind).pop());
        let text = hook["text"].as_str().unwrap_or("");
        assert!(text.contains(says), "{hook}");
        hook
    };
    hook_saying("dispatchers_down", 10, "no job fires");
    hook_saying("dispatcher_lost", 10, "stopped without leaving");
    // The supervisor restarts the dispatcher: `run_once` runs the latest missed instant once,
    // `skip` records the missed instants as one `missed` run, alarmed once.
    hook_saying("dispatchers_back", 20, "runs again");
    let runs = wait_for(Duration::from_secs(20), "the catch-up run", || {
        let runs = cv.runs("catch-up");
        runs.iter()
            .any(|r| r["trigger"] == "misfire" && r["state"] == "succeeded")
            .then_some(runs)
    });
    let misfires = runs.iter().filter(|r| r["trigger"] == "misfire").count();
    assert_eq!(misfires, 1, "one catch-up, not a storm: {runs:?}");
    let missed = hook_saying("missed", 10, "while no dispatcher ran");
    assert_eq!(missed["job"], "no-catch-up", "{missed}");
    let missed_runs: Vec<Value> = cv
        .runs("no-catch-up")
        .into_iter()
        .filter(|r| r["state"] == "missed")
        .collect();
    assert_eq!(missed_runs.len(), 1, "{missed_runs:?}");
    // Nothing more comes of the outage: wait until every alarm is delivered, then count.
    wait_for(Duration::from_secs(10), "every alarm delivered", || {
        let alarms = cv.json(&["alarms"]);
        alarms
            .as_array()?
            .iter()
            .all(|a| a["status"] == "sent")
            .then_some(())
    });
    for kind in [
        "dispatchers_down",
        "dispatcher_lost",
        "dispatchers_back",
        "missed",
    ] {
        assert_eq!(hooks_of(kind).len(), 1, "{kind}: {:?}", capture.requests());
    }
    assert!(cv.runs("catch-up").iter().all(|r| r["state"] != "missed"));
}

#[test]
fn alarms_test_sends_one_to_every_channel_and_says_how_each_went() {
    let capture = Capture::start(1);
    let cv = Cronvisor::start_with("alarms-test", &alarm_config(&capture));
    // The first delivery fails (the listener answers 500 once): the exit status says so.
    let out = cv.cli(&["alarms", "test"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        lines[0],
        format!(
            "webhook http://{}/hook failed: answered 500 Internal Server Error",
            capture.addr
        )
    );
    assert_eq!(lines[1], "sms 100 delivered");
    let out = cv.cli(&["alarms", "test", "--channels", "webhook"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("webhook http://{}/hook delivered\n", capture.addr)
    );
    let hooks: Vec<_> = capture
        .requests()
        .into_iter()
        .filter(|r| r.path == "/hook")
        .collect();
    assert!(
        hooks
            .last()
            .is_some_and(|h| h.body.contains("a test alarm, sent by api.token")),
        "{hooks:?}"
    );
    // Nothing was stored as an alarm; the audit log has it.
    assert!(cv
        .json(&["alarms"])
        .as_array()
        .is_some_and(|a| a.is_empty()));
    assert!(cv.ok(&["audit"]).contains("alarm.test"));
    let bad = cv.cli(&["alarms", "test", "--channels", "pager"]);
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("error: channels: "));
}

#[test]
fn alarms_test_without_a_channel_says_so() {
    let cv = Cronvisor::start("alarms-test-none");
    let out = cv.cli(&["alarms", "test"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("no alarm channel configured"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn chat_robots_get_the_alarm_in_their_own_format_signed_when_they_have_a_secret() {
    let capture = Capture::start(0);
    let a = &capture.addr;
    let cv = Cronvisor::start_with(
        "alarms-robots",
        &format!(
            "[monitor]\ncheck_interval_ms = 100\n[alarm]\nrobots = [\
             {{kind = \"dingtalk\", url = \"http://{a}/ding?access_token=t\", secret = \"SEC\"}}, \
             {{kind = \"feishu\", url = \"http://{a}/feishu\", secret = \"SEC\"}}, \
             {{kind = \"wecom\", url = \"http://{a}/wecom?key=k\"}}, \
             {{kind = \"slack\", url = \"http://{a}/slack\"}}]\n"
        ),
    );
    cv.add_job("broken", "@yearly", "exit 3", &[]);
    let id = cv.run_now("broken");
    cv.wait_run(&id, "the failure", |s| s == "failed");
    let seen = wait_for(Duration::from_secs(20), "the four robots", || {
        let r = capture.requests();
        (r.len() >= 4).then_some(r)
    });
    let by_path = |p: &str| {
        seen.iter()
            .find(|r| r.path.starts_with(p))
            .unwrap_or_else(|| panic!("no request to {p}: {seen:?}"))
            .clone()
    };
    let ding = by_path("/ding");
    assert!(
        ding.path.contains("&timestamp=") && ding.path.contains("&sign="),
        "{}",
        ding.path
    );
    let body: Value = serde_json::from_str(&ding.body).expect("json");
    assert_eq!(body["msgtype"], "text");
    assert!(
        body["text"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("`broken` failed"),
        "{body}"
    );
    let feishu: Value = serde_json::from_str(&by_path("/feishu").body).expect("json");
    assert_eq!(feishu["msg_type"], "text");
    assert!(
        feishu["sign"].is_string() && feishu["timestamp"].is_string(),
        "{feishu}"
    );
    let wecom: Value = serde_json::from_str(&by_path("/wecom").body).expect("json");
    assert!(wecom["text"]["content"]
        .as_str()
        .unwrap_or("")
        .contains("broken"));
    let slack: Value = serde_json::from_str(&by_path("/slack").body).expect("json");
    assert!(slack["text"].as_str().unwrap_or("").contains("broken"));
    // Listed with their URLs masked (the query holds the robot's token).
    let listed = cv.ok(&["alarms"]);
    assert!(
        !listed.contains("access_token=t") && !listed.contains("key=k"),
        "{listed}"
    );
}

/// A planned stop (SIGTERM, started again later) is no alarm storm: each job's missed
/// instants are recorded `missed` as after a crash, but the stop raises one summary alarm
/// instead of one per job. (The crash case, alarmed per job, is the test above.)
#[test]
fn a_planned_stop_raises_one_summary_alarm_not_one_per_job() {
    let capture = Capture::start(0);
    let cfg = format!(
        "[alarm]\nwebhook_urls = [\"http://{}/hook\"]\n",
        capture.addr
    );
    let mut cv = Cronvisor::start_with("planned-stop", &cfg);
    let jobs: Vec<String> = (1..=5).map(|i| format!("tick{i}")).collect();
    for job in &jobs {
        cv.add_job(job, "* * * * * *", "true", &[]);
    }
    for job in &jobs {
        cv.wait_succeeded(job, 1);
    }
    cv.stop_with(libc::SIGTERM, Duration::from_secs(20));
    // Downtime across several instants (this sleep *is* the stop under test).
    std::thread::sleep(Duration::from_millis(3500));
    cv.restart();
    let hooks_of = |kind: &str| hooks_of(&capture, kind);
    let summary = wait_for(Duration::from_secs(20), "the summary alarm", || {
        hooks_of("stopped").pop()
    });
    let text = summary["text"].as_str().unwrap_or("");
    assert!(text.contains("of 5 job(s) missed"), "{summary}");
    assert!(text.contains("planned stop"), "{summary}");
    for job in &jobs {
        let missed: Vec<Value> = cv
            .runs(job)
            .into_iter()
            .filter(|r| r["state"] == "missed")
            .collect();
        assert_eq!(missed.len(), 1, "{job}: {missed:?}");
        let reason = missed[0]["error"].as_str().unwrap_or("");
        assert!(reason.contains("while no dispatcher ran"), "{reason}");
    }
    wait_for(Duration::from_secs(10), "every alarm delivered", || {
        let alarms = cv.json(&["alarms"]);
        alarms
            .as_array()?
            .iter()
            .all(|a| a["status"] == "sent")
            .then_some(())
    });
    assert_eq!(hooks_of("stopped").len(), 1, "{:?}", capture.requests());
    assert!(hooks_of("missed").is_empty(), "{:?}", capture.requests());
}
