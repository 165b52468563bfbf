//! What `job add` and `job edit` accept and refuse, field by field.

use super::*;
use crate::model::durations::{parse_duration_secs, parse_timeout};

fn fields() -> JobFields {
    JobFields {
        name: Some("hello".into()),
        schedule: Some("* * * * *".into()),
        command: Some("echo hi".into()),
        ..JobFields::default()
    }
}

fn http_job() -> Job {
    JobFields {
        command: None,
        http_url: Some("http://127.0.0.1:1/x".into()),
        http_method: Some("post".into()),
        ..fields()
    }
    .create("UTC")
    .expect("http job")
    .job()
    .clone()
}

#[test]
fn durations() {
    assert_eq!(parse_duration_secs("90"), Ok(90));
    assert_eq!(parse_duration_secs("5m"), Ok(300));
    assert_eq!(parse_duration_secs("2h"), Ok(7200));
    assert!(parse_duration_secs("0").is_err());
    assert!(parse_duration_secs("5x").is_err());
    assert!(parse_duration_secs("abc").is_err());
    assert_eq!(parse_timeout("none"), Ok(0));
    assert_eq!(parse_timeout("30s"), Ok(30));
}

#[test]
fn a_new_job_gets_the_model_defaults_and_the_default_zone() {
    let j = fields().create("Europe/Paris").expect("valid");
    assert_eq!(j.timezone, "Europe/Paris");
    assert_eq!(j.http_method, "GET");
    assert_eq!(j.retry_backoff_secs, 10);
    assert_eq!(j.misfire_window_secs, 3600);
    assert_eq!(j.alarm_on, DEFAULT_ALARM_ON);
}

#[test]
fn each_bad_field_is_named() {
    let cases: Vec<(JobFields, &str)> = vec![
        (
            JobFields {
                alarm_on: Some(vec!["failed".into(), "exploded".into()]),
                ..fields()
            },
            "alarm_on",
        ),
        (
            JobFields {
                alarm_channels: Some(vec!["pager".into()]),
                ..fields()
            },
            "alarm_channels",
        ),
        (
            JobFields {
                name: Some(String::new()),
                ..fields()
            },
            "name",
        ),
        (
            JobFields {
                name: Some("a b".into()),
                ..fields()
            },
            "name",
        ),
        (
            JobFields {
                name: Some("42".into()),
                ..fields()
            },
            "name",
        ),
        (
            JobFields {
                name: None,
                ..fields()
            },
            "name",
        ),
        (
            JobFields {
                schedule: Some("nope".into()),
                ..fields()
            },
            "schedule",
        ),
        (
            JobFields {
                timezone: Some("Nowhere/Town".into()),
                ..fields()
            },
            "timezone",
        ),
        (
            JobFields {
                command: Some("  ".into()),
                ..fields()
            },
            "command",
        ),
        (
            JobFields {
                command: None,
                ..fields()
            },
            "command",
        ),
        (
            JobFields {
                timeout_secs: Some(-1),
                ..fields()
            },
            "timeout_secs",
        ),
        (
            JobFields {
                timeout_secs: Some(MAX_TIMEOUT_SECS + 1),
                ..fields()
            },
            "timeout_secs",
        ),
        (
            JobFields {
                retries: Some(101),
                ..fields()
            },
            "retries",
        ),
        (
            JobFields {
                http_method: Some("POST".into()),
                ..fields()
            },
            "http_method",
        ),
        (
            JobFields {
                http_url: Some("http://x/".into()),
                ..fields()
            },
            "command",
        ),
        (
            JobFields {
                schedule: Some("x".repeat(300)),
                ..fields()
            },
            "schedule",
        ),
    ];
    for (f, field) in cases {
        let err = f.clone().create("UTC").expect_err(field);
        assert_eq!(err.field, field, "{f:?}: {err}");
    }
}

#[test]
fn an_edit_accepts_and_refuses_what_an_add_does() {
    let base = fields().create("UTC").expect("valid").job().clone();
    // An HTTP setting on a command job is refused, not ignored.
    let err = JobFields {
        http_method: Some("POST".into()),
        ..JobFields::default()
    }
    .apply(base.clone())
    .expect_err("http_method on a command job");
    assert_eq!(err.field, "http_method");
    // A command on an HTTP job is refused unless the URL is cleared with it.
    let web = http_job();
    let err = JobFields {
        command: Some("true".into()),
        ..JobFields::default()
    }
    .apply(web.clone())
    .expect_err("command and URL");
    assert_eq!(err.field, "command");
    let now_shell = JobFields {
        command: Some("true".into()),
        http_url: Some(String::new()),
        ..JobFields::default()
    }
    .apply(web.clone())
    .expect("switched to a command");
    assert_eq!(now_shell.http_url, None);
    assert_eq!(now_shell.http_method, "GET", "no leftover HTTP settings");
    // Renaming, clearing the timeout, changing HTTP fields.
    let edited = JobFields {
        name: Some("renamed".into()),
        timeout_secs: Some(0),
        http_body: Some("{}".into()),
        http_headers: Some(vec![HeaderLine("X-A: 1".into())]),
        ..JobFields::default()
    }
    .apply(
        JobFields {
            timeout_secs: Some(30),
            ..JobFields::default()
        }
        .apply(web)
        .expect("t")
        .job()
        .clone(),
    )
    .expect("edit");
    assert_eq!(edited.name, "renamed");
    assert_eq!(edited.timeout_secs, None);
    assert_eq!(edited.http_body.as_deref(), Some("{}"));
    assert_eq!(
        edited.http_headers.get("X-A").map(String::as_str),
        Some("1")
    );
}

#[test]
fn headers_travel_as_a_json_object() {
    let f = JobFields {
        http_headers: Some(vec![HeaderLine("Authorization: Bearer x".into())]),
        ..JobFields::default()
    };
    let v = serde_json::to_value(&f).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"http_headers": {"Authorization": "Bearer x"}})
    );
    let back: JobFields = serde_json::from_value(v).expect("back");
    assert_eq!(back, f);
}

#[test]
fn recipients_have_their_formats() {
    use crate::model::{check_emails, check_mobiles};
    assert!(check_mobiles("admin_mobile", "+33 6 12-34-56-78, 100").is_ok());
    for bad in ["12", "555&to=evil", "+", "abc", "5550100; 5550101"] {
        let e = check_mobiles("admin_mobile", bad).expect_err(bad);
        assert_eq!(e.field, "admin_mobile");
    }
    assert!(check_emails("admin_email", "a@x, ops@example.com").is_ok());
    for bad in ["nobody", "a b@x", "@x", "a@", "a@b@c"] {
        assert!(check_emails("admin_email", bad).is_err(), "{bad}");
    }
}
