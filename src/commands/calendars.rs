//! `calendar add/list/show/edit/delete`: clients of `/api/v1/calendars`. A file is read and
//! checked here, so that its errors name the file; the API checks again.

use std::process::ExitCode;

use anyhow::Context;
use cronvisor_roles::model::calendar::CalendarSpec;
use cronvisor_roles::model::CalendarKind;
use hyper::Method;
use serde_json::Value;

use super::jobs::api;
use crate::api_client::segment;
use crate::cli::{CalendarCommand, CalendarWriteArgs, Cli};
use crate::print;

/// The calendar the flags or the file describe.
fn spec_of(a: &CalendarWriteArgs) -> anyhow::Result<CalendarSpec> {
    let mut spec = match &a.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            CalendarSpec::from_file(&text, Some(&a.name))
                .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.field, e.message))?
        }
        None => CalendarSpec {
            name: a.name.clone(),
            kind: CalendarKind::Days,
            description: None,
            source: None,
            covers: None,
            days: a.dates.clone(),
            workdays: Vec::new(),
        },
    };
    if let Some(k) = a.kind {
        spec.kind = k;
    }
    if !a.workdays.is_empty() {
        spec.workdays = a.workdays.clone();
    }
    if a.description.is_some() {
        spec.description = a.description.clone();
    }
    if spec.days.is_empty() && spec.workdays.is_empty() && spec.kind == CalendarKind::Days {
        anyhow::bail!("give its days: --dates DAY,... or --file FILE");
    }
    Ok(spec)
}

fn covers(v: &Value) -> String {
    match v["calendar"]["covers"]
        .as_array()
        .map(|a| (a[0].as_i64(), a[1].as_i64()))
    {
        Some((Some(a), Some(b))) => format!("{a} to {b}"),
        _ => "every year".into(),
    }
}

fn used_by(v: &Value) -> String {
    let jobs: Vec<&str> = v["used_by"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if jobs.is_empty() {
        "-".into()
    } else {
        jobs.join(", ")
    }
}

pub async fn calendar(cli: &Cli, cmd: &CalendarCommand) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    match cmd {
        CalendarCommand::Add(a) | CalendarCommand::Edit(a) => {
            let spec = spec_of(a)?;
            let adding = matches!(cmd, CalendarCommand::Add(_));
            let (method, path) = match adding {
                true => (Method::POST, "/api/v1/calendars".to_string()),
                false => (
                    Method::PUT,
                    format!("/api/v1/calendars/{}", segment(&a.name)),
                ),
            };
            let v: Value = api
                .call(method, &path, Some(serde_json::to_value(&spec)?))
                .await?;
            if a.out.json {
                print::json(&v)?;
            } else {
                let entries = match spec.days.len() {
                    1 => "1 entry".to_string(),
                    n => format!("{n} entries"),
                };
                let made_up = match (spec.kind, spec.workdays.len()) {
                    (CalendarKind::Days, _) => String::new(),
                    (_, n) => format!(" and {n} make-up workdays"),
                };
                println!(
                    "calendar `{}` {}: a {} calendar of {entries}{made_up}",
                    spec.name,
                    if adding { "added" } else { "changed" },
                    spec.kind.as_str(),
                );
            }
        }
        CalendarCommand::List(out) => {
            let list: Vec<Value> = api.call(Method::GET, "/api/v1/calendars", None).await?;
            if out.json {
                print::json(&list)?;
            } else {
                print::table(
                    &[
                        ("NAME", &|v: &Value| {
                            v["calendar"]["name"].as_str().unwrap_or("").to_string()
                        }),
                        ("KIND", &|v: &Value| {
                            v["calendar"]["kind"].as_str().unwrap_or("").to_string()
                        }),
                        ("COVERS", &covers),
                        ("SOURCE", &|v: &Value| match v["shipped"].as_bool() {
                            Some(true) => {
                                format!(
                                    "shipped: {}",
                                    v["calendar"]["source"].as_str().unwrap_or("")
                                )
                            }
                            _ => v["calendar"]["source"]
                                .as_str()
                                .unwrap_or("yours")
                                .to_string(),
                        }),
                        ("USED BY", &used_by),
                    ],
                    &list,
                );
            }
        }
        CalendarCommand::Show(a) => {
            let mut path = format!("/api/v1/calendars/{}", segment(&a.name));
            if let Some(y) = a.year {
                path.push_str(&format!("?year={y}"));
            }
            let v: Value = api.call(Method::GET, &path, None).await?;
            if a.out.json {
                print::json(&v)?;
            } else {
                show(&v, a.year);
            }
        }
        CalendarCommand::Delete(a) => {
            api.call_raw(
                Method::DELETE,
                &format!("/api/v1/calendars/{}", segment(&a.name)),
                None,
            )
            .await?;
            println!("calendar `{}` deleted", a.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(v: &Value, year: Option<i32>) {
    let c = &v["calendar"];
    let kind = c["kind"].as_str().unwrap_or("days");
    let rows = [
        (
            "calendar",
            match v["shipped"].as_bool() {
                Some(true) => format!("{} (shipped)", v["calendar"]["name"].as_str().unwrap_or("")),
                _ => v["calendar"]["name"].as_str().unwrap_or("").to_string(),
            },
        ),
        (
            "kind",
            match kind {
                "workdays" => {
                    "workdays: Monday to Friday, minus its days, plus its make-up workdays".into()
                }
                _ => "days: the days listed".to_string(),
            },
        ),
        (
            "about",
            v["calendar"]["description"]
                .as_str()
                .unwrap_or("-")
                .to_string(),
        ),
        (
            "source",
            v["calendar"]["source"].as_str().unwrap_or("-").to_string(),
        ),
        ("covers", covers(v)),
        ("used by", used_by(v)),
    ];
    for (k, val) in rows {
        println!("{:<10}{val}", format!("{k}:"));
    }
    let (Some(year), Some(days)) = (year, v["days_of_year"].as_array()) else {
        return;
    };
    let days: Vec<chrono::NaiveDate> = days
        .iter()
        .filter_map(|d| d.as_str()?.parse().ok())
        .collect();
    use chrono::Datelike;
    let weekend = |d: &chrono::NaiveDate| d.weekday().number_from_monday() > 5;
    if kind == "workdays" {
        println!("{year}: {} workdays", days.len());
        let set: std::collections::HashSet<_> = days.iter().collect();
        let off: Vec<String> = chrono::NaiveDate::from_ymd_opt(year, 1, 1)
            .into_iter()
            .flat_map(|d| d.iter_days().take_while(move |x| x.year() == year))
            .filter(|d| !weekend(d) && !set.contains(d))
            .map(|d| d.format("%m-%d %a").to_string())
            .collect();
        let made_up: Vec<String> = days
            .iter()
            .filter(|d| weekend(d))
            .map(|d| d.format("%m-%d %a").to_string())
            .collect();
        println!("days off, Monday to Friday: {}", off.join(", "));
        println!("make-up workdays: {}", made_up.join(", "));
    } else {
        println!("{year}: {} days", days.len());
        for d in &days {
            println!("  {}", d.format("%Y-%m-%d %a"));
        }
    }
}
