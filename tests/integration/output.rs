//! What a run records: failure with exit code and stderr; huge output capped to head and tail
//! with the executor's memory bounded.

use std::time::Duration;

use crate::harness::{proc_kb, wait_for, Cronvisor};

fn run_now(cv: &Cronvisor, name: &str) -> serde_json::Value {
    let id = cv.json(&["job", "run", name])["run_id"]
        .as_i64()
        .expect("run id")
        .to_string();
    wait_for(Duration::from_secs(30), "the run to end", || {
        let r = cv.json(&["run", "show", &id]);
        let s = r["state"].as_str().unwrap_or("").to_string();
        (!matches!(s.as_str(), "scheduled" | "dispatched" | "running")).then_some(r)
    })
}

#[test]
fn a_failing_command_records_failed_with_exit_code_and_stderr() {
    let cv = Cronvisor::start("fail");
    cv.ok(&[
        "job",
        "add",
        "--name",
        "broken",
        "--schedule",
        "@yearly",
        "--command",
        "echo partial; echo oops >&2; exit 3",
    ]);
    let run = run_now(&cv, "broken");
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["exit_code"], 3);
    assert_eq!(run["stdout"], "partial\n");
    assert_eq!(run["stderr"], "oops\n");
    assert_eq!(run["error"], "exit code 3");
}

#[test]
fn ten_megabytes_of_output_keep_head_and_tail_and_bounded_memory() {
    let cv = Cronvisor::start("bigout");
    let executor = cv.child_pid("executor").expect("executor pid");
    let before_kb = proc_kb(executor, "VmHWM");
    cv.ok(&[
        "job",
        "add",
        "--name",
        "loud",
        "--schedule",
        "@yearly",
        "--command",
        "echo BEGIN; head -c 10485760 /dev/zero | tr '\\0' x; echo; echo END",
    ]);
    let run = run_now(&cv, "loud");
    assert_eq!(run["state"], "succeeded", "{run}");
    let out = run["stdout"].as_str().expect("stdout");
    let cut = run["stdout_cut"].as_i64().expect("cut");
    // Defaults keep 64 KiB of head and 64 KiB of tail.
    let total = 6 + 10_485_760 + 1 + 4;
    assert_eq!(cut, total - 2 * 65_536, "bytes cut");
    assert!(out.starts_with("BEGIN\nxxxx"), "head kept");
    assert!(out.ends_with("xxxx\nEND\n"), "tail kept");
    assert!(
        out.contains(&format!("[... cronvisor: {cut} bytes cut ...]")),
        "marker present"
    );
    assert!(
        out.len() < 2 * 65_536 + 100,
        "stored output is capped: {} bytes",
        out.len()
    );

    // The executor never held the 10 MB: its peak RSS grew by far less.
    let after_kb = proc_kb(executor, "VmHWM");
    assert!(
        after_kb < before_kb + 6 * 1024,
        "executor peak RSS grew from {before_kb} kB to {after_kb} kB"
    );
}
