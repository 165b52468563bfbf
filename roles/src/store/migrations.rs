//! The schema migrations, embedded in the binary so that a deployed `cronvisor` needs no source
//! tree. Both flavours carry the same versions; `Store::migrate` picks the one of its backend.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

/// (version, description, SQL) for SQLite.
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "policies",
        include_str!("../../../migrations/sqlite/0002_policies.sql"),
    ),
    (
        3,
        "executors",
        include_str!("../../../migrations/sqlite/0003_executors.sql"),
    ),
    (
        4,
        "alarms",
        include_str!("../../../migrations/sqlite/0004_alarms.sql"),
    ),
    (
        5,
        "http_jobs",
        include_str!("../../../migrations/sqlite/0005_http_jobs.sql"),
    ),
    (
        6,
        "fanout",
        include_str!("../../../migrations/sqlite/0006_fanout.sql"),
    ),
    (
        7,
        "fired_by",
        include_str!("../../../migrations/sqlite/0007_fired_by.sql"),
    ),
    (
        8,
        "alarm_channels",
        include_str!("../../../migrations/sqlite/0008_alarm_channels.sql"),
    ),
    (
        9,
        "dispatchers",
        include_str!("../../../migrations/sqlite/0009_dispatchers.sql"),
    ),
    (
        10,
        "job_names",
        include_str!("../../../migrations/sqlite/0010_job_names.sql"),
    ),
    (
        11,
        "live_output",
        include_str!("../../../migrations/sqlite/0011_live_output.sql"),
    ),
    (
        12,
        "access",
        include_str!("../../../migrations/sqlite/0012_access.sql"),
    ),
    (
        13,
        "job_env",
        include_str!("../../../migrations/sqlite/0013_job_env.sql"),
    ),
    (
        14,
        "job_description",
        include_str!("../../../migrations/sqlite/0014_job_description.sql"),
    ),
    (
        15,
        "job_run_as",
        include_str!("../../../migrations/sqlite/0015_job_run_as.sql"),
    ),
    (
        16,
        "job_limits",
        include_str!("../../../migrations/sqlite/0016_job_limits.sql"),
    ),
    (
        17,
        "job_stats",
        include_str!("../../../migrations/sqlite/0017_job_stats.sql"),
    ),
    (
        18,
        "flows",
        include_str!("../../../migrations/sqlite/0018_flows.sql"),
    ),
    (
        19,
        "run_control",
        include_str!("../../../migrations/sqlite/0019_run_control.sql"),
    ),
    (
        20,
        "calendars",
        include_str!("../../../migrations/sqlite/0020_calendars.sql"),
    ),
    (
        21,
        "usual_durations",
        include_str!("../../../migrations/sqlite/0021_usual_durations.sql"),
    ),
    (
        22,
        "job_cursors",
        include_str!("../../../migrations/sqlite/0022_job_cursors.sql"),
    ),
    (
        23,
        "monitors_and_clocks",
        include_str!("../../../migrations/sqlite/0023_monitors_and_clocks.sql"),
    ),
];

/// (version, description, SQL) for MySQL / MariaDB.
const MYSQL: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/mysql/0001_init.sql"),
    ),
    (
        2,
        "policies",
        include_str!("../../../migrations/mysql/0002_policies.sql"),
    ),
    (
        3,
        "executors",
        include_str!("../../../migrations/mysql/0003_executors.sql"),
    ),
    (
        4,
        "alarms",
        include_str!("../../../migrations/mysql/0004_alarms.sql"),
    ),
    (
        5,
        "http_jobs",
        include_str!("../../../migrations/mysql/0005_http_jobs.sql"),
    ),
    (
        6,
        "fanout",
        include_str!("../../../migrations/mysql/0006_fanout.sql"),
    ),
    (
        7,
        "fired_by",
        include_str!("../../../migrations/mysql/0007_fired_by.sql"),
    ),
    (
        8,
        "alarm_channels",
        include_str!("../../../migrations/mysql/0008_alarm_channels.sql"),
    ),
    (
        9,
        "dispatchers",
        include_str!("../../../migrations/mysql/0009_dispatchers.sql"),
    ),
    (
        10,
        "job_names",
        include_str!("../../../migrations/mysql/0010_job_names.sql"),
    ),
    (
        11,
        "live_output",
        include_str!("../../../migrations/mysql/0011_live_output.sql"),
    ),
    (
        12,
        "access",
        include_str!("../../../migrations/mysql/0012_access.sql"),
    ),
    (
        13,
        "job_env",
        include_str!("../../../migrations/mysql/0013_job_env.sql"),
    ),
    (
        14,
        "job_description",
        include_str!("../../../migrations/mysql/0014_job_description.sql"),
    ),
    (
        15,
        "job_run_as",
        include_str!("../../../migrations/mysql/0015_job_run_as.sql"),
    ),
    (
        16,
        "job_limits",
        include_str!("../../../migrations/mysql/0016_job_limits.sql"),
    ),
    (
        17,
        "job_stats",
        include_str!("../../../migrations/mysql/0017_job_stats.sql"),
    ),
    (
        18,
        "flows",
        include_str!("../../../migrations/mysql/0018_flows.sql"),
    ),
    (
        19,
        "run_control",
        include_str!("../../../migrations/mysql/0019_run_control.sql"),
    ),
    (
        20,
        "calendars",
        include_str!("../../../migrations/mysql/0020_calendars.sql"),
    ),
    (
        21,
        "usual_durations",
        include_str!("../../../migrations/mysql/0021_usual_durations.sql"),
    ),
    (
        22,
        "job_cursors",
        include_str!("../../../migrations/mysql/0022_job_cursors.sql"),
    ),
    (
        23,
        "monitors_and_clocks",
        include_str!("../../../migrations/mysql/0023_monitors_and_clocks.sql"),
    ),
];

/// An in-binary migration source for one backend.
#[derive(Debug, Clone, Copy)]
pub struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl Embedded {
    pub fn sqlite() -> Embedded {
        Embedded(SQLITE)
    }

    pub fn mysql() -> Embedded {
        Embedded(MYSQL)
    }
}

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both flavours must define the same versions, or one backend would lag the other.
    #[test]
    fn flavours_have_the_same_versions() {
        fn v(m: &'static [(i64, &'static str, &'static str)]) -> Vec<(i64, &'static str)> {
            m.iter().map(|x| (x.0, x.1)).collect()
        }
        assert_eq!(v(SQLITE), v(MYSQL));
    }
}
