//! Bad input is refused with the field and the reason, through the API (400 + JSON) and the
//! CLI (non-zero exit + message), and nothing is stored.

use serde_json::Value;

use crate::harness::{http, Cronvisor};

const CASES: &[(&str, &str)] = &[
    (
        r#"{"name":"a","schedule":"61 * * * *","command":"true"}"#,
        "schedule",
    ),
    (
        r#"{"name":"a","schedule":"* * *","command":"true"}"#,
        "schedule",
    ),
    (
        r#"{"name":"a","schedule":"* * * * *","timezone":"Mars/Olympus","command":"true"}"#,
        "timezone",
    ),
    (
        r#"{"name":"a","schedule":"* * * * *","command":"   "}"#,
        "command",
    ),
    (r#"{"name":"a","schedule":"* * * * *"}"#, "command"),
    (
        r#"{"name":"","schedule":"* * * * *","command":"true"}"#,
        "name",
    ),
    (
        r#"{"name":"dup","schedule":"* * * * *","command":"true"}"#,
        "name",
    ),
    (r#"{"schedule":"* * * * *","command":"true"}"#, "name"),
    (
        r#"{"name":"a","schedule":"* * * * *","command":"true","colour":"red"}"#,
        "colour",
    ),
];

#[test]
fn the_api_answers_400_naming_the_field_and_stores_nothing() {
    let cv = Cronvisor::start("bad-api");
    cv.add_job("dup", "@daily", "true", &[]);
    let (api, token) = (cv.endpoint("api"), cv.token());
    for (body, field) in CASES {
        let (code, reply) = http(&api, "POST", "/api/v1/jobs", Some(&token), Some(body));
        assert_eq!(code, 400, "{body} -> {reply}");
        let v: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{reply}: {e}"));
        assert_eq!(v["error"]["field"], *field, "{body} -> {reply}");
        assert!(!v["error"]["message"].as_str().unwrap_or("").is_empty());
    }
    let (code, reply) = http(
        &api,
        "POST",
        "/api/v1/jobs",
        Some(&token),
        Some("{not json"),
    );
    assert_eq!(code, 400, "{reply}");
    let (_, jobs) = http(&api, "GET", "/api/v1/jobs", Some(&token), None);
    let jobs: Value = serde_json::from_str(&jobs).expect("jobs");
    assert_eq!(
        jobs.as_array().map(Vec::len),
        Some(1),
        "only the first job is stored: {jobs}"
    );
}

#[test]
fn the_cli_names_the_field_and_exits_non_zero() {
    let cv = Cronvisor::start("bad-cli");
    cv.add_job("dup", "@daily", "true", &[]);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--name",
                "a",
                "--schedule",
                "61 * * * *",
                "--command",
                "true",
            ],
            "schedule: invalid cron rule",
        ),
        (
            &[
                "--name",
                "a",
                "--schedule",
                "* * * * *",
                "--tz",
                "Mars/Olympus",
                "--command",
                "true",
            ],
            "timezone: unknown time zone",
        ),
        (
            &["--name", "a", "--schedule", "* * * * *", "--command", ""],
            "command: must not be empty",
        ),
        (
            &[
                "--name",
                "dup",
                "--schedule",
                "* * * * *",
                "--command",
                "true",
            ],
            "name: a job named `dup` exists already",
        ),
        (
            &[
                "--name",
                "a",
                "--schedule",
                "* * * * *",
                "--command",
                "true",
                "--timeout",
                "5x",
            ],
            "--timeout",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["job", "add"];
        all.extend_from_slice(args);
        let out = cv.cli(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected `{expected}` in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(cv.json(&["job", "list"]).as_array().map(Vec::len), Some(1));

    // A bad rule given to `next` and a bad config are clear too.
    let out = cv.cli(&["next", "not a rule"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid cron rule"));
    std::fs::write(cv.dir.0.join("bad.toml"), "timezone = \"Nowhere/Land\"\n").expect("write");
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["--config"])
        .arg(cv.dir.0.join("bad.toml"))
        .args(["config", "check"])
        .output()
        .expect("config check");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`timezone`"));
    // The SMS providers' and run_as keys name themselves and say why.
    for (config, expected) in [
        (
            "[alarm.sms]\nprovider = \"aliyun\"\nkey_id = \"LTAI\"\nkey_secret = \"s\"\ntemplate = \"SMS_1\"\n",
            "config key `alarm.sms.sign_name`: required with provider = \"aliyun\"",
        ),
        (
            "[alarm.sms]\nprovider = \"tencent\"\nkey_id = \"AKID\"\nkey_secret = \"s\"\n\
             app_id = \"1\"\nsign_name = \"c\"\ntemplate = \"1\"\nparams = { job = \"{job}\" }\n",
            "config key `alarm.sms.params`: Tencent templates take variables in order",
        ),
        (
            "[alarm.sms]\nprovider = \"twilio\"\nkey_id = \"AC\"\nfrom = \"+1500\"\n",
            "config key `alarm.sms.key_secret`: required with provider = \"twilio\"",
        ),
        ("[executor]\nrun_as = \" \"\n", "config key `executor.run_as`"),
        (
            "[executor]\nhttp_allow = [\"not a net\"]\n",
            "config key `executor.http_allow`",
        ),
    ] {
        std::fs::write(cv.dir.0.join("bad.toml"), config).expect("write");
        let out = std::process::Command::new(crate::harness::BIN)
            .args(["--config"])
            .arg(cv.dir.0.join("bad.toml"))
            .args(["config", "check"])
            .env_remove("CRONVISOR_SMS_KEY_SECRET")
            .output()
            .expect("config check");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}");
        assert!(stderr.contains(expected), "{config}: {stderr}");
    }
}

#[test]
fn config_check_validates_a_cluster_config_without_starting_anything() {
    let check = |path: &std::path::Path| {
        std::process::Command::new(crate::harness::BIN)
            .arg("--config")
            .arg(path)
            .args(["config", "check"])
            .env_remove("CRONVISOR_STORE_URL")
            .env_remove("CRONVISOR_ETCD_ENDPOINTS")
            .output()
            .expect("config check")
    };
    // The shipped example is valid, and the check reaches none of its (unreachable) servers.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/cluster.toml");
    let out = check(&shipped);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("cluster: host 192.168.2.74"), "{stdout}");

    let dir = crate::harness::TempDir::new("cfgcheck");
    let cases = [
        (
            "[cluster]\netcd_endpoints = [\"http://127.0.0.1:1\"]\n",
            "`store.url`",
        ),
        (
            "[cluster]\netcd_endpoints = [\"127.0.0.1:2379\"]\n",
            "`cluster.etcd_endpoints[0]`",
        ),
        ("roles = [\"dispatcher\", \"cook\"]\n", "`roles[1]`"),
        ("[machine]\nphp = []\n", "`machine.php`"),
        (
            "[cluster]\nredis_url = \"localhost\"\n",
            "`cluster.redis_url`",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.0.join("c.toml");
        std::fs::write(&path, text).expect("write");
        let out = check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text} passed");
        assert!(
            stderr.contains(expected),
            "{text}: expected {expected} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Found by schemathesis: a JSON array was read as a struct by position (`[null, null]` a
/// no-op edit, `[]` a test alarm), and a group that is not a name as "" — every group.
#[test]
fn api_bodies_are_objects_and_groups_are_names() {
    let cv = Cronvisor::start("bad-shapes");
    cv.add_job("kept", "@daily", "true", &[]);
    let (api, token) = (cv.endpoint("api"), cv.token());
    for (method, path, body) in [
        ("PATCH", "/api/v1/jobs/kept", "[null, null]"),
        ("POST", "/api/v1/jobs", r#"["a", "default", "@daily"]"#),
        ("POST", "/api/v1/alarms/test", "[]"),
        ("POST", "/api/v1/users", "  [1]"),
    ] {
        let (code, reply) = http(&api, method, path, Some(&token), Some(body));
        assert_eq!(code, 400, "{method} {path} {body} -> {reply}");
        let v: Value = serde_json::from_str(&reply).expect("error JSON");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("expected an object")),
            "{reply}"
        );
    }
    let user = r#"{"name":"ann","role":"viewer","password":"pw-ann-1234","groups":["team"]}"#;
    let (code, reply) = http(&api, "POST", "/api/v1/users", Some(&token), Some(user));
    assert_eq!(code, 201, "{reply}");
    for groups in [r#"[{}]"#, r#"["team", 3]"#, r#"[null]"#] {
        let body = format!(r#"{{"groups": {groups}}}"#);
        let (code, reply) = http(
            &api,
            "PATCH",
            "/api/v1/users/ann",
            Some(&token),
            Some(&body),
        );
        assert_eq!(code, 400, "{body} -> {reply}");
        let v: Value = serde_json::from_str(&reply).expect("error JSON");
        assert_eq!(v["error"]["field"], "groups", "{reply}");
    }
    let (_, shown) = http(&api, "GET", "/api/v1/users/ann", Some(&token), None);
    let shown: Value = serde_json::from_str(&shown).expect("user");
    assert_eq!(
        shown["groups"],
        serde_json::json!(["team"]),
        "scope kept: {shown}"
    );
    let token_body = r#"{"name":"t1","role":"viewer","groups":[{}]}"#;
    let (code, reply) = http(
        &api,
        "POST",
        "/api/v1/tokens",
        Some(&token),
        Some(token_body),
    );
    assert_eq!(code, 400, "{reply}");
}
