//! Keeping the schedule equal to the store's jobs: loaded whole in pages at start, then
//! followed through the change log, and reconciled now and then against what the log missed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{now_millis, Job};

use super::changes::ChangeCursor;
use super::schedule_set::ScheduleSet;

/// Replaces the schedule with every job in the store, read in pages so that a large fleet is
/// never held twice in memory: whole jobs while the schedule keeps them, then only what plans
/// their instants.
pub(super) async fn load_all(
    store: &crate::store::Store,
    set: &mut ScheduleSet,
) -> Result<(), crate::store::StoreError> {
    const PAGE: i64 = 5000;
    store.install_calendars().await;
    set.clear();
    set.reserve(store.count_jobs().await?.max(0) as usize);
    let mut after = 0;
    loop {
        let room = set.room_for_jobs() as i64;
        let (last, len) = if room > 0 {
            let page = store.jobs_page(after, PAGE.min(room)).await?;
            let (last, len) = (page.last().map(|j| j.id), page.len() as i64);
            set.extend(page, now_millis());
            (last, len == PAGE.min(room))
        } else {
            let page = store.planned_page(after, PAGE).await?;
            let (last, len) = (page.last().map(|j| j.id), page.len() as i64);
            set.extend_planned(page, now_millis());
            (last, len == PAGE)
        };
        match (last, len) {
            (Some(last), true) => after = last,
            _ => return Ok(()),
        }
    }
}

/// Each id's job beside its item; the ones whose job could not be read are left out.
pub(super) fn with_jobs<T>(
    items: Vec<(i64, T)>,
    jobs: &HashMap<i64, Arc<Job>>,
) -> Vec<(Arc<Job>, T)> {
    items
        .into_iter()
        .filter_map(|(id, t)| jobs.get(&id).map(|j| (j.clone(), t)))
        .collect()
}

/// Applies the job changes logged since the cursor. If the log was pruned past it, resyncs
/// everything.
pub(super) async fn follow_changes(
    store: &crate::store::Store,
    set: &mut ScheduleSet,
    cursor: &mut ChangeCursor,
) -> Result<(), crate::store::StoreError> {
    let first = store.first_change().await?;
    if matches!(first, Some(f) if f > cursor.read_after() + 1) {
        resync(store, set, cursor).await?;
        tracing::info!(
            jobs = set.len(),
            "job change log pruned past us: full resync"
        );
        return Ok(());
    }
    let rows = store.changes_after(cursor.read_after()).await?;
    let changed = cursor.advance(&rows, std::time::Instant::now());
    if !changed.is_empty() {
        // A calendar edit logs a change of each job that uses it: read its days first.
        store.install_calendars().await;
    }
    for id in changed {
        let job = store.job(id).await?;
        set.upsert(id, job, now_millis());
    }
    Ok(())
}

/// The backstop behind the change log: compares every stored job with the schedule and
/// re-plans only those that differ (so a job whose instant is due right now is not re-planned
/// past it), and drops the ones deleted. Returns how many it corrected — 0 unless a change
/// was missed.
pub(super) async fn reconcile(
    store: &crate::store::Store,
    set: &mut ScheduleSet,
) -> Result<usize, crate::store::StoreError> {
    const PAGE: i64 = 5000;
    let mut seen = std::collections::HashSet::new();
    let mut corrected = 0;
    let mut after = 0;
    loop {
        let page = store.planned_page(after, PAGE).await?;
        let full = page.len() as i64 == PAGE;
        for planned in page {
            after = planned.id;
            seen.insert(planned.id);
            if !set.is_current(&planned) {
                corrected += 1;
                let job = store.job(planned.id).await?;
                set.upsert(planned.id, job, now_millis());
            }
        }
        if !full {
            break;
        }
    }
    for id in set.ids() {
        if !seen.contains(&id) {
            corrected += 1;
            set.upsert(id, None, now_millis());
        }
    }
    Ok(corrected)
}

/// Reloads every job (after the change log was pruned past the cursor).
pub(super) async fn resync(
    store: &crate::store::Store,
    set: &mut ScheduleSet,
    cursor: &mut ChangeCursor,
) -> Result<(), crate::store::StoreError> {
    let seq = store.last_change().await?;
    load_all(store, set).await?;
    cursor.reset(seq);
    Ok(())
}
