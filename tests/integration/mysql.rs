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
            "backfills",
            "calendars",
            "dispatchers",
            "executors",
            "fleet_state",
            "flows",
            "job_changes",
            "job_cursors",
            "job_edges",
            "job_stats",
            "jobs",
            "login_failures",
            "monitors",
            "runs",
            "sessions",
            "short_runs",
            "users",
            "windows"
        ]
    );
    let unique = db
        .sql_root("SELECT GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM information_schema.statistics \
                   WHERE table_schema = 'cron' AND index_name = 'runs_fire_once'")
        .expect("index");
    assert_eq!(
        unique.trim(),
        "job_id,instant,target,attempt,flow_root,flow_round"
    );

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
    // A flow on MariaDB: edges checked under `FOR UPDATE`, a fan-in released once, a cycle
    // refused.
    cv.add_job("root", "@yearly", "true", &[]);
    for (name, after) in [("left", "root"), ("right", "root"), ("join", "left,right")] {
        cv.ok(&[
            "job",
            "add",
            "--name",
            name,
            "--after",
            after,
            "--command",
            "true",
        ]);
    }
    let refused = cv.cli(&["job", "edit", "root", "--after", "join"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("a cycle root -> join -> left -> root")
    );
    let id = cv.run_now("root");
    cv.wait_run(&id, "root", |s| s == "succeeded");
    crate::harness::wait_for(std::time::Duration::from_secs(20), "the join", || {
        cv.runs("join")
            .first()
            .filter(|r| r["state"] == "succeeded")
            .cloned()
    });
    let flow = cv.json(&["flow", "show", "join"]);
    assert_eq!(flow["state"], "succeeded", "{flow}");
    let listed = crate::harness::wait_for(
        std::time::Duration::from_secs(10),
        "the flow listed",
        || {
            let out = cv.ok(&["flow", "list", "--job", "join"]);
            out.contains("succeeded").then_some(out)
        },
    );
    assert!(listed.starts_with("ROOT"), "{listed}");
    // A flow whose root is still going is listed running.
    cv.add_job("slowroot", "@yearly", "sleep 2", &[]);
    cv.ok(&[
        "job",
        "add",
        "--name",
        "after-slow",
        "--after",
        "slowroot",
        "--command",
        "true",
    ]);
    let id = cv.run_now("slowroot");
    cv.wait_run(&id, "slowroot running", |s| s == "running");
    let running = cv.ok(&["flow", "list", "--state", "running"]);
    assert!(running.contains("slowroot"), "{running}");
    assert_eq!(cv.runs("join").len(), 1);
    // A backfill of the flow's root on MariaDB: each past instant's whole flow once, two
    // flows at a time.
    let b = cv.json(&[
        "job",
        "backfill",
        "root",
        "--from",
        "2021-01-01",
        "--to",
        "2025-12-31",
        "--parallel",
        "2",
    ]);
    assert_eq!(b["total"], 5, "{b}");
    let id = b["id"].to_string();
    let b = crate::harness::wait_for(std::time::Duration::from_secs(60), "the backfill", || {
        let b = cv.json(&["backfill", "show", &id]);
        (b["state"] == "done").then_some(b)
    });
    assert_eq!(b["succeeded"], 5, "{b}");
    let joins = db
        .sql_root(
            "SELECT COUNT(*), COUNT(DISTINCT r.instant) FROM cron.runs r JOIN cron.jobs j \
             ON j.id = r.job_id WHERE j.name = 'join' AND r.instant < 1767225600000",
        )
        .expect("joins");
    assert_eq!(joins.split_whitespace().collect::<Vec<_>>(), ["5", "5"]);
    // `run retry` on MariaDB.
    let tick = cv
        .runs("tick")
        .into_iter()
        .find(|r| r["state"] == "succeeded")
        .expect("a tick");
    let again = cv.json(&["run", "retry", &tick["id"].to_string()]);
    let run = cv.wait_run(&again["run_id"].to_string(), "the retry", |s| {
        s == "succeeded"
    });
    assert_eq!(run["instant"], tick["instant"]);
    // Calendars, windows and SLAs on MariaDB: a calendar of one's own, a window listed, and
    // an `overdue` raised by the monitor's pass over MariaDB.
    cv.ok(&[
        "calendar",
        "add",
        "shutdown",
        "--dates",
        "2026-12-24..2026-12-31",
    ]);
    cv.ok(&[
        "window",
        "add",
        "freeze",
        "--group",
        "default",
        "--from",
        "2027-01-01T00:00:00Z",
        "--to",
        "2027-01-02T00:00:00Z",
    ]);
    assert!(cv.ok(&["window", "list"]).contains("freeze"));
    cv.add_job(
        "late-one",
        "@yearly",
        "sleep 3",
        &[
            "--calendar",
            "shutdown",
            "--deadline",
            "1s",
            "--late-after",
            "30s",
        ],
    );
    cv.run_now("late-one");
    crate::harness::wait_for(std::time::Duration::from_secs(20), "overdue", || {
        cv.json(&["alarms"])
            .as_array()
            .and_then(|a| a.iter().find(|x| x["kind"] == "overdue").cloned())
    });
    // Learned durations on MariaDB: the band, `short` and `slow`, once each.
    crate::usual::short_and_slow_once(&cv);
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

/// The jobs of the system cronvisor replaces come over from its MySQL table
/// `tb_cron_schedule`: each querytype, state and overflow policy as cronvisor's fields.
#[test]
fn gocron_jobs_come_over_from_its_mysql_table() {
    let db = MariaDb::start();
    db.sql_root(
        "SET NAMES utf8mb4; CREATE TABLE cron.tb_cron_schedule (jobid INT PRIMARY KEY, job_name VARCHAR(64), \
         cmd TEXT, rule VARCHAR(64), querytype VARCHAR(16), state TINYINT, runat VARCHAR(64), \
         overflow TINYINT, admin_mobile VARCHAR(255), admin_email VARCHAR(255), \
         remark VARCHAR(255)) DEFAULT CHARSET = utf8mb4; \
         INSERT INTO cron.tb_cron_schedule VALUES \
         (1, 'backup', '/usr/local/bin/backup', '0 30 2 * * *', 'shell', 1, 'phpgroup', 1, \
          '13800000001', 'ops@example.com', 'nightly'), \
         (2, '清理缓存', 'http://127.0.0.1:9/flush', '0 */5 * * * *', 'curl', 1, NULL, 2, '', '', NULL), \
         (3, 'old', 'echo old', '*/10 * * * * *', 'shell', 0, NULL, 3, NULL, NULL, NULL), \
         (4, 'both', 'echo both', '@every 1m', 'shell', 1, NULL, 4, NULL, NULL, NULL);",
    )
    .expect("gocron's table");
    let cv = Cronvisor::start_with("gocron-import", "[machine]\nphpgroup = [\"localhost\"]\n");
    let out = cv.cli(&["import", "gocron", "--from", &db.url(), "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.ends_with("would add 4 job(s); 0 refused\n"), "{text}");
    assert!(cv
        .json(&["job", "list"])
        .as_array()
        .is_some_and(|a| a.is_empty()));
    let out = cv.cli(&["import", "gocron", "--from", &db.url()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("app-pw"),
        "the password stays out of the output"
    );
    let backup = cv.json(&["job", "show", "backup"]);
    assert_eq!(backup["overlap"], "forbid");
    assert!(backup["alarm_on"]
        .as_array()
        .is_some_and(|a| a.iter().any(|k| k == "skipped")));
    assert_eq!(backup["run_at"], "phpgroup");
    assert_eq!(backup["schedule"], "0 30 2 * * *");
    assert_eq!(backup["description"], "gocron job 1: backup — nightly");
    assert_eq!(backup["admin_email"], "ops@example.com");
    let flush = cv.json(&["job", "show", "gocron-2"]);
    assert_eq!(flush["http_url"], "http://127.0.0.1:9/flush");
    assert_eq!(flush["overlap"], "replace");
    assert_eq!(flush["description"], "gocron job 2: 清理缓存");
    let old = cv.json(&["job", "show", "old"]);
    assert_eq!(
        (old["paused"].clone(), old["overlap"].clone()),
        (true.into(), "forbid".into())
    );
    assert_eq!(cv.json(&["job", "show", "both"])["overlap"], "allow");
}

/// The gap check on MariaDB (found by the chaos suite: there it could not decode the error
/// column, so it never ran): a deleted record comes back as `missed`.
#[test]
fn the_gap_check_works_on_mariadb_too() {
    let db = MariaDb::start();
    db.migrate();
    let cv = Cronvisor::start_with(
        "mysql-gaps",
        &format!(
            "[store]\nurl = \"{}\"\n[dispatcher]\ndelivery_timeout = \"2s\"\n\
             connect_timeout = \"500ms\"\nlate_grace = \"1s\"\n[cluster]\nlock_ttl = \"1s\"\n",
            db.url()
        ),
    );
    cv.add_job("tick", "* * * * * *", "true", &[]);
    let runs = cv.wait_succeeded("tick", 2);
    let hole = runs
        .iter()
        .filter(|r| r["state"] == "succeeded")
        .map(|r| crate::harness::ms(r, "instant"))
        .max()
        .unwrap_or(0);
    db.sql_root(&format!("DELETE FROM cron.runs WHERE instant = {hole}"))
        .expect("delete");
    let run = crate::harness::wait_for(std::time::Duration::from_secs(45), "the record", || {
        cv.runs("tick")
            .into_iter()
            .find(|r| crate::harness::ms(r, "instant") == hole)
    });
    assert_eq!(run["state"], "missed", "{run}");
    assert!(!cv.log().contains("gap check: cannot read"), "{}", cv.log());
    // The per-job cursor moves on over MariaDB too (its upsert is MySQL's own).
    crate::harness::wait_for(
        std::time::Duration::from_secs(45),
        "the cursor past the hole",
        || {
            let until = db
                .sql_root("SELECT checked_until FROM cron.job_cursors")
                .unwrap_or_default();
            (until.trim().parse::<i64>().unwrap_or(0) > hole).then_some(())
        },
    );
    assert!(!cv.log().contains("cursor check: cannot"), "{}", cv.log());
}
