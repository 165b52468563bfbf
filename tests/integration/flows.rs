//! Workflows driven through the real binary: edges, a flow's runs and their environment,
//! fan-in, failure paths, refusals, `--alone`, `flow rerun`, the flow alarm, and a dependent
//! released across a kill -9 of the dispatcher.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{wait_for, Cronvisor, TempDir};

/// `job add NAME --after AFTER --command CMD [extra]`, which must succeed.
fn add_after(cv: &Cronvisor, name: &str, after: &str, command: &str, extra: &[&str]) {
    let mut args = vec![
        "job",
        "add",
        "--name",
        name,
        "--after",
        after,
        "--command",
        command,
    ];
    args.extend_from_slice(extra);
    cv.ok(&args);
}

/// The newest run of `job` once it is in one of `states`.
fn wait_state(cv: &Cronvisor, job: &str, states: &[&str]) -> Value {
    wait_for(
        Duration::from_secs(30),
        &format!("{job} in {states:?}"),
        || {
            cv.runs(job)
                .into_iter()
                .find(|r| states.contains(&r["state"].as_str().unwrap_or("")))
        },
    )
}

/// A command that writes the flow's variables of its run to `dir/NAME`.
fn env_dump(dir: &TempDir, name: &str) -> String {
    format!(
        "echo \"$CRONVISOR_INSTANT|${{CRONVISOR_FLOW_RUN:-}}|${{CRONVISOR_UPSTREAM_RUNS:-}}\" > {}",
        dir.0.join(name).display()
    )
}

#[test]
fn a_flow_runs_its_chain_and_fan_in_with_the_roots_instant_and_skips_the_path_not_taken() {
    let cv = Cronvisor::start("flow-shape");
    let dir = TempDir::new("flow-shape-out");
    cv.add_job("export", "@yearly", &env_dump(&dir, "export"), &[]);
    add_after(&cv, "load", "export", &env_dump(&dir, "load"), &[]);
    add_after(&cv, "fx", "export", &env_dump(&dir, "fx"), &[]);
    add_after(&cv, "report", "load,fx", &env_dump(&dir, "report"), &[]);
    add_after(&cv, "page", "export:failure", "true", &[]);
    let listed = cv.ok(&["job", "list"]);
    assert!(listed.contains("after fx, load"), "{listed}");
    assert!(listed.contains("after export:failure"), "{listed}");

    let root = cv.run_now("export");
    let report = wait_state(&cv, "report", &["succeeded", "failed", "skipped"]);
    assert_eq!(report["state"], "succeeded", "{report}");
    let page = wait_state(&cv, "page", &["skipped"]);
    assert!(
        page["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("not taken: upstream `export` succeeded"),
        "{page}"
    );
    // Every run of the flow carries the root's instant; a dependent knows its flow and
    // which runs released it.
    let read = |n: &str| std::fs::read_to_string(dir.0.join(n)).expect("dump");
    let instant = read("export").split('|').next().unwrap_or("").to_string();
    for n in ["load", "fx", "report"] {
        let line = read(n);
        let parts: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(parts[0], instant, "{n}: {line}");
        assert_eq!(parts[1], root, "{n}: {line}");
    }
    let released = read("report");
    let load = &cv.runs("load")[0];
    let fx = &cv.runs("fx")[0];
    assert!(
        released.contains(&format!("load={}", load["id"])),
        "{released}"
    );
    assert!(released.contains(&format!("fx={}", fx["id"])), "{released}");
    assert_eq!(report["trigger"], "upstream");
    assert_eq!(cv.runs("report").len(), 1, "once per flow");

    // What a person reads.
    let tree = cv.ok(&["flow", "show", "report"]);
    assert!(tree.starts_with("flow of `export` at "), "{tree}");
    assert!(tree.contains(": succeeded"), "{tree}");
    assert!(tree.contains("├─ fx"), "{tree}");
    assert!(tree.contains("page [on failure]"), "{tree}");
    assert!(tree.contains("report (above)"), "{tree}");
    let shown = cv.ok(&["run", "show", &report["id"].to_string()]);
    assert!(
        shown.contains(&format!("flow:       of run {root}")),
        "{shown}"
    );
    assert!(shown.contains("released:   by "), "{shown}");
    let list = wait_for(Duration::from_secs(10), "the flow listed as ended", || {
        let out = cv.ok(&["flow", "list"]);
        out.contains("succeeded").then_some(out)
    });
    assert!(list.starts_with("ROOT"), "{list}");
    assert!(list.contains("export"), "{list}");
    let flow = cv.json(&["flow", "show", "export", "--run", &root]);
    assert_eq!(flow["state"], "succeeded");
    assert_eq!(flow["nodes"].as_array().map(Vec::len), Some(5));
}

#[test]
fn edges_that_cannot_hold_are_refused_naming_the_jobs_and_nothing_is_stored() {
    let cv = Cronvisor::start("flow-refuse");
    cv.add_job("a", "@yearly", "true", &[]);
    add_after(&cv, "b", "a", "true", &[]);
    add_after(&cv, "d", "b", "true", &[]);
    cv.add_job("x", "@yearly", "true", &[]);
    let refused = |args: &[&str], want: &str| {
        let out = cv.cli(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: {err}");
    };
    refused(
        &["job", "edit", "a", "--after", "d"],
        "after: a cycle a -> d -> b -> a",
    );
    refused(
        &[
            "job",
            "add",
            "--name",
            "c",
            "--after",
            "b,x",
            "--command",
            "true",
        ],
        "`a` and `x`",
    );
    refused(
        &[
            "job",
            "add",
            "--name",
            "c",
            "--after",
            "nope",
            "--command",
            "true",
        ],
        "after: no job `nope`",
    );
    refused(
        &[
            "job",
            "add",
            "--name",
            "c",
            "--after",
            "a",
            "--schedule",
            "@daily",
            "--command",
            "true",
        ],
        "not both",
    );
    refused(
        &[
            "job",
            "add",
            "--name",
            "c",
            "--after",
            "a:sometimes",
            "--command",
            "true",
        ],
        "sometimes",
    );
    refused(
        &["job", "edit", "b", "--schedule", "@daily"],
        "clear them with --after",
    );
    refused(&["job", "delete", "a"], "is upstream of `b`");
    assert!(
        !cv.cli(&["job", "show", "c"]).status.success(),
        "nothing stored"
    );
    assert_eq!(
        cv.json(&["job", "show", "a"])["after"],
        serde_json::json!([])
    );

    // Cleared edges need a rule again; with one, the job is scheduled on its own.
    refused(
        &["job", "edit", "d", "--after", ""],
        "schedule: is required",
    );
    cv.ok(&["job", "edit", "d", "--after", "", "--schedule", "@daily"]);
    assert!(cv.ok(&["job", "show", "d"]).contains("schedule:   @daily"));
    // A forced delete removes the edges; a job left with nothing to start it is paused.
    cv.ok(&["job", "delete", "a", "--force"]);
    let b = cv.json(&["job", "show", "b"]);
    assert_eq!(b["paused"], true, "{b}");
    assert_eq!(b["after"], serde_json::json!([]));
}

#[test]
fn a_failed_node_is_rerun_with_the_flows_instant_then_what_depends_on_it() {
    let cv = Cronvisor::start("flow-rerun");
    let dir = TempDir::new("flow-rerun-out");
    let marker = dir.0.join("fixed");
    cv.add_job("a", "@yearly", "true", &[]);
    add_after(&cv, "b", "a", &format!("test -e {}", marker.display()), &[]);
    add_after(&cv, "c", "b", "true", &[]);
    let root = cv.run_now("a");
    let b = wait_state(&cv, "b", &["failed"]);
    let c = wait_state(&cv, "c", &["skipped"]);
    assert!(
        c["error"]
            .as_str()
            .unwrap_or("")
            .contains("upstream `b` failed"),
        "{c}"
    );
    // One alarm for the flow, naming the job that failed.
    let alarm = wait_for(Duration::from_secs(20), "the flow's alarm", || {
        cv.json(&["alarms"])
            .as_array()
            .and_then(|a| a.iter().find(|x| x["kind"] == "flow_failed").cloned())
    });
    let details = alarm.to_string();
    assert!(details.contains("b (run"), "{details}");

    std::fs::write(&marker, "").expect("marker");
    let out = cv.ok(&["flow", "rerun", &b["id"].to_string()]);
    assert!(out.starts_with("flow of `a` rerun: run "), "{out}");
    let c2 = wait_for(Duration::from_secs(30), "c after the rerun", || {
        cv.runs("c").into_iter().find(|r| r["state"] == "succeeded")
    });
    let b2 = &cv.runs("b")[0];
    assert_eq!(b2["rerun_of"], b["id"]);
    assert_eq!(b2["trigger"], "rerun");
    assert_eq!(c2["instant"], b["instant"], "the flow's instant");
    assert_eq!(cv.runs("a").len(), 1, "what succeeded is not rerun");
    let flow = cv.json(&["flow", "show", "a", "--run", &root]);
    assert_eq!(
        (flow["state"].as_str(), flow["round"].as_i64()),
        (Some("succeeded"), Some(1))
    );
    let again = cv.cli(&["flow", "rerun", &root]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to rerun"));

    // Alone, the root's dependents are not started: a flow started after it ends releases its
    // own `b`, and that one only (ended runs are released oldest first).
    let alone = cv.json(&["job", "run", "a", "--alone"])["run_id"].to_string();
    cv.wait_run(&alone, "the lone run", |s| s == "succeeded");
    let next = cv.run_now("a");
    let b3 = wait_for(Duration::from_secs(30), "b of the next flow", || {
        let runs = cv.runs("b");
        (runs.len() > 2).then_some(runs)
    });
    assert_eq!(b3.len(), 3, "nothing followed the lone run: {b3:?}");
    assert!(b3[0]["upstream_runs"]
        .as_str()
        .unwrap_or("")
        .contains(&format!("a={next}")));
}

#[test]
fn a_dependent_whose_upstream_ends_while_the_dispatcher_is_killed_runs_once() {
    let cv = Cronvisor::start("flow-kill");
    cv.add_job("up", "@yearly", "sleep 1", &[]);
    add_after(&cv, "down", "up", "true", &[]);
    for round in 0..3 {
        let id = cv.run_now("up");
        cv.wait_run(&id, "up running", |s| s == "running");
        let listed = cv.ok(&["flow", "list", "--state", "running"]);
        assert!(listed.contains(&format!("up    {id}")), "{listed}");
        let pid = cv.child_pid("dispatcher").expect("dispatcher");
        // SAFETY: kill(2) on a child of the supervisor this test started.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        cv.wait_run(&id, "up ended", |s| s == "succeeded");
        wait_for(
            Duration::from_secs(30),
            "down after a new dispatcher",
            || {
                let runs = cv.runs("down");
                (runs.len() > round && runs.iter().all(|r| r["state"] == "succeeded")).then_some(())
            },
        );
    }
    // Each flow ended once its one `down` did; none of them released another.
    wait_for(Duration::from_secs(20), "three flows ended", || {
        let flows = cv.json(&["flow", "list", "--job", "up", "--state", "succeeded"]);
        (flows.as_array().map(Vec::len) == Some(3)).then_some(())
    });
    assert_eq!(cv.runs("down").len(), 3, "one run of down per flow");
}

#[test]
fn a_job_that_requires_another_runs_only_after_its_success_within_the_window() {
    let cv = Cronvisor::start("flow-requires");
    cv.add_job("rates", "@yearly", "true", &[]);
    cv.add_job(
        "report",
        "* * * * * *",
        "true",
        &["--requires", "rates", "--within", "1h"],
    );
    assert!(cv
        .ok(&["job", "show", "report"])
        .contains("requires:   rates succeeded within 1h before each instant"));
    let skipped = wait_state(&cv, "report", &["skipped"]);
    assert!(
        skipped["error"]
            .as_str()
            .unwrap_or("")
            .contains("requires `rates` to have succeeded within 1h"),
        "{skipped}"
    );
    assert!(cv.runs("report").iter().all(|r| r["state"] == "skipped"));
    let id = cv.run_now("rates");
    cv.wait_run(&id, "rates", |s| s == "succeeded");
    wait_state(&cv, "report", &["succeeded"]);
    // Refusals name the field.
    let out = cv.cli(&["job", "edit", "report", "--requires", "report"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires: a job cannot require itself"));
    let out = cv.cli(&["job", "edit", "report", "--requires", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires: no job `nope`"));
    let out = cv.cli(&["job", "delete", "rates"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is upstream of `report`"));
    // A rename of the required job follows.
    cv.ok(&["job", "edit", "rates", "--name", "fx-rates"]);
    assert_eq!(cv.json(&["job", "show", "report"])["requires"], "fx-rates");
}

#[test]
fn a_reader_of_one_group_sees_another_groups_job_of_a_flow_as_hidden() {
    let cv = Cronvisor::start("flow-hidden");
    cv.add_job(
        "secret-root",
        "@yearly",
        "echo top secret",
        &["--group", "core"],
    );
    add_after(&cv, "visible", "secret-root", "true", &["--group", "team"]);
    let id = cv.run_now("secret-root");
    cv.wait_run(&id, "root", |s| s == "succeeded");
    wait_state(&cv, "visible", &["succeeded"]);
    let token = cv.json(&[
        "token", "create", "--name", "vera-t", "--role", "viewer", "--groups", "team",
    ])["token"]
        .as_str()
        .expect("token")
        .to_string();
    let out = cv
        .cli_command_with_token(&["flow", "show", "visible"], &token)
        .output()
        .expect("cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("flow of `hidden job` at "), "{text}");
    assert!(!text.contains("secret-root"), "{text}");
    assert!(text.contains("visible"), "{text}");
    // Nor may it edge onto a job it cannot see.
    let op = cv.json(&[
        "token", "create", "--name", "op-t", "--role", "operator", "--groups", "team",
    ])["token"]
        .as_str()
        .expect("token")
        .to_string();
    let out = cv
        .cli_command_with_token(
            &[
                "job",
                "add",
                "--name",
                "sneaky",
                "--after",
                "secret-root",
                "--group",
                "team",
                "--command",
                "true",
            ],
            &op,
        )
        .output()
        .expect("cli");
    assert!(String::from_utf8_lossy(&out.stderr).contains("after: no job `secret-root`"));
}

#[test]
fn a_run_as_of_an_instant_carries_it_down_its_flow_and_can_be_run_again() {
    let cv = Cronvisor::start("flow-instant");
    let dir = TempDir::new("flow-instant-out");
    let log = dir.0.join("instants");
    let dump = format!(
        "echo \"$CRONVISOR_JOB $CRONVISOR_INSTANT\" >> {}",
        log.display()
    );
    cv.add_job("daily", "@daily", &dump, &["--tz", "Asia/Shanghai"]);
    add_after(&cv, "after-daily", "daily", &dump, &[]);
    let out = cv.ok(&["job", "run", "daily", "--instant", "2026-12-06 02:00"]);
    assert!(out.starts_with("run "), "{out}");
    wait_state(&cv, "after-daily", &["succeeded"]);
    // Again, as after fixing a bug: the flow of that instant runs in a new round.
    cv.ok(&["job", "run", "daily", "--instant", "2026-12-05T18:00:00Z"]);
    wait_for(Duration::from_secs(30), "the second round", || {
        (cv.runs("after-daily")
            .iter()
            .filter(|r| r["state"] == "succeeded")
            .count()
            == 2)
            .then_some(())
    });
    let lines = std::fs::read_to_string(&log).expect("log");
    let want = "2026-12-05T18:00:00.000Z";
    assert_eq!(
        lines.lines().filter(|l| l.ends_with(want)).count(),
        4,
        "{lines}"
    );
    let flow = cv.json(&["flow", "show", "daily", "--instant", "2026-12-05T18:00:00Z"]);
    assert_eq!(
        (flow["state"].as_str(), flow["round"].as_i64()),
        (Some("succeeded"), Some(2))
    );
    for r in cv.runs("daily") {
        assert_eq!(r["trigger"], "manual");
    }
    // One instant's runs, as a person lists them.
    let listed = cv.ok(&[
        "runs",
        "--instant",
        "2026-12-05T18:00:00Z",
        "--limit",
        "100",
    ]);
    assert_eq!(listed.lines().count(), 1 + 4, "{listed}");
    assert!(
        listed.lines().skip(1).all(|l| l.contains("succeeded")),
        "{listed}"
    );
    let out = cv.cli(&["job", "run", "daily", "--instant", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: instant: `yesterday`"));
}
