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
