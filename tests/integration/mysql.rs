//! The MySQL flavour of the schema on a real MariaDB: migrated by the binary, same tables, and
//! the whole standalone system running on it.

use crate::harness::mariadb::MariaDb;
use crate::harness::Cronvisor;

#[test]
fn mysql_migrations_apply_to_mariadb_and_jobs_fire_on_it() {
    let db = MariaDb::start();
    let stdout = db.migrate();
    // The password never reaches the output.
    assert!(!stdout.contains("app-pw"));
    let tables = db
        .sql_root("SELECT table_name FROM information_schema.tables WHERE table_schema = 'cron' ")
        .expect("tables");
    let mut tables: Vec<&str> = tables.lines().collect();
    tables.sort_unstable();
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "alarms",
            "api_tokens",
            "audit",
            "dispatchers",
            "executors",
            "fleet_state",
            "job_changes",
            "jobs",
            "login_failures",
            "runs",
            "sessions",
            "users"
        ]
    );
    let unique = db
        .sql_root("SELECT GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM information_schema.statistics \
                   WHERE table_schema = 'cron' AND index_name = 'runs_fire_once'")
        .expect("index");
    assert_eq!(unique.trim(), "job_id,instant,target,attempt");

    // The same code path runs the whole system on MariaDB.
    let cv = Cronvisor::start_with("mysql-up", &format!("[store]\nurl = \"{}\"\n", db.url()));
    cv.add_job("tick", "* * * * * *", "echo on mariadb", &[]);
    cv.wait_succeeded("tick", 2);
    let rows = db
        .sql_root(
            "SELECT COUNT(*), COUNT(DISTINCT instant) FROM cron.runs WHERE state = 'succeeded'",
        )
        .expect("count");
    let counts: Vec<&str> = rows.split_whitespace().collect();
    assert_eq!(counts[0], counts[1], "duplicate instants: {rows}");
    // A forbid job every second that runs 1.5 s: fired in its own transaction on MariaDB too,
    // every other instant skipped, never two at once.
    cv.add_job("slow", "* * * * * *", "sleep 1.5", &["--overlap", "forbid"]);
    let runs = crate::harness::wait_for(std::time::Duration::from_secs(20), "skips", || {
        let runs = cv.runs("slow");
        (runs.iter().any(|r| r["state"] == "skipped")
            && runs.iter().filter(|r| r["state"] == "succeeded").count() >= 2)
            .then_some(runs)
    });
    let mut spans: Vec<(i64, i64)> = runs
        .iter()
        .filter(|r| r["state"] == "succeeded")
        .map(|r| {
            (
                crate::harness::ms(r, "started_at"),
                crate::harness::ms(r, "ended_at"),
            )
        })
        .collect();
    spans.sort_unstable();
    assert!(
        spans.windows(2).all(|w| w[1].0 >= w[0].1),
        "two forbid runs at once: {spans:?}"
    );
}

#[test]
fn scopes_hold_on_mariadb_too() {
    let db = MariaDb::start();
    db.migrate();
    let cv = Cronvisor::start_with(
        "mysql-access",
        &format!("[store]\nurl = \"{}\"\n", db.url()),
    );
    crate::access::walk_every_route_out_of_scope(&cv);
}
