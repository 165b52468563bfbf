//! Run control through the binary: declared parameters (defaults, required, choices, secret),
//! the values a run used, and every refusal naming the field.

use crate::harness::Cronvisor;

fn env_line<'a>(stdout: &'a str, name: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
}

#[test]
fn a_runs_parameters_reach_its_environment_and_are_recorded_secrets_masked() {
    let cv = Cronvisor::start("params");
    cv.add_job(
        "report",
        "@yearly",
        "env | grep ^CRONVISOR_PARAM_ | sort",
        &[
            "--param",
            "REGION=eu",
            "--param",
            "DAY",
            "--param",
            "KEY=s3cret",
            "--param-choices",
            "REGION=eu|us",
            "--secret-param",
            "KEY",
        ],
    );
    let shown = cv.ok(&["job", "show", "report"]);
    assert!(
        shown.contains("param:      REGION=eu, one of eu|us"),
        "{shown}"
    );
    assert!(shown.contains("param:      DAY (required)"), "{shown}");
    assert!(shown.contains("param:      KEY=***, secret"), "{shown}");
    assert!(!shown.contains("s3cret"));
    // Given values over the defaults.
    let id = cv.json(&[
        "job",
        "run",
        "report",
        "--param",
        "DAY=2026-12-06",
        "--param",
        "REGION=us",
    ])["run_id"]
        .to_string();
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    let out = run["stdout"].as_str().unwrap_or("");
    assert_eq!(
        env_line(out, "CRONVISOR_PARAM_DAY"),
        Some("2026-12-06"),
        "{out}"
    );
    assert_eq!(env_line(out, "CRONVISOR_PARAM_REGION"), Some("us"), "{out}");
    assert_eq!(
        env_line(out, "CRONVISOR_PARAM_KEY"),
        Some("s3cret"),
        "{out}"
    );
    assert_eq!(run["params"]["KEY"], "***", "{run}");
    assert_eq!(run["params"]["REGION"], "us");
    let text = cv.ok(&["run", "show", &id]);
    assert!(text.contains("param:      DAY=2026-12-06"), "{text}");
    assert!(text.contains("param:      KEY=***"), "{text}");
    // Refusals name the field and the parameter.
    let refused = |args: &[&str], want: &str| {
        let out = cv.cli(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    };
    refused(
        &["job", "run", "report"],
        "error: params: `DAY` is required and has no default",
    );
    refused(
        &[
            "job",
            "run",
            "report",
            "--param",
            "DAY=x",
            "--param",
            "REGION=mars",
        ],
        "params: `REGION`: `mars` is not one of eu|us",
    );
    refused(
        &[
            "job", "run", "report", "--param", "DAY=x", "--param", "NOPE=1",
        ],
        "params: `NOPE` is not declared (the job's: REGION, DAY, KEY)",
    );
    refused(
        &["job", "run", "report", "--param", "oops"],
        "expected NAME=VALUE",
    );
    refused(
        &["job", "edit", "report", "--param", "1BAD=x"],
        "params: `1BAD`",
    );
    refused(
        &["job", "edit", "report", "--param-choices", "GHOST=a|b"],
        "param_choices: `GHOST` is not a declared parameter",
    );
    refused(
        &["job", "edit", "report", "--param-choices", "REGION=us|ap"],
        "its default `eu` is not one of us|ap",
    );
    // A scheduled (or released) run of a job with a required parameter fails saying why.
    cv.add_job("needs", "* * * * * *", "true", &["--param", "DAY"]);
    let failed =
        crate::harness::wait_for(std::time::Duration::from_secs(20), "a failed run", || {
            cv.runs("needs")
                .into_iter()
                .find(|r| r["state"] == "failed")
        });
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or("")
            .contains("`DAY` is required and has no default"),
        "{failed}"
    );
    // A scheduled run records the defaults it ran with.
    cv.ok(&["job", "edit", "needs", "--param", "DAY=today"]);
    let ok = crate::harness::wait_for(
        std::time::Duration::from_secs(20),
        "a run with the default",
        || {
            cv.runs("needs")
                .into_iter()
                .find(|r| r["state"] == "succeeded")
        },
    );
    assert_eq!(ok["params"]["DAY"], "today", "{ok}");
    // A secret default sent back masked keeps its value.
    cv.ok(&[
        "job",
        "edit",
        "report",
        "--param",
        "REGION=eu",
        "--param",
        "DAY",
        "--param",
        "KEY=***",
    ]);
    let id = cv.json(&["job", "run", "report", "--param", "DAY=d"])["run_id"].to_string();
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    assert_eq!(
        env_line(run["stdout"].as_str().unwrap_or(""), "CRONVISOR_PARAM_KEY"),
        Some("s3cret")
    );
}
