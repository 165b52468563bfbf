//! Calendars at the instant: a job's instants come from its rule and calendars already (the
//! schedule set computes them), but a day a calendar cannot decide — past the years its data
//! covers, or a calendar this process does not know — is recorded `missed` with the reason
//! instead of being guessed either way, so that it is alarmed. The calendars a dispatcher knows
//! are read from the store when it loads its jobs and whenever jobs change
//! (`Store::install_calendars`).

use std::sync::Arc;

use super::fire::Firer;
use crate::model::{Job, Millis};

impl Firer {
    /// The instants of `due` whose day each calendar of their job can decide; the others are
    /// recorded `missed`, saying which calendar and why.
    pub(super) async fn apply_calendars(
        &self,
        due: Vec<(Arc<Job>, Millis)>,
    ) -> Vec<(Arc<Job>, Millis)> {
        let mut keep = Vec::with_capacity(due.len());
        for (job, instant) in due {
            let unknown = job
                .timetable()
                .ok()
                .zip(chrono::DateTime::from_timestamp_millis(instant))
                .and_then(|(s, at)| s.decidable(at).err());
            let Some(why) = unknown else {
                keep.push((job, instant));
                continue;
            };
            let reason = format!("missed: {why}");
            tracing::warn!(job = %job.name, instant, %reason, "instant not run");
            if let Err(e) = self.store.record_missed(job.id, instant, &reason).await {
                tracing::warn!(job = %job.name, error = %e, "cannot record a missed instant");
            }
        }
        keep
    }
}
