//! Maintenance windows at the instant: a scheduled instant inside a window that holds its job
//! is recorded `skipped`, saying which window, under the fence as any instant. The windows are
//! read from the store every second by a task of their own (they are few; an added one applies
//! within a second), never on the firing path.

use std::sync::Arc;
use std::time::Duration;

use super::fire::Firer;
use crate::model::window::Window;
use crate::model::{Job, Millis};
use crate::store::Store;

/// How often the windows are read again.
const EVERY: Duration = Duration::from_secs(1);

/// The windows last read, shared by the firer and the task that reads them.
#[derive(Default, Clone)]
pub(super) struct Windows(Arc<std::sync::Mutex<Arc<Vec<Window>>>>);

impl Windows {
    fn current(&self) -> Arc<Vec<Window>> {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Reads the windows every second until aborted, off the firing path (a store that cannot
/// answer leaves the ones read last).
pub(super) fn spawn(store: Store, windows: Windows) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match store.windows().await {
                Ok(list) => {
                    if let Ok(mut g) = windows.0.lock() {
                        *g = Arc::new(list);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read maintenance windows"),
            }
            tokio::time::sleep(EVERY).await;
        }
    })
}

impl Firer {
    /// The instants of `due` no window holds; the others are recorded `skipped`.
    pub(super) async fn apply_windows(
        &self,
        due: Vec<(Arc<Job>, Millis)>,
    ) -> Vec<(Arc<Job>, Millis)> {
        let windows = self.windows.current();
        if windows.is_empty() {
            return due;
        }
        let mut keep = Vec::with_capacity(due.len());
        for (job, instant) in due {
            let Some(w) = windows.iter().find(|w| w.covers(&job, instant)) else {
                keep.push((job, instant));
                continue;
            };
            let reason = format!(
                "skipped: maintenance window {} ({})",
                w.name,
                w.scope_text()
            );
            if let Err(e) = self.store.record_skipped(job.id, instant, &reason).await {
                tracing::warn!(job = %job.name, error = %e, "cannot record a skipped instant");
            }
        }
        keep
    }
}
