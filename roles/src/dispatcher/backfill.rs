//! The dispatcher's part of backfills: a task of its own that hands out the next instants of
//! the running backfills (`Store::advance_backfills`, where the exactness lives) and wakes
//! the serving loop to fire them as it fires manual runs. Every dispatcher runs it; the
//! backfill's row lock lets one at a time drive a backfill.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Store;

/// How soon the next pass comes while a backfill runs: its next instant starts about this
/// long after a slot frees (a pass that finds no slot is one read).
const BUSY: Duration = Duration::from_millis(25);

/// Drives backfills every `interval` (every [`BUSY`] while one runs) until aborted (an abort
/// mid-transaction rolls it back: the instants are handed out by the next pass, of this
/// dispatcher or another).
pub(super) fn spawn(
    store: Store,
    interval: Duration,
    wake: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut busy = false;
        loop {
            tokio::time::sleep(if busy { BUSY.min(interval) } else { interval }).await;
            let pass = store.advance_backfills().await;
            busy = matches!(&pass, Ok(a) if a.running > 0);
            match pass {
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
