//! The Calendars page (the shipped calendars and the store's, with the jobs that use them) and
//! one calendar's page: a year of it, month by month, its days marked.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use chrono::{Datelike, NaiveDate};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{encode, href, job_href, Section};
use super::pages::{render, trouble, PageResult};
use super::Console;
use crate::model::calendar::CalendarSpec;

fn covers(spec: &CalendarSpec) -> String {
    match spec.covers {
        Some((a, b)) => format!("{a} to {b}"),
        None => "every year".into(),
    }
}

/// The jobs the visitor may see that use `name`.
async fn users(c: &Console, v: &super::Visitor, name: &str) -> Vec<String> {
    crate::monitor::web::calendars::used_by(&c.api, &v.caller, name)
        .await
        .unwrap_or_default()
}

pub async fn calendars(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> PageResult {
    let v = c.visitor(&headers, peer, "/calendars").await?;
    let mine = c
        .api
        .store
        .calendars()
        .await
        .map_err(|e| trouble(&v, Some(Section::Calendars), e.into()))?;
    let all: Vec<(CalendarSpec, bool)> = crate::schedule::days::shipped_specs()
        .into_iter()
        .map(|s| (s, true))
        .chain(mine.into_iter().map(|s| (s, false)))
        .collect();
    let mut rows = Vec::new();
    for (spec, shipped) in all {
        let used = users(&c, &v, &spec.name).await;
        rows.push((spec, shipped, used));
    }
    let body = html! {
        p.muted { "A job uses calendars with its Calendars and Calendar mode fields: skip their days, only their days, or move an instant on a day off to the next day that is not. Shipped calendars come with cronvisor; add yours with " code { "cronvisor calendar add" } "." }
        table.calendars {
            thead { tr { th { "Name" } th { "Kind" } th { "Covers" } th { "Source" } th { "Used by" } } }
            tbody {
                @for (spec, shipped, used) in &rows {
                    tr data-calendar=(spec.name) {
                        td { a href=(format!("/calendars/{}", encode(&spec.name))) { (spec.name) } }
                        td { (spec.kind.as_str()) }
                        td { (covers(spec)) }
                        td { @if *shipped { "shipped: " } (spec.source.clone().unwrap_or_else(|| "yours".into())) }
                        td { @for (i, j) in used.iter().enumerate() { @if i > 0 { ", " } a href=(job_href(j)) { (j) } } }
                    }
                }
            }
        }
    };
    Ok(render("Calendars", Some(Section::Calendars), &v, body))
}

#[derive(Debug, Default, Deserialize)]
pub struct YearQuery {
    #[serde(default)]
    year: Option<i32>,
}

pub async fn calendar(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<YearQuery>,
) -> PageResult {
    let v = c
        .visitor(&headers, peer, &format!("/calendars/{}", encode(&name)))
        .await?;
    let shipped = crate::schedule::days::shipped_specs()
        .into_iter()
        .find(|s| s.name.eq_ignore_ascii_case(&name));
    let spec = match shipped.clone() {
        Some(s) => s,
        None => c
            .api
            .store
            .calendar(&name)
            .await
            .map_err(|e| trouble(&v, Some(Section::Calendars), e.into()))?
            .ok_or_else(|| {
                trouble(
                    &v,
                    Some(Section::Calendars),
                    crate::http::ApiError::not_found(format!("no calendar `{name}`")),
                )
            })?,
    };
    let year = q
        .year
        .unwrap_or_else(|| chrono::Utc::now().year())
        .clamp(1900, 9999);
    let cal = spec
        .compile()
        .map_err(|e| trouble(&v, Some(Section::Calendars), e.into()))?;
    let days = cal.days_of(year);
    let used = users(&c, &v, &spec.name).await;
    let link = |y: i32| {
        href(
            &format!("/calendars/{}", encode(&spec.name)),
            &[("year", &y.to_string())],
        )
    };
    let body = html! {
        dl.facts {
            dt { "Kind" } dd { (spec.kind.as_str()) @if spec.kind == crate::model::CalendarKind::Workdays { " — Monday to Friday, minus its days, plus its make-up workdays" } }
            dt { "About" } dd { (spec.description.clone().unwrap_or_else(|| "—".into())) }
            dt { "Source" } dd { @if shipped.is_some() { "shipped: " } (spec.source.clone().unwrap_or_else(|| "yours".into())) }
            dt { "Covers" } dd { (covers(&spec)) }
            dt { "Used by" } dd { @if used.is_empty() { "—" } @for (i, j) in used.iter().enumerate() { @if i > 0 { ", " } a href=(job_href(j)) { (j) } } }
        }
        nav.pager aria-label="Years" {
            a href=(link(year - 1)) rel="prev" { (year - 1) }
            strong { " " (year) " " }
            a href=(link(year + 1)) rel="next" { (year + 1) }
        }
        @match days {
            Err(e) => p.error #undecided { (e.to_string()) },
            Ok(days) => (year_grid(year, &days)),
        }
    };
    Ok(render(
        &format!("Calendar {}", spec.name),
        Some(Section::Calendars),
        &v,
        body,
    ))
}

/// Twelve months, each a list of its days; the calendar's days marked (`on`), weekends shaded.
fn year_grid(year: i32, on: &[NaiveDate]) -> Markup {
    let on: std::collections::HashSet<&NaiveDate> = on.iter().collect();
    html! {
        p #count { (on.len()) " days of " (year) " are on it." }
        div.months {
            @for m in 1..=12u32 {
                @if let Some(first) = NaiveDate::from_ymd_opt(year, m, 1) {
                    section.month {
                        h3 { (first.format("%B")) }
                        ol.days {
                            @for d in first.iter_days().take_while(|d| d.month() == m) {
                                @let weekend = d.weekday().number_from_monday() > 5;
                                @let start = if d.day() == 1 { format!(" start-{}", d.weekday().number_from_monday()) } else { String::new() };
                                li class=(format!("{}{}{start}", if on.contains(&d) { "on" } else { "off" }, if weekend { " weekend" } else { "" }))
                                    data-date=(d.to_string()) title=(d.format("%a %Y-%m-%d").to_string()) { (d.day()) }
                            }
                        }
                    }
                }
            }
        }
    }
}
