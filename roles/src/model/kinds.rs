//! The enums of jobs and runs. Each value's name is written once (`named!`, `crate::names`):
//! it is the name on the wire (serde), on the command line (clap) and in the store.

/// `a,b,c`: how a list of names is stored.
pub fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

named! {
    /// What happens when an instant comes while the job's previous run is still going.
    #[derive(Default)]
    pub enum Overlap {
        /// Run both (cron's behaviour; the default).
        #[default]
        Allow = "allow",
        /// Record the new instant `skipped`, with the run still going as the reason.
        Forbid = "forbid",
        /// Kill the running one (recorded `killed`), then start the new one.
        Replace = "replace",
    }
}

named! {
    /// How many executors of the job's target run each instant.
    #[derive(Default)]
    pub enum Fanout {
        /// One executor, picked round-robin among the live ones of the target, failing over to
        /// the next when one is unreachable (the default).
        #[default]
        One = "one",
        /// Every live executor of the target: one run each.
        All = "all",
    }
}

named! {
    /// What a dispatcher does about instants it could not fire on time: missed while none was
    /// running, or found due past `dispatcher.late_grace` (its host paused, its clock stepped).
    #[derive(Default)]
    pub enum Misfire {
        /// Nothing: the next instant fires as usual (the default).
        #[default]
        Skip = "skip",
        /// Run once for the latest missed instant, if it is within `misfire_window_secs`.
        RunOnce = "run_once",
    }
}

named! {
    /// A run's state. Final states never change again.
    pub enum RunState {
        Scheduled = "scheduled",
        Dispatched = "dispatched",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        TimedOut = "timed_out",
        Killed = "killed",
        Lost = "lost",
        Skipped = "skipped",
        /// Instants that should have fired while no dispatcher ran (one record per job and
        /// outage, for the latest of them).
        Missed = "missed",
    }
}

impl RunState {
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            RunState::Scheduled | RunState::Dispatched | RunState::Running
        )
    }
}

named! {
    /// How a run came to be.
    pub enum Trigger {
        Schedule = "schedule",
        Manual = "manual",
        /// A new attempt after a failure, per the job's `retries`.
        Retry = "retry",
        /// The one catch-up run of a `misfire = run_once` job after downtime.
        Misfire = "misfire",
        /// Released by the end of its upstream runs in a flow (`after`).
        Upstream = "upstream",
        /// A node of a flow run again by `flow rerun`, in place of one that did not succeed.
        Rerun = "rerun",
        /// One instant of a backfill (`job backfill`).
        Backfill = "backfill",
    }
}

named! {
    /// When a dependent runs after its upstream (`after = JOB:ON`).
    #[derive(Default)]
    pub enum EdgeOn {
        /// The upstream succeeded (the default).
        #[default]
        Success = "success",
        /// The upstream ran and did not succeed: failed, timed out, killed or lost.
        Failure = "failure",
        /// The upstream ran, whatever its outcome.
        End = "end",
    }
}

named! {
    /// The outcomes of a job's runs that can raise an alarm (`alarm_on`).
    pub enum AlarmKind {
        Failed = "failed",
        TimedOut = "timed_out",
        Killed = "killed",
        Lost = "lost",
        Skipped = "skipped",
        Missed = "missed",
        /// A success after a failure.
        Recovered = "recovered",
    }
}

named! {
    /// The channels an alarm can go through (`alarm_channels`).
    pub enum Channel {
        Webhook = "webhook",
        Sms = "sms",
        Email = "email",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_and_matches_serde() {
        for st in RunState::ALL {
            assert_eq!(RunState::parse(st.as_str()), Some(*st));
            assert_eq!(
                serde_json::to_value(st).ok(),
                Some(serde_json::json!(st.as_str()))
            );
        }
        assert_eq!(Misfire::parse("run_once"), Some(Misfire::RunOnce));
        assert_eq!(AlarmKind::parse("timed_out"), Some(AlarmKind::TimedOut));
        assert_eq!(Channel::names(), "webhook, sms, email");
        assert_eq!(Overlap::default(), Overlap::Allow);
    }
}

named! {
    /// What a calendar's days are.
    #[derive(Default)]
    pub enum CalendarKind {
        /// The days listed (holidays, shutdowns, month-ends...).
        #[default]
        Days = "days",
        /// Monday to Friday, minus the days listed, plus its `workdays` (make-up days).
        Workdays = "workdays",
    }
}

named! {
    /// How a job's calendars filter its rule's instants (`--calendar-mode`).
    #[derive(Default)]
    pub enum CalendarMode {
        /// Instants on a calendar's days are not instants (a holiday calendar: skip them).
        #[default]
        Skip = "skip",
        /// Only instants on a calendar's days are (a workday calendar: workdays only).
        Only = "only",
        /// An instant on a day off moves to the next day that is not, at the same local time
        /// (a day off: listed by a `days` calendar, not a workday of a `workdays` one).
        NextWorkday = "next-workday",
    }
}
