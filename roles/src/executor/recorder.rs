//! Writes run results to the store in batches: one transaction per batch instead of one commit
//! per run, and retried over a store outage so that no result is lost.
//!
//! A result the store refuses (it answered, and doing it again changes nothing) does not hold
//! back the others: the batch is then written one result at a time, and a refused one is
//! recorded `failed` with the store's reason instead (without its output). While the store is
//! away results wait in memory; past [`KEEP_OUTPUT`] waiting results, the output of the next
//! ones is dropped (state, exit code and times are kept), so memory stays bounded at about
//! `KEEP_OUTPUT` runs' output caps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::Metric;
use crate::store::{Finished, Retry, RunOutcome, Started, Store};

/// Most results written in one transaction.
const BATCH: usize = 256;

/// Results waiting with their output; beyond this, outputs are dropped.
pub const KEEP_OUTPUT: usize = 1000;

/// The sending side; the writer task ends when every clone is dropped and the queue is empty.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Finished>,
    waiting: Waiting,
}

/// How many results wait, with its gauge (`cronvisor_results_waiting`).
#[derive(Clone)]
struct Waiting {
    count: Arc<AtomicUsize>,
    gauge: Arc<Metric>,
}

impl Waiting {
    /// One more; returns how many waited before it.
    fn add(&self) -> usize {
        let before = self.count.fetch_add(1, Ordering::Relaxed);
        self.gauge
            .set(i64::try_from(before + 1).unwrap_or(i64::MAX));
        before
    }

    fn done(&self, n: usize) {
        let before = self.count.fetch_sub(n, Ordering::Relaxed);
        self.gauge
            .set(i64::try_from(before.saturating_sub(n)).unwrap_or(0));
    }
}

impl Recorder {
    pub fn start(store: Store, gauge: Arc<Metric>) -> (Recorder, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = Waiting {
            count: Arc::new(AtomicUsize::new(0)),
            gauge,
        };
        (
            Recorder {
                tx,
                waiting: waiting.clone(),
            },
            tokio::spawn(write_loop(store, rx, waiting)),
        )
    }

    /// Queues a result (one per run that has ended and is not yet written).
    pub fn finish(
        &self,
        run_id: i64,
        mut outcome: RunOutcome,
        started: Option<Started>,
        retry: Option<Retry>,
    ) {
        let waiting = self.waiting.add();
        if waiting >= KEEP_OUTPUT {
            let dropped = (outcome.stdout.len() + outcome.stderr.len()) as i64;
            outcome.stdout =
                format!("[output dropped: {waiting} results were waiting for the store]\n");
            outcome.stderr.clear();
            outcome.stdout_cut += dropped;
        }
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

async fn write_loop(store: Store, mut rx: mpsc::UnboundedReceiver<Finished>, waiting: Waiting) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut delay = Duration::from_millis(50);
        while !batch.is_empty() {
            match store.finish_runs(&batch).await {
                Ok(()) => {
                    waiting.done(batch.len());
                    batch.clear();
                }
                Err(e) if e.is_refusal() => {
                    let written = write_each(&store, &batch).await;
                    waiting.done(written);
                    batch.drain(..written);
                }
                Err(e) => {
                    tracing::warn!(results = batch.len(), error = %e, "cannot record results; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Writes one result; a refusal is believed only when it repeats (a refusal is deterministic,
/// and an error the store gives under load must not cost a run its result).
async fn write_one(store: &Store, f: &Finished) -> Result<(), crate::store::StoreError> {
    let mut last = None;
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match store.finish_runs(std::slice::from_ref(f)).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_refusal() => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    match last {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Writes the batch one result at a time, a refused one as `failed` with the store's reason.
/// Returns how many results, from the start, are settled (written, or given up on after a
/// refusal of the fallback too); it stops at the first outage, leaving the rest to retry.
async fn write_each(store: &Store, batch: &[Finished]) -> usize {
    for (i, f) in batch.iter().enumerate() {
        let refusal = match write_one(store, f).await {
            Ok(()) => continue,
            Err(e) if e.is_refusal() => e,
            Err(_) => return i,
        };
        tracing::warn!(run = f.run_id, error = %refusal, "the store refused a result; recording the run failed");
        let mut fallback =
            RunOutcome::failed(format!("the store refused this run's result: {refusal}"));
        fallback.exit_code = f.outcome.exit_code;
        fallback.ended_at = f.outcome.ended_at;
        match store
            .finish_run(f.run_id, &fallback, f.started.as_ref())
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_refusal() => {
                tracing::error!(run = f.run_id, error = %e, "the store refused even the failure; the monitor will mark the run lost");
            }
            Err(_) => return i,
        }
    }
    batch.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_bound_waiting_results_keep_their_state_but_not_their_output() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gauge = crate::metrics::Metrics::new("executor").gauge("g", "", "waiting");
        let recorder = Recorder {
            tx,
            waiting: Waiting {
                count: Arc::new(AtomicUsize::new(0)),
                gauge: gauge.clone(),
            },
        };
        for id in 0..=KEEP_OUTPUT as i64 {
            let mut outcome = RunOutcome::failed(String::new());
            outcome.stdout = "x".repeat(100);
            recorder.finish(id, outcome, None, None);
        }
        let mut got = Vec::new();
        while let Ok(f) = rx.try_recv() {
            got.push(f);
        }
        assert_eq!(got.len(), KEEP_OUTPUT + 1);
        assert_eq!(
            gauge.get(),
            KEEP_OUTPUT as i64 + 1,
            "the gauge counts what waits"
        );
        assert_eq!(
            got[KEEP_OUTPUT - 1].outcome.stdout.len(),
            100,
            "within the bound"
        );
        let last = &got[KEEP_OUTPUT].outcome;
        assert!(
            last.stdout.starts_with("[output dropped"),
            "{}",
            last.stdout
        );
        assert_eq!(last.stdout_cut, 100);
        assert_eq!(
            last.state,
            crate::model::RunState::Failed,
            "the state is kept"
        );
    }
}
