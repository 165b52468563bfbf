//! What the monitor's gap check reads: the jobs that fire on a schedule, and the scheduled
//! records of a span of instants (through the `runs_by_instant` index).

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreError};
use crate::model::Millis;

/// A scheduled record, as the gap check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub instant: Millis,
    /// Which instants it stands for, counting back from its own.
    pub covers: Covers,
    /// When it was written (a record just written may be the first of several a dispatcher
    /// is writing after holding them).
    pub recorded_at: Millis,
}

/// The instants a record answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Covers {
    /// The misfire policy's `missed: N instant(s) …` record with an exact count: its own
    /// instant and the N − 1 before it (a plain record is `Instants(1)`).
    Instants(u64),
    /// A `misfire` catch-up run, or a count extrapolated ("about N"): every instant since the
    /// record before it.
    Gap,
}

impl Covers {
    /// What a record of this state, trigger and error answers for.
    pub(super) fn of(state: &str, trigger: &str, error: &str) -> Covers {
        if trigger == "misfire" {
            return Covers::Gap;
        }
        let Some(count) = error
            .strip_prefix("missed: ")
            .filter(|_| state == "missed" && !error.contains("gap check"))
        else {
            return Covers::Instants(1);
        };
        match count.split_whitespace().next().map(str::parse::<u64>) {
            Some(Ok(n)) => Covers::Instants(n.max(1)),
            // "about N": extrapolated, so it stands for the whole gap.
            _ => Covers::Gap,
        }
    }
}

/// A job that fires on its schedule.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub id: i64,
    /// Its rule with its calendars (`schedule::days::keyed`).
    pub schedule: String,
    pub timezone: String,
    pub updated_at: Millis,
}

impl Store {
    /// The jobs of `ids` that are scheduled (not paused, with something to run).
    pub async fn scheduled_jobs(&self, ids: &[i64]) -> Result<Vec<Scheduled>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, schedule, timezone, updated_at, calendars, calendar_mode FROM jobs \
                 WHERE paused = 0 \
                 AND (command IS NOT NULL OR http_url IS NOT NULL) AND id IN ({})",
                super::placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(Scheduled {
                    id: r.try_get(0)?,
                    schedule: crate::schedule::days::keyed(
                        &r.try_get::<String, _>(1)?,
                        super::rows::day_filter(&r, 4, 5)?.as_ref(),
                    ),
                    timezone: r.try_get(2)?,
                    updated_at: r.try_get(3)?,
                });
            }
        }
        Ok(out)
    }

    /// The scheduled records (fired, skipped, missed, caught up) with instants in
    /// `[from, to]`, per job, in instant order.
    pub async fn marks_between(
        &self,
        from: Millis,
        to: Millis,
    ) -> Result<HashMap<i64, Vec<Mark>>, StoreError> {
        let rows = sqlx::query(
            "SELECT job_id, instant, state, trigger_kind, error, created_at FROM runs \
             WHERE instant >= ? \
             AND instant <= ? AND trigger_kind IN ('schedule', 'misfire') ORDER BY instant",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<i64, Vec<Mark>> = HashMap::new();
        for r in &rows {
            let state: String = r.try_get(2)?;
            let trigger: String = r.try_get(3)?;
            let error = super::rows::text_at(r, 4)?.unwrap_or_default();
            // A `missed` record of the misfire policy ("missed: N instant(s) ...") stands for
            // its N instants; one of an instant with no executor, for itself.
            out.entry(r.try_get(0)?).or_default().push(Mark {
                instant: r.try_get(1)?,
                covers: Covers::of(&state, &trigger, &error),
                recorded_at: r.try_get(5)?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Covers;

    #[test]
    fn a_record_answers_for_what_its_reason_counts() {
        let of = Covers::of;
        assert_eq!(of("succeeded", "schedule", ""), Covers::Instants(1));
        assert_eq!(
            of(
                "missed",
                "schedule",
                "missed: 3 instant(s) came due while the store was unavailable"
            ),
            Covers::Instants(3)
        );
        assert_eq!(
            of(
                "missed",
                "schedule",
                "missed: about 604800 instant(s) passed while no dispatcher ran"
            ),
            Covers::Gap
        );
        assert_eq!(of("succeeded", "misfire", ""), Covers::Gap);
        assert_eq!(
            of(
                "missed",
                "schedule",
                "missed: 1 instant(s) that no dispatcher recorded (found by the monitor's gap check)"
            ),
            Covers::Instants(1)
        );
        assert_eq!(
            of("missed", "schedule", "no executor: group g has none"),
            Covers::Instants(1)
        );
    }
}
