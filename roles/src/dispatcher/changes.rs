//! Following the store's job change log without missing a change.
//!
//! Sequence numbers are handed out when a transaction inserts its change row, but become
//! visible when it commits: on MySQL two editors can commit out of order, so a reader may see
//! seq 11 before seq 10. A cursor that only remembered "the last seq seen" would skip 10 for
//! ever. This one remembers the holes below its high-water mark and asks for them again until
//! they appear or are old enough to be a rolled-back insert (a hole that never fills).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A hole older than this is taken for a rolled-back transaction and forgotten.
const HOLE_PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct ChangeCursor {
    /// Highest seq applied.
    last: i64,
    /// Seqs below `last` not seen yet, with when they were first missed.
    holes: BTreeMap<i64, Instant>,
}

impl ChangeCursor {
    pub fn new(last: i64) -> ChangeCursor {
        ChangeCursor {
            last,
            holes: BTreeMap::new(),
        }
    }

    /// Where the next read starts (exclusive): below the oldest open hole.
    pub fn read_after(&self) -> i64 {
        self.holes
            .keys()
            .next()
            .map(|h| h - 1)
            .unwrap_or(self.last)
            .min(self.last)
    }

    /// Takes the rows read from [`ChangeCursor::read_after`] (ascending seq) and returns the
    /// job ids to apply, each change once.
    pub fn advance(&mut self, rows: &[(i64, i64)], now: Instant) -> Vec<i64> {
        let mut ids = Vec::new();
        for &(seq, job) in rows {
            if seq > self.last {
                for missing in self.last + 1..seq {
                    self.holes.insert(missing, now);
                }
                self.last = seq;
                ids.push(job);
            } else if self.holes.remove(&seq).is_some() {
                ids.push(job);
            }
        }
        self.holes
            .retain(|_, first| now.duration_since(*first) < HOLE_PATIENCE);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// After a full resync at `seq`: everything up to it is known.
    pub fn reset(&mut self, seq: i64) {
        self.last = seq;
        self.holes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_committed_late_is_still_applied_once() {
        let t0 = Instant::now();
        let mut c = ChangeCursor::new(9);
        // 11 commits before 10.
        assert_eq!(c.advance(&[(11, 7)], t0), vec![7]);
        assert_eq!(c.read_after(), 9);
        assert_eq!(c.advance(&[(10, 5), (11, 7), (12, 8)], t0), vec![5, 8]);
        assert_eq!(c.read_after(), 12);
        assert!(c.advance(&[], t0).is_empty());
    }

    #[test]
    fn a_hole_that_never_fills_is_forgotten() {
        let t0 = Instant::now();
        let mut c = ChangeCursor::new(0);
        c.advance(&[(2, 1)], t0);
        assert_eq!(c.read_after(), 0);
        c.advance(&[(2, 1)], t0 + HOLE_PATIENCE);
        assert_eq!(c.read_after(), 2);
    }
}
