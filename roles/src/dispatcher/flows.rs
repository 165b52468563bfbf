//! The dispatcher's part of flows: a task of its own that releases the dependents of ended
//! runs from the store (`Store::release_flows`, where the exactness lives), and wakes the
//! serving loop to fire what it released. Apart from the serving loop so that a thousand flows
//! ending at once never hold up the firing of unrelated instants.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::Graph;
use crate::store::Store;

/// Most ended runs one pass takes; passes repeat while they find some (a skip releases the
/// next level), at most `PASSES` per tick, so that a flood waits for the next tick.
const PER_PASS: i64 = 500;
const PASSES: usize = 8;

/// Releases flows every `interval` until aborted (an abort mid-transaction rolls it back: the
/// run stays unreleased for the next pass, of this dispatcher or another). `wake` is notified
/// when runs were released to run.
pub(super) fn spawn(
    store: Store,
    interval: Duration,
    wake: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The graph, read again only when a job changed (edges change only with their job).
        let mut graph: Option<(i64, Arc<Graph>)> = None;
        loop {
            tick.tick().await;
            for _ in 0..PASSES {
                match store.release_flows(PER_PASS, &mut graph).await {
                    Ok(r) if r.runs == 0 => break,
                    Ok(r) => {
                        if r.started > 0 {
                            wake.notify_one();
                        }
                        tracing::debug!(
                            runs = r.runs,
                            started = r.started,
                            skipped = r.skipped,
                            flows_ended = r.flows_ended,
                            "flows released"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot release flows; the next tick tries again");
                        break;
                    }
                }
            }
        }
    })
}
