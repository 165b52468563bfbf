//! One long-poll per run and position at the executor, whatever the number of viewers: the
//! console's readers of a running run who are caught up all wait at the same offsets, and
//! their reads join the one already in flight instead of each holding a request (and a
//! connection) at the executor. A reader behind the others reads on its own — its answer
//! comes at once, since there is output past its offsets — until it has caught up.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::output::Reading;

/// (run, stdout offset, stderr offset).
type Key = (i64, u64, u64);

/// The answer of a read in flight: `None` until it comes; then the reading, if any.
type Answer = Option<Option<Reading>>;

/// The reads in flight, by run and position.
#[derive(Debug, Default, Clone)]
pub struct Polls(Arc<Mutex<HashMap<Key, watch::Receiver<Answer>>>>);

/// Takes a finished (or abandoned) read out of the map — only its own entry.
struct Leaving<'a> {
    polls: &'a Polls,
    key: Key,
    mine: watch::Receiver<Answer>,
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        let mut map = self.polls.0.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|r| r.same_channel(&self.mine))
        {
            map.remove(&self.key);
        }
    }
}

impl Polls {
    /// `read`'s answer for `key`, or the answer of the same read already in flight. A read
    /// whose first reader went away before its answer gives `None` to those who joined it
    /// (they look again, as after an executor that could not be asked).
    pub async fn read<F>(&self, key: Key, read: F) -> Option<Reading>
    where
        F: Future<Output = Option<Reading>>,
    {
        let joined = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                Some(rx) => Err(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(key, rx.clone());
                    Ok((tx, rx))
                }
            }
        };
        match joined {
            Ok((tx, mine)) => {
                let _leaving = Leaving {
                    polls: self,
                    key,
                    mine,
                };
                let reading = read.await;
                tx.send_replace(Some(reading.clone()));
                reading
            }
            Err(mut rx) => match rx.wait_for(Option::is_some).await {
                Ok(answer) => answer.clone().flatten(),
                Err(_) => None,
            },
        }
    }

    /// Reads in flight.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_at_one_position_share_one_read() {
        let polls = Polls::default();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let read = |calls: Arc<std::sync::atomic::AtomicUsize>,
                    mut released: watch::Receiver<bool>| async move {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = released.wait_for(|r| *r).await;
            Some(Reading::default())
        };
        let readers: Vec<_> = (0..5)
            .map(|_| {
                let (polls, calls, released) = (polls.clone(), calls.clone(), released.clone());
                tokio::spawn(async move { polls.read((1, 0, 0), read(calls, released)).await })
            })
            .collect();
        // Another position is another read.
        let other = {
            let (polls, calls, released) = (polls.clone(), calls.clone(), released.clone());
            tokio::spawn(async move { polls.read((1, 5, 0), read(calls, released)).await })
        };
        while polls.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
        release.send_replace(true);
        for r in readers {
            assert_eq!(r.await.expect("reader"), Some(Reading::default()));
        }
        assert!(other.await.expect("other").is_some());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(polls.in_flight(), 0, "nothing left behind");
    }
}
