//! What a run records: failure with exit code and stderr; huge output capped to head and tail
//! with the executor's memory bounded.

use crate::harness::{proc_kb, Cronvisor};

fn run_to_end(cv: &Cronvisor, name: &str) -> serde_json::Value {
    let id = cv.run_now(name);
    cv.wait_run(&id, "the run to end", |s| {
        !matches!(s, "scheduled" | "dispatched" | "running")
    })
}

#[test]
fn a_failing_command_records_failed_with_exit_code_and_stderr() {
    let cv = Cronvisor::start("fail");
    cv.add_job(
        "broken",
        "@yearly",
        "echo partial; echo oops >&2; exit 3",
        &[],
    );
    let run = run_to_end(&cv, "broken");
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
    cv.add_job(
        "loud",
        "@yearly",
        "echo BEGIN; head -c 10485760 /dev/zero | tr '\\0' x; echo; echo END",
        &[],
    );
    let run = run_to_end(&cv, "loud");
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
