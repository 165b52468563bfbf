//! `forbid` across a partition: a run of a job whose overlap is `forbid` must not go on
//! beside the next one. The monitor presumes this executor gone once its heartbeats have not
//! reached the store for `monitor.lost_after`, records its runs `lost`, and the next instant
//! may start elsewhere — while this executor, cut off but alive, still runs the old one. So,
//! lease-style, the executor stops its `forbid` runs first: once the store has not taken a
//! beat for `lost_after` minus a margin (a tenth of it, at least 1 s), it kills them at once
//! (SIGKILL, no grace: the grace would outlast the lease), and records them `killed` when it
//! can. The bound: such a run ends before anyone may start the next one; the cost: a `forbid`
//! run dies when its executor loses the store that long, which is what `forbid` asks. The
//! silence is measured on the monotonic clock (a wall-clock step is no silence — found by the
//! chaos suite, seed 28: a +12 s step fenced runs of a host that could reach its store). What
//! no fence covers: an executor paused (SIGSTOP) cannot act, and its runs go on while it is.

use std::sync::Arc;
use std::time::Duration;

use super::{Executor, KillReason};

/// How often the fence looks.
const EVERY: Duration = Duration::from_millis(100);

/// How long without a beat taken before the `forbid` runs are stopped.
pub(super) fn fence_after(lost_after: Duration) -> Duration {
    let margin = (lost_after / 10).max(Duration::from_secs(1));
    lost_after.saturating_sub(margin).max(EVERY)
}

/// Kills the `forbid` runs here whenever the store has not taken a beat for `after`.
pub(super) async fn forbid_runs(exec: Arc<Executor>, after: Duration) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let silent = exec.store_ok.silent_for();
        if silent < after {
            continue;
        }
        let fenced: Vec<i64> = match exec.active.lock() {
            Ok(a) => a
                .iter()
                .filter(|(_, r)| r.forbid && r.kill.borrow().is_none())
                .map(|(id, _)| *id)
                .collect(),
            Err(_) => continue,
        };
        for id in fenced {
            if exec.kill_run(id, KillReason::Fenced) {
                tracing::warn!(run = id, silent_ms = silent.as_millis() as u64,
                    "the store has not taken a beat for too long: stopping a `forbid` run before the monitor may start the next one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_comes_before_the_monitor_gives_up() {
        assert_eq!(fence_after(Duration::from_secs(10)), Duration::from_secs(9));
        assert_eq!(fence_after(Duration::from_secs(3)), Duration::from_secs(2));
        assert_eq!(
            fence_after(Duration::from_secs(60)),
            Duration::from_secs(54)
        );
    }
}
