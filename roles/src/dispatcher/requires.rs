//! `requires`: a scheduled instant of a job that requires another job's success goes only if
//! that job succeeded within the window before the instant; else it is recorded `skipped`
//! with the reason, under the fence as any instant.

use std::sync::Arc;

use super::fire::Firer;
use crate::model::{Job, Millis};

impl Firer {
    /// The instants of `due` whose requirement holds (or that require nothing); the others
    /// are recorded `skipped`. A store that cannot answer keeps the instant: firing it is the
    /// safer mistake than dropping it, and the next instants check again.
    pub(super) async fn apply_requires(
        &self,
        due: Vec<(Arc<Job>, Millis)>,
    ) -> Vec<(Arc<Job>, Millis)> {
        let mut keep = Vec::with_capacity(due.len());
        for (job, instant) in due {
            let (Some(required), Some(within)) = (&job.requires, job.within_secs) else {
                keep.push((job, instant));
                continue;
            };
            let from = instant - within.saturating_mul(1000);
            match self.store.last_success(required, from, instant).await {
                Ok(Some(_)) => keep.push((job, instant)),
                Ok(None) => {
                    let reason = format!(
                        "skipped: requires `{required}` to have succeeded within {} before the \
                         instant, and it did not",
                        crate::model::durations::secs_text(within)
                    );
                    if let Err(e) = self.store.record_skipped(job.id, instant, &reason).await {
                        tracing::warn!(job = %job.name, error = %e, "cannot record a skipped instant");
                    }
                }
                Err(e) => {
                    tracing::warn!(job = %job.name, error = %e,
                        "cannot check what the job requires: firing it");
                    keep.push((job, instant));
                }
            }
        }
        keep
    }
}
