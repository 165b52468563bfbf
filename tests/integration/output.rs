//! What a run records: failure with exit code and stderr; huge output capped to head and tail
//! with the executor's memory bounded.

use std::time::Duration;

use crate::harness::{proc_kb, wait_for, Cronvisor};

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

/// A result the store refuses does not hold back the others: they are recorded, and the
/// refused run is recorded `failed` with the store's reason. (The store is made to refuse one
/// job's results with a trigger, as a column too small or a bad value would.)
#[test]
fn a_result_the_store_refuses_does_not_block_the_others() {
    let cv = Cronvisor::start("refused-result");
    cv.add_job("fine", "* * * * * *", "echo fine", &[]);
    cv.add_job("poison", "* * * * * *", "echo poison", &[]);
    cv.wait_succeeded("fine", 1);
    cv.sqlite(
        "CREATE TRIGGER refuse_poison BEFORE UPDATE OF stdout ON runs \
         WHEN NEW.stdout LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poisoned result'); END;",
    );
    let armed_at = crate::harness::now_ms();
    let refused = wait_for(
        Duration::from_secs(20),
        "a refused result recorded failed",
        || {
            cv.runs("poison").into_iter().find(|r| {
                r["state"] == "failed"
                    && r["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("the store refused this run's result"))
            })
        },
    );
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .contains("poisoned result"),
        "{refused}"
    );
    // The other job's results keep being written meanwhile.
    wait_for(
        Duration::from_secs(20),
        "later results of the other job",
        || {
            let later = cv
                .runs("fine")
                .iter()
                .filter(|r| {
                    r["state"] == "succeeded" && crate::harness::ms(r, "instant") > armed_at
                })
                .count();
            (later >= 3).then_some(())
        },
    );
}
