//! The dispatcher's part of backfills: a task of its own that hands out the next instants of
//! the running backfills (`Store::advance_backfills`, where the exactness lives) and wakes
//! the serving loop to fire them as it fires manual runs. Every dispatcher runs it; the
//! backfill's row lock lets one at a time drive a backfill.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Store;

/// Drives backfills every `interval` until aborted (an abort mid-transaction rolls it back:
/// the instants are handed out by the next pass, of this dispatcher or another).
pub(super) fn spawn(
    store: Store,
    interval: Duration,
    wake: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.advance_backfills().await {
                Ok(a) if a.queued > 0 || a.skipped > 0 || a.ended > 0 => {
                    if a.queued > 0 {
                        wake.notify_one();
                    }
                    tracing::debug!(
                        queued = a.queued,
                        skipped = a.skipped,
                        ended = a.ended,
                        "backfills advanced"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot advance backfills; the next tick tries again")
                }
            }
        }
    })
}
