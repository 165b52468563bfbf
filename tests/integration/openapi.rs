//! The API as a contract: `/api/v1/openapi.json`, generated from the handlers, is served to
//! anyone, guards every operation it lists with the token, and is what the API does —
//! schemathesis fuzzes the running API against it (`scripts/check-openapi.py`).

use crate::harness::{http, Cronvisor};

/// Every operation of the document, without a token: 401 with the documented error body
/// (an operation the auth layer missed would answer something else).
#[test]
fn the_document_is_served_to_anyone_and_every_operation_it_lists_needs_the_token() {
    let cv = Cronvisor::start("openapi-doc");
    let api = cv.endpoint("api");
    let (status, body) = http(&api, "GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{job}", "j")
            .replace("{id}", "1")
            .replace("{name}", "n");
        for (method, op) in item.as_object().expect("path item") {
            operations += 1;
            for code in ["401", "503"] {
                assert!(
                    op["responses"].get(code).is_some(),
                    "{method} {path} does not document {code}"
                );
            }
            let (status, body) = http(&api, &method.to_uppercase(), &concrete, None, None);
            assert_eq!(status, 401, "{method} {path} without a token: {body}");
            let error: serde_json::Value = serde_json::from_str(&body).expect("error JSON");
            assert!(error["error"]["message"].is_string(), "{body}");
        }
    }
    // The API of the README and docs: jobs, runs, output, fleet, alarms, users, tokens, audit.
    assert!(operations >= 27, "{operations} operations");
    // `cronvisor openapi` prints the same document, without a running system.
    let printed = std::process::Command::new(crate::harness::BIN)
        .arg("openapi")
        .output()
        .expect("cronvisor openapi");
    assert!(printed.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&printed.stdout).expect("JSON");
    assert_eq!(printed, doc, "the printed document is the served one");
    // The role and state names are the wire's (`admin`, not `Admin`: found by schemathesis).
    let access = &doc["components"]["schemas"]["Access"]["enum"];
    assert_eq!(access, &serde_json::json!(["viewer", "operator", "admin"]));
}

/// schemathesis, a bounded number of examples per operation, with the install's token: no
/// 5xx, and every answer's status, content type and body as the document says.
#[test]
fn the_running_api_answers_as_its_document_says_under_fuzzing() {
    let args = [
        "scripts/check-openapi.py",
        "--bin",
        crate::harness::BIN,
        "--examples",
        "25",
    ];
    crate::harness::run_tool(
        "python3",
        &args.map(std::ffi::OsStr::new),
        "scripts/install-deps.sh installs schemathesis",
        "all OpenAPI checks passed",
    );
}
