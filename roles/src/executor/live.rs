//! The output of the runs going here, readable while they go: `GET /rpc/v1/runs/{id}/output`
//! answers from a pair of byte offsets (stdout, stderr) and, asked to, waits a little for
//! something new, so a reader costs one request per burst of output, not one per poll tick.
//!
//! What a reader may hold is bounded: each answer carries at most [`MAX_PIECE`] bytes a stream,
//! and the buffers are the run's capped capture itself (no copy is kept per reader).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use tokio::sync::watch;

use super::Executor;
use crate::http::ApiError;
use crate::output::{CappedBuffer, Piece, Reading};

/// Most bytes of one stream in one answer.
pub const MAX_PIECE: usize = 64 * 1024;
/// Longest wait a reader may ask for.
const MAX_WAIT: Duration = Duration::from_secs(25);

/// One run's capture, shared by the tasks reading its pipes and the RPC readers.
#[derive(Debug)]
pub struct LiveOutput {
    pub stdout: Mutex<CappedBuffer>,
    pub stderr: Mutex<CappedBuffer>,
    /// Bumped on every write and at the end, to wake waiting readers.
    changed: watch::Sender<u64>,
    ended: AtomicBool,
}

/// Which of a run's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl LiveOutput {
    pub fn new(head: usize, tail: usize) -> Arc<LiveOutput> {
        Arc::new(LiveOutput {
            stdout: Mutex::new(CappedBuffer::new(head, tail)),
            stderr: Mutex::new(CappedBuffer::new(head, tail)),
            changed: watch::channel(0).0,
            ended: AtomicBool::new(false),
        })
    }

    pub fn push(&self, stream: Stream, bytes: &[u8]) {
        let buf = match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        if let Ok(mut b) = buf.lock() {
            b.push(bytes);
        }
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The process ended: readers stop waiting.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Each stream's text and cut, as the store keeps them.
    pub fn rendered(&self) -> ((String, i64), (String, i64)) {
        let render = |m: &Mutex<CappedBuffer>| {
            m.lock()
                .map(|b| (b.render(), b.cut() as i64))
                .unwrap_or_default()
        };
        (render(&self.stdout), render(&self.stderr))
    }

    fn read(&self, from: (u64, u64)) -> Reading {
        let running = !self.ended.load(Ordering::Relaxed);
        let piece = |m: &Mutex<CappedBuffer>, at: u64| {
            m.lock()
                .map(|b| Piece::of(b.slice_from(at, MAX_PIECE), !running))
                .unwrap_or_default()
        };
        Reading {
            running,
            stdout: piece(&self.stdout, from.0),
            stderr: piece(&self.stderr, from.1),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    #[serde(default)]
    stdout: u64,
    #[serde(default)]
    stderr: u64,
    /// Wait up to this long for output past the offsets (or the end) before answering.
    #[serde(default)]
    wait_ms: u64,
}

/// Counts a waiting read while it lives (however it ends: answered, or its caller gone).
struct Waiting(Option<Arc<crate::metrics::Metric>>);

impl Waiting {
    fn new(gauge: &Arc<crate::metrics::Metric>, waits: bool) -> Waiting {
        Waiting(waits.then(|| {
            gauge.inc();
            gauge.clone()
        }))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

/// `GET /rpc/v1/runs/{id}/output`: 404 when the run is not going here (ended, or another
/// executor's); the caller then reads the store.
pub async fn read_output(
    State(exec): State<Arc<Executor>>,
    Path(run_id): Path<i64>,
    Query(q): Query<OutputQuery>,
) -> Result<Json<Reading>, ApiError> {
    let live = exec
        .output_of(run_id)
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} is not going here")))?;
    let mut changed = live.changed.subscribe();
    let _waiting = Waiting::new(&exec.counters.output_waiting, q.wait_ms > 0);
    let wait = tokio::time::sleep(Duration::from_millis(q.wait_ms).min(MAX_WAIT));
    tokio::pin!(wait);
    let stop = crate::runtime::stopped(exec.shutdown.clone());
    tokio::pin!(stop);
    loop {
        changed.borrow_and_update();
        let reading = live.read((q.stdout, q.stderr));
        let news = !reading.stdout.text.is_empty()
            || !reading.stderr.text.is_empty()
            || reading.stdout.skipped + reading.stderr.skipped > 0;
        if news || !reading.running {
            return Ok(Json(reading));
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return Ok(Json(reading)) },
            _ = &mut wait => return Ok(Json(reading)),
            // A draining executor answers at once: its server must not wait for readers.
            _ = &mut stop => return Ok(Json(reading)),
        }
    }
}
