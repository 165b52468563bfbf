//! Business calendars through the binary: the shipped ones listed and shown, calendars added
//! from dates, TOML and iCalendar, a job's instants filtered by them in its zone (`next`, and
//! what the dispatcher fires), an edit reaching the dispatcher, a day past a calendar's data
//! recorded `missed` saying why, and every refusal naming its field.

use std::time::Duration;

use crate::harness::{now_ms, wait_for, Cronvisor};

fn today() -> String {
    chrono::DateTime::from_timestamp_millis(now_ms())
        .expect("now")
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn shipped_calendars_filter_a_jobs_instants_in_its_zone() {
    let cv = Cronvisor::start("calendars");
    let list = cv.ok(&["calendar", "list"]);
    let header = list.lines().next().unwrap_or("");
    assert!(
        header.starts_with("NAME") && header.contains("USED BY"),
        "{list}"
    );
    assert!(
        list.lines().any(|l| l.starts_with("cn-workdays")
            && l.contains("workdays")
            && l.contains("2004 to 2026")
            && l.contains("shipped: chinesecalendar ")),
        "{list}"
    );
    let show = cv.ok(&["calendar", "show", "cn-workdays", "--year", "2026"]);
    assert!(show.contains("calendar: cn-workdays (shipped)"), "{show}");
    assert!(
        show.contains(
            "make-up workdays: 01-04 Sun, 02-14 Sat, 02-28 Sat, 05-09 Sat, 09-20 Sun, 10-10 Sat"
        ),
        "{show}"
    );
    assert!(show.contains("10-01 Thu, 10-02 Fri, 10-05 Mon"), "{show}");
    cv.refused(
        &["calendar", "show", "cn-workdays", "--year", "2031"],
        "error: year: calendar `cn-workdays` has no data for 2031-01-01: it covers 2004 to 2026",
    );
    // Workdays only, in Shanghai: National Day passes, the make-up Saturday fires.
    cv.add_job(
        "report",
        "0 0 9 * * *",
        "true",
        &[
            "--tz",
            "Asia/Shanghai",
            "--calendar",
            "cn-workdays",
            "--calendar-mode",
            "only",
        ],
    );
    let next = cv.ok(&[
        "next",
        "report",
        "--from",
        "2026-09-29T02:00:00Z",
        "--count",
        "5",
    ]);
    assert_eq!(
        next,
        "2026-09-30T09:00:00+08:00\n2026-10-08T09:00:00+08:00\n2026-10-09T09:00:00+08:00\n\
         2026-10-10T09:00:00+08:00\n2026-10-12T09:00:00+08:00\n"
    );
    let shown = cv.ok(&["job", "show", "report"]);
    assert!(
        shown.contains("calendars:  cn-workdays (only on their days)"),
        "{shown}"
    );
    // Past the data: said, not guessed.
    let out = cv.cli(&[
        "next",
        "report",
        "--from",
        "2026-12-30T00:00:00Z",
        "--count",
        "3",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: calendar `cn-workdays` has no data for 2027-01-01"),
        "{err}"
    );
    let list = cv.ok(&["calendar", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("cn-workdays") && l.ends_with("report")),
        "{list}"
    );
    cv.refused(
        &[
            "job",
            "add",
            "--name",
            "x",
            "--schedule",
            "@daily",
            "--command",
            "true",
            "--calendar",
            "nope",
        ],
        "error: calendars: no calendar `nope` (see `cronvisor calendar list`)",
    );
    cv.refused(
        &["job", "edit", "report", "--calendar-mode", "sometimes"],
        "invalid value 'sometimes' for '--calendar-mode <MODE>'",
    );
}

#[test]
fn a_calendar_of_ones_own_reaches_the_dispatcher_and_a_day_past_its_data_is_missed() {
    let cv = Cronvisor::start("calendars-own");
    let day = today();
    let out = cv.ok(&["calendar", "add", "today-off", "--dates", &day]);
    assert_eq!(
        out,
        "calendar `today-off` added: a days calendar of 1 entry\n"
    );
    // Every second, but not today: nothing fires.
    cv.add_job(
        "ticker",
        "* * * * * *",
        "true",
        &["--tz", "UTC", "--calendar", "today-off"],
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        cv.runs("ticker").is_empty(),
        "fired on a day off: {:?}",
        cv.runs("ticker")
    );
    let shown = cv.ok(&["job", "show", "ticker"]);
    assert!(shown.contains("00:00:00"), "next fire is tomorrow: {shown}");
    cv.refused(
        &["calendar", "delete", "today-off"],
        "error: jobs use calendar `today-off`: ticker",
    );
    // An edit reaches the dispatcher: today is a day on again.
    cv.ok(&["calendar", "edit", "today-off", "--dates", "2001-01-01"]);
    cv.wait_succeeded("ticker", 2);
    // A workdays calendar whose data ends before today: its instants are recorded `missed`,
    // saying why, never run on a guess.
    let file = cv.data_dir().join("old.toml");
    std::fs::write(
        &file,
        "name = \"ignored\"\nkind = \"workdays\"\ncovers = [2020, 2025]\ndays = [\"2025-10-01\"]\n",
    )
    .expect("file");
    cv.ok(&[
        "calendar",
        "add",
        "old",
        "--file",
        &file.display().to_string(),
    ]);
    cv.add_job(
        "stale",
        "* * * * * *",
        "true",
        &[
            "--tz",
            "UTC",
            "--calendar",
            "old",
            "--calendar-mode",
            "only",
        ],
    );
    let missed = wait_for(Duration::from_secs(20), "a missed instant", || {
        cv.runs("stale")
            .into_iter()
            .find(|r| r["state"] == "missed")
    });
    assert!(
        missed["error"].as_str().unwrap_or("").contains(&format!(
            "calendar `old` has no data for {day}: it covers 2020 to 2025"
        )),
        "{missed}"
    );
    assert!(cv.runs("stale").iter().all(|r| r["state"] == "missed"));
    // Files: iCalendar, and a TOML file's error naming the file and the field.
    let ics = cv.data_dir().join("h.ics");
    std::fs::write(
        &ics,
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261224\nDTEND;VALUE=DATE:20261227\n\
         END:VEVENT\nEND:VCALENDAR\n",
    )
    .expect("ics");
    cv.ok(&[
        "calendar",
        "add",
        "xmas",
        "--file",
        &ics.display().to_string(),
    ]);
    let xmas = cv.json(&["calendar", "show", "xmas", "--year", "2026"]);
    assert_eq!(
        xmas["days_of_year"],
        serde_json::json!(["2026-12-24", "2026-12-25", "2026-12-26"])
    );
    let bad = cv.data_dir().join("bad.toml");
    std::fs::write(&bad, "name = \"b\"\ndays = [\"2026-13-01\"]\n").expect("bad");
    cv.refused(
        &["calendar", "add", "b", "--file", &bad.display().to_string()],
        &format!(
            "error: {}: days: `2026-13-01`: `2026-13-01` is not a date",
            bad.display()
        ),
    );
    cv.refused(
        &["calendar", "add", "cn-workdays", "--dates", "2026-01-01"],
        "error: name: `cn-workdays` is a shipped calendar: add yours under another name",
    );
    cv.refused(
        &["calendar", "add", "xmas", "--dates", "2026-01-01"],
        "a calendar named `xmas` exists already",
    );
    cv.refused(&["calendar", "add", "empty"], "give its days");
    cv.ok(&["calendar", "delete", "xmas"]);
    cv.refused(&["calendar", "show", "xmas"], "no calendar `xmas`");
}

#[test]
fn a_maintenance_window_skips_the_instants_it_holds_saying_which() {
    let cv = Cronvisor::start("windows");
    cv.add_job("tick", "* * * * * *", "true", &["--tz", "UTC"]);
    cv.add_job(
        "other",
        "* * * * * *",
        "true",
        &["--tz", "UTC", "--group", "ops"],
    );
    cv.wait_succeeded("tick", 1);
    // A window over `tick` for the next 3 seconds, from the next whole second.
    let start = (now_ms() / 1000 + 1) * 1000;
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let out = cv.ok(&[
        "window",
        "add",
        "deploy",
        "--job",
        "tick",
        "--from",
        &iso(start),
        "--to",
        &iso(start + 3000),
    ]);
    assert!(
        out.starts_with("window `deploy` added: job tick, "),
        "{out}"
    );
    let list = cv.ok(&["window", "list"]);
    assert!(list.starts_with("NAME"), "{list}");
    assert!(list.contains("deploy  job tick"), "{list}");
    let skipped = wait_for(Duration::from_secs(20), "three skipped instants", || {
        let runs = cv.runs("tick");
        let s: Vec<_> = runs
            .iter()
            .filter(|r| r["state"] == "skipped")
            .cloned()
            .collect();
        (s.len() >= 3).then_some(s)
    });
    for r in &skipped {
        let at = r["instant"].as_i64().unwrap_or(0);
        assert!((start..start + 3000).contains(&at), "{r}");
        assert_eq!(
            r["error"], "skipped: maintenance window deploy (job tick)",
            "{r}"
        );
    }
    // After it, `tick` runs again; `other` was never held.
    wait_for(Duration::from_secs(20), "tick after the window", || {
        cv.runs("tick")
            .iter()
            .any(|r| r["state"] == "succeeded" && r["instant"].as_i64() >= Some(start + 3000))
            .then_some(())
    });
    assert!(cv.runs("other").iter().all(|r| r["state"] == "succeeded"));
    // A recurring one: every minute, for 59 seconds — held now, and said so.
    let out = cv.ok(&[
        "window",
        "add",
        "nightly",
        "--group",
        "ops",
        "--every",
        "0 * * * * *",
        "--for",
        "59s",
    ]);
    assert!(
        out.contains("group ops, every `0 * * * * *` for 59s (UTC)"),
        "{out}"
    );
    let held = wait_for(Duration::from_secs(20), "other held", || {
        cv.runs("other")
            .into_iter()
            .find(|r| r["state"] == "skipped")
    });
    assert_eq!(
        held["error"],
        "skipped: maintenance window nightly (group ops)"
    );
    // Refusals name the field.
    cv.refused(
        &[
            "window",
            "add",
            "bad",
            "--from",
            &iso(start),
            "--job",
            "tick",
        ],
        "error: to: a window is given by --from and --to, or recurs with --every and --for",
    );
    cv.refused(
        &[
            "window",
            "add",
            "bad",
            "--every",
            "61 * * * * *",
            "--for",
            "1h",
        ],
        "error: every: invalid cron rule",
    );
    cv.refused(
        &["window", "add", "bad", "--every", "@hourly", "--for", "30d"],
        "error: for: must be 1 s to 7 days",
    );
    cv.refused(
        &[
            "window",
            "add",
            "bad",
            "--job",
            "ghost",
            "--from",
            &iso(start),
            "--to",
            &iso(start + 1000),
        ],
        "no job `ghost`",
    );
    cv.refused(
        &[
            "window",
            "add",
            "deploy",
            "--job",
            "tick",
            "--from",
            &iso(start),
            "--to",
            &iso(start + 1000),
        ],
        "a window named `deploy` exists already",
    );
    cv.ok(&["window", "delete", "nightly"]);
    cv.ok(&["window", "delete", "deploy"]);
    assert_eq!(
        cv.ok(&["window", "list"]),
        "no maintenance windows (add one: cronvisor window add NAME --from T --to T)\n"
    );
}

/// What reaches every group's jobs is an admin-of-every-group's: calendars, and a window over
/// every job; an operator of a group may hold its own jobs only.
#[test]
fn calendars_and_windows_over_every_group_need_an_admin_of_every_group() {
    let cv = Cronvisor::start("calendars-access");
    cv.add_job("theirs", "@daily", "true", &["--group", "billing"]);
    cv.add_job("mine", "@daily", "true", &["--group", "ops"]);
    let out = cv.cli(&[
        "token", "create", "--name", "ops-op", "--role", "operator", "--groups", "ops",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let as_op = |args: &[&str]| {
        let out = cv
            .cli_command_with_token(args, &token)
            .output()
            .expect("cli");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = as_op(&["calendar", "add", "mine", "--dates", "2026-12-24"]);
    assert!(!ok && err.contains("only an admin may do this"), "{err}");
    let (ok, err) = as_op(&[
        "window",
        "add",
        "all",
        "--from",
        "2027-01-01T00:00:00Z",
        "--to",
        "2027-01-02T00:00:00Z",
    ]);
    assert!(!ok && err.contains("only an admin may do this"), "{err}");
    let (ok, err) = as_op(&[
        "window",
        "add",
        "theirs",
        "--group",
        "billing",
        "--from",
        "2027-01-01T00:00:00Z",
        "--to",
        "2027-01-02T00:00:00Z",
    ]);
    assert!(
        !ok && err.contains("error: group: no group `billing` of yours"),
        "{err}"
    );
    let (ok, err) = as_op(&[
        "window",
        "add",
        "theirs",
        "--job",
        "theirs",
        "--from",
        "2027-01-01T00:00:00Z",
        "--to",
        "2027-01-02T00:00:00Z",
    ]);
    assert!(!ok && err.contains("no job `theirs`"), "{err}");
    let (ok, err) = as_op(&[
        "window",
        "add",
        "ours",
        "--group",
        "ops",
        "--from",
        "2027-01-01T00:00:00Z",
        "--to",
        "2027-01-02T00:00:00Z",
    ]);
    assert!(ok, "{err}");
    // A viewer of the list sees calendars, and only the windows over what it may see.
    let (ok, _) = as_op(&["calendar", "show", "cn-workdays"]);
    assert!(ok);
    cv.ok(&[
        "window",
        "add",
        "billing-freeze",
        "--group",
        "billing",
        "--from",
        "2027-01-01T00:00:00Z",
        "--to",
        "2027-01-02T00:00:00Z",
    ]);
    let out = cv
        .cli_command_with_token(&["window", "list"], &token)
        .output()
        .expect("list");
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains("ours") && !list.contains("billing-freeze"),
        "{list}"
    );
}
