//! `window add/list/delete`: clients of `/api/v1/windows`.

use std::process::ExitCode;

use hyper::Method;
use serde_json::{json, Value};

use super::jobs::api;
use crate::api_client::segment;
use crate::cli::{Cli, WindowCommand};
use crate::print;

/// When a window is, in words.
fn when(w: &Value) -> String {
    let t = |k: &str| print::time(w[k].as_i64());
    match (w["every"].as_str(), w["for_secs"].as_i64()) {
        (Some(rule), Some(secs)) => {
            let mut s = format!(
                "every `{rule}` for {} ({})",
                cronvisor_roles::model::durations::secs_text(secs),
                w["timezone"].as_str().unwrap_or("")
            );
            if w["from"].is_i64() {
                s.push_str(&format!(", from {}", t("from")));
            }
            if w["to"].is_i64() {
                s.push_str(&format!(", until {}", t("to")));
            }
            s
        }
        _ => format!("{} to {}", t("from"), t("to")),
    }
}

fn scope(w: &Value) -> String {
    match (w["job"].as_str(), w["group"].as_str()) {
        (Some(j), _) => format!("job {j}"),
        (None, Some(g)) => format!("group {g}"),
        _ => "every job".into(),
    }
}

pub async fn window(cli: &Cli, cmd: &WindowCommand) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    match cmd {
        WindowCommand::Add(a) => {
            let body = json!({"name": a.name, "from": a.from, "to": a.to, "group": a.group,
                "job": a.job, "every": a.every, "for": a.lasts, "timezone": a.timezone});
            let v: Value = api
                .call(Method::POST, "/api/v1/windows", Some(body))
                .await?;
            if a.out.json {
                print::json(&v)?;
            } else {
                let w = &v["window"];
                println!(
                    "window `{}` added: {}, {}{}",
                    a.name,
                    scope(w),
                    when(w),
                    match v["active"].as_array() {
                        Some(span) =>
                            format!(" (going now, until {})", print::time(span[1].as_i64())),
                        None => String::new(),
                    }
                );
            }
        }
        WindowCommand::List(out) => {
            let list: Vec<Value> = api.call(Method::GET, "/api/v1/windows", None).await?;
            if out.json {
                print::json(&list)?;
            } else if list.is_empty() {
                println!(
                    "no maintenance windows (add one: cronvisor window add NAME --from T --to T)"
                );
            } else {
                print::table(
                    &[
                        ("NAME", &|v: &Value| {
                            v["window"]["name"].as_str().unwrap_or("").to_string()
                        }),
                        ("SCOPE", &|v: &Value| scope(&v["window"])),
                        ("WHEN", &|v: &Value| when(&v["window"])),
                        ("NOW", &|v: &Value| match v["active"].as_array() {
                            Some(span) => format!("going, until {}", print::time(span[1].as_i64())),
                            None => "-".into(),
                        }),
                    ],
                    &list,
                );
            }
        }
        WindowCommand::Delete(a) => {
            api.call_raw(
                Method::DELETE,
                &format!("/api/v1/windows/{}", segment(&a.name)),
                None,
            )
            .await?;
            println!("window `{}` deleted", a.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
