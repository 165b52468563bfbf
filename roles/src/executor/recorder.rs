//! Writes run results to the store in batches: one transaction per batch instead of one commit
//! per run, and retried over a store outage so that no result is lost.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::{Finished, Retry, RunOutcome, Started, Store};

/// Most results written in one transaction.
const BATCH: usize = 256;

/// The sending side; the writer task ends when every clone is dropped and the queue is empty.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Finished>,
}

impl Recorder {
    pub fn start(store: Store) -> (Recorder, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Recorder { tx }, tokio::spawn(write_loop(store, rx)))
    }

    /// Queues a result. The queue holds at most one entry per run that has ended and is not
    /// yet written, so it is bounded by the runs in flight.
    pub fn finish(
        &self,
        run_id: i64,
        outcome: RunOutcome,
        started: Option<Started>,
        retry: Option<Retry>,
    ) {
        let finished = Finished {
            run_id,
            outcome,
            started,
            retry,
        };
        if self.tx.send(finished).is_err() {
            tracing::error!(run = run_id, "result recorder stopped; result lost");
        }
    }
}

async fn write_loop(store: Store, mut rx: mpsc::UnboundedReceiver<Finished>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut delay = Duration::from_millis(50);
        loop {
            match store.finish_runs(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(results = batch.len(), error = %e, "cannot record results; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}
