//! The CLI as a person uses it: human output, pipes, filters, edits and deletes that refuse
//! what they should, one supervisor per data dir.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{alive, http, wait_for, Cronvisor, BIN};

/// Runs `cronvisor ARGS | head -1` the way a shell does: the reader goes away after one line.
/// Returns (exit signal or code, stderr, the line read).
fn piped_into_head(cv: &Cronvisor, args: &[&str]) -> (Option<i32>, Option<i32>, String, String) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(cv.config_path())
        .args(args)
        .env_remove("CRONVISOR_TOKEN")
        .env_remove("CRONVISOR_API_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    let n = stdout.read(&mut first).expect("read");
    drop(stdout); // `head` exits: the pipe's reader is gone.
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    let status = child.wait().expect("wait");
    (
        status.code(),
        status.signal(),
        err,
        String::from_utf8_lossy(&first[..n]).to_string(),
    )
}

#[test]
fn a_closed_stdout_ends_any_listing_quietly() {
    let cv = Cronvisor::start("cli-pipe");
    for i in 0..40 {
        cv.add_job(&format!("job{i}"), "@hourly", "true", &[]);
    }
    cv.add_job("tick", "* * * * * *", "seq 1 20000", &[]);
    let tick = cv.wait_succeeded("tick", 1);
    let run_id = tick[0]["id"].to_string();
    for args in [
        vec!["job", "list"],
        vec!["next", "* * * * * *", "--count", "10000"],
        vec!["runs", "--limit", "1000"],
        vec!["run", "show", run_id.as_str()],
        vec!["status"],
    ] {
        let (code, signal, err, out) = piped_into_head(&cv, &args);
        assert!(!out.is_empty(), "{args:?}: printed nothing");
        assert_eq!(
            err, "",
            "{args:?}: nothing on stderr (no panic, no backtrace)"
        );
        // Either it wrote everything before the reader left (exit 0) or SIGPIPE ended it,
        // as it ends `cat`: never exit 101 (a panic).
        assert!(
            code == Some(0) || signal == Some(libc::SIGPIPE),
            "{args:?}: exit {code:?}, signal {signal:?}"
        );
    }
}

#[test]
fn runs_filter_by_state_trigger_time_and_executor_and_page_by_cursor() {
    let cv = Cronvisor::start("cli-filters");
    cv.add_job("ok", "* * * * * *", "true", &[]);
    cv.add_job("bad", "@hourly", "exit 3", &[]);
    let bad = cv.run_now("bad");
    cv.wait_run(&bad, "the manual run to fail", |s| s == "failed");
    cv.wait_succeeded("ok", 3);

    let failed = cv.json(&["runs", "--state", "failed,timed_out"]);
    let failed = failed.as_array().expect("runs");
    assert!(!failed.is_empty());
    assert!(failed.iter().all(|r| r["state"] == "failed"), "{failed:?}");
    let manual = cv.json(&["runs", "--trigger", "manual"]);
    assert_eq!(manual.as_array().map(Vec::len), Some(1), "{manual}");
    assert_eq!(manual[0]["job_name"], "bad");
    let future = cv.json(&["runs", "--since", "2100-01-01T00:00:00Z"]);
    assert_eq!(future.as_array().map(Vec::len), Some(0));
    let past = cv.json(&["runs", "--until", "2000-01-01T00:00:00Z"]);
    assert_eq!(past.as_array().map(Vec::len), Some(0));
    let recent = cv.json(&["runs", "--since", "10m", "--job", "ok"]);
    assert!(recent.as_array().is_some_and(|r| r.len() >= 3), "{recent}");
    // The executor filter takes its host (the first part of its id).
    let executor = recent[0]["executor"]
        .as_str()
        .expect("executor")
        .to_string();
    let host = executor.split('/').next().expect("host").to_string();
    for name in [executor.as_str(), host.as_str()] {
        let mine = cv.json(&["runs", "--executor", name, "--job", "ok"]);
        assert!(mine.as_array().is_some_and(|r| !r.is_empty()), "{name}");
    }
    let none = cv.json(&["runs", "--executor", "elsewhere"]);
    assert_eq!(none.as_array().map(Vec::len), Some(0));

    // Paging: two pages of 2 are the first 4 runs, without a gap or a repeat.
    let all = cv.json(&["runs", "--job", "ok", "--limit", "4"]);
    let page1 = cv.json(&["runs", "--job", "ok", "--limit", "2"]);
    let last = page1[1]["id"].to_string();
    let page2 = cv.json(&["runs", "--job", "ok", "--limit", "2", "--before", &last]);
    let ids = |v: &Value| -> Vec<i64> {
        v.as_array()
            .map(|a| a.iter().filter_map(|r| r["id"].as_i64()).collect())
            .unwrap_or_default()
    };
    let mut paged = ids(&page1);
    paged.extend(ids(&page2));
    assert_eq!(paged, ids(&all)[..4.min(paged.len())]);
    let human = cv.ok(&["runs", "--job", "ok", "--limit", "2"]);
    assert!(
        human.contains(&format!("(more: --before {last})")),
        "{human}"
    );
    // Times read as times, not epoch milliseconds.
    let instant_ms = page1[0]["instant"].to_string();
    assert!(!human.contains(&instant_ms), "{human}");
    assert!(
        human
            .lines()
            .nth(1)
            .is_some_and(|l| l.matches(':').count() >= 3),
        "{human}"
    );

    // The failure's alarm (recorded only: no channel here) reads as a table.
    wait_for(Duration::from_secs(20), "the failure's alarm", || {
        let alarms = cv.ok(&["alarms"]);
        (alarms.starts_with("ID ") && alarms.contains(" failed ") && alarms.contains(" bad "))
            .then_some(())
    });

    // The API answers the same filters; a bad one names its parameter.
    let api = cv.endpoint("api");
    let token = cv.token();
    let (code, body) = http(&api, "GET", "/api/v1/runs?state=failed", Some(&token), None);
    assert_eq!(code, 200, "{body}");
    for (query, field) in [
        ("state=exploded", "state"),
        ("trigger=cosmic", "trigger"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
    ] {
        let (code, body) = http(
            &api,
            "GET",
            &format!("/api/v1/runs?{query}"),
            Some(&token),
            None,
        );
        assert_eq!(code, 400, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["error"]["field"], field, "{body}");
    }
}

#[test]
fn job_list_and_show_tell_the_next_fire_and_the_last_run_and_next_takes_a_job() {
    let cv = Cronvisor::start("cli-views");
    cv.add_job(
        "daily",
        "0 30 2 * * *",
        "true",
        &["--tz", "America/New_York"],
    );
    let id = cv.run_now("daily");
    cv.wait_run(&id, "the run to end", |s| s == "succeeded");
    let view = cv.json(&["job", "show", "daily"]);
    assert_eq!(view["last_run"]["state"], "succeeded");
    assert!(view["next_fire"].as_i64().is_some(), "{view}");
    let shown = cv.ok(&["job", "show", "daily"]);
    assert!(shown.contains("next fire:  "), "{shown}");
    assert!(shown.contains("last run:   succeeded ("), "{shown}");
    let list = cv.ok(&["job", "list"]);
    assert!(list
        .lines()
        .next()
        .is_some_and(|h| h.contains("NEXT FIRE") && h.contains("LAST RUN")));
    assert!(list.contains("succeeded "), "{list}");
    // `next` with a job name uses its rule in its zone.
    let next = cv.ok(&[
        "next",
        "daily",
        "--count",
        "1",
        "--from",
        "2026-01-10T00:00:00Z",
    ]);
    assert_eq!(next.trim(), "2026-01-10T02:30:00-05:00");
    let missing = cv.cli(&["next", "nosuchjob"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no job `nosuchjob`"));
}

#[test]
fn job_edit_covers_every_field_and_refuses_what_add_refuses() {
    let cv = Cronvisor::start("cli-edit");
    cv.ok(&[
        "job",
        "add",
        "--name",
        "web",
        "--schedule",
        "@hourly",
        "--http-url",
        "http://127.0.0.1:9/x",
        "--timeout",
        "30s",
    ]);
    cv.add_job("shell", "@hourly", "true", &[]);
    let before = cv.json(&["job", "show", "web"]);

    // Refused, and nothing changes.
    for (args, says) in [
        (
            vec!["job", "edit", "web", "--command", "echo x"],
            "command: this is an HTTP job",
        ),
        (
            vec!["job", "edit", "shell", "--http-method", "POST"],
            "http_method: only applies to an HTTP job",
        ),
        (
            vec!["job", "edit", "shell", "--http-body", "{}"],
            "http_body: only applies to an HTTP job",
        ),
        (
            vec!["job", "edit", "web", "--schedule", "61 * * * *"],
            "minute: 61 is out of range 0-59",
        ),
        (
            vec!["job", "edit", "web", "--timeout", "45d"],
            "timeout_secs: must be between 1s and 30d",
        ),
        (
            vec!["job", "edit", "web", "--name", "SHELL"],
            "a job named `shell` exists already",
        ),
        (vec!["job", "edit", "web"], "nothing to change"),
    ] {
        let out = cv.cli(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(
        cv.json(&["job", "show", "web"]),
        before,
        "refused edits stored nothing"
    );

    // Every HTTP field, the timeout cleared, renamed.
    cv.ok(&[
        "job",
        "edit",
        "web",
        "--http-method",
        "post",
        "--http-header",
        "X-A: 1",
        "--http-body",
        "{}",
        "--http-expect",
        "201",
        "--timeout",
        "none",
        "--name",
        "web2",
    ]);
    let web = cv.json(&["job", "show", "web2"]);
    assert_eq!(web["http_method"], "POST");
    assert_eq!(web["http_headers"]["X-A"], "1");
    assert_eq!(web["http_body"], "{}");
    assert_eq!(web["http_expect_status"], 201);
    assert_eq!(web["timeout_secs"], Value::Null);
    assert_eq!(web["id"], before["id"], "renamed, same job");
    // Turned into a command job: no HTTP setting is left behind.
    cv.ok(&[
        "job",
        "edit",
        "web2",
        "--command",
        "echo now",
        "--http-url",
        "",
    ]);
    let now = cv.json(&["job", "show", "web2"]);
    assert_eq!(now["command"], "echo now");
    assert_eq!(now["http_url"], Value::Null);
    assert_eq!(now["http_headers"], serde_json::json!({}));
    let id = cv.run_now("web2");
    let run = cv.wait_run(&id, "the edited job to run", |s| s == "succeeded");
    assert_eq!(run["stdout"], "now\n");
}

#[test]
fn deleting_a_job_with_a_run_going_needs_force_which_stops_the_run() {
    let cv = Cronvisor::start("cli-delete");
    cv.add_job("slow", "@hourly", "sleep 300", &[]);
    let id = cv.run_now("slow");
    let pid = cv.wait_running_pid(&id);
    let out = cv.cli(&["job", "delete", "slow"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("has runs going (run {id})")) && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        cv.json(&["job", "show", "slow"])["name"],
        "slow",
        "still there"
    );
    assert!(alive(pid));

    assert!(cv
        .ok(&["job", "delete", "slow", "--force"])
        .contains("deleted"));
    wait_for(
        Duration::from_secs(20),
        "the deleted job's run to be stopped",
        || (!alive(pid)).then_some(()),
    );
    assert!(!cv.cli(&["job", "show", "slow"]).status.success());
}

#[test]
fn one_supervisor_per_data_dir_and_errors_say_their_cause_once() {
    let cv = Cronvisor::start("cli-lock");
    let pid = cv.child.as_ref().expect("running").id();
    let second = Command::new(BIN)
        .args(["up", "--config"])
        .arg(cv.config_path())
        .output()
        .expect("second up");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("already running on data dir") && err.contains(&format!("(pid {pid})")),
        "{err}"
    );
    // The first one is untouched.
    assert_eq!(cv.status()["pid"].as_u64(), Some(u64::from(pid)));

    // Another data dir on a port in use: the cause is said once.
    let dir = crate::harness::TempDir::new("cli-lock-2");
    let api = cv.endpoint("api");
    let config = dir.0.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[listeners]\napi = \"{api}\"\nrpc = \"127.0.0.1:0\"\ndispatch = \"127.0.0.1:0\"\n",
            dir.0.join("var").display()
        ),
    )
    .expect("config");
    let out = Command::new(BIN)
        .args(["up", "--config"])
        .arg(&config)
        .output()
        .expect("up on a used port");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert_eq!(line.matches("Address already in use").count(), 1, "{err}");
}

#[test]
fn standalone_metrics_and_config_check_say_only_what_is_true() {
    let cv = Cronvisor::start("cli-truth");
    for listener in ["api", "rpc", "dispatch"] {
        let (_, body) = http(&cv.endpoint(listener), "GET", "/metrics", None, None);
        assert!(
            !body.contains("cronvisor_dependency_up"),
            "{listener}: {body}"
        );
    }
    let out = cv.cli(&["config", "check"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: no alarm channel configured"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cv.log().contains("no alarm channel configured"));
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_itself() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let dir = crate::harness::TempDir::new("completions");
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("_cronvisor") && bash.contains("--http-url"),
        "bash"
    );
    let path = dir.0.join("cronvisor.bash");
    std::fs::write(&path, &bash).expect("write");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash");
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    for shell in ["zsh", "fish"] {
        let script = run(&["completions", shell]);
        assert!(
            script.contains("cronvisor") && script.contains("misfire"),
            "{shell}"
        );
    }
    let man = run(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH cronvisor"),
        "{man}"
    );
    assert!(man.contains("job") && man.contains("reload"), "{man}");
    let bad = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"));
}
