//! Backfills in the console: the form that asks for one (`/jobs/{job}/backfill`, sent as
//! `POST /api/v1/jobs/{job}/backfill` by the page's script, with a preview from its dry run),
//! and the block of a job's page that shows each backfill's progress, with Cancel.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};

use super::layout::{encode, job_href, page, time, Section};
use super::{Bounce, Console};
use crate::model::backfill::Backfill;
use crate::monitor::web::api;

/// `/jobs/{job}/backfill`.
pub async fn backfill_form(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, Bounce> {
    let v = c
        .visitor(&headers, peer, &format!("{}/backfill", job_href(&key)))
        .await?;
    let job = api::find(&c.api, &v.caller, &key)
        .await
        .map_err(|e| e.into_response())?;
    let action = format!("/api/v1/jobs/{}/backfill", encode(&job.name));
    let field = |label: &str, name: &str, placeholder: &str, hint: &str| {
        let id = format!("bf-{name}");
        html! {
            div.field {
                label for=(id) { (label) }
                input #(id) name=(name) placeholder=(placeholder) aria-describedby=(format!("{id}-hint {id}-error"));
                small.hint #(format!("{id}-hint")) { (hint) }
                small.error #(format!("{id}-error")) data-error-for=(id) {}
            }
        }
    };
    let body = html! {
        p { "Runs " a href=(job_href(&job.name)) { (job.name) } " once for each past instant of its rule "
            code { (job.schedule) } " (" (job.timezone) ") in the range, oldest first; what runs after it follows each instant." }
        form.job #backfill-form data-action=(action) data-then=(format!("{}#backfills", job_href(&job.name))) novalidate {
            fieldset {
                legend { "Range" }
                (field("From", "from", "2026-11-01", "A date (its start), a local time 2026-11-01 02:00, or RFC 3339."))
                (field("To", "to", "2026-11-30", "Inclusive: a date means its end. In the past."))
                (field("At a time", "parallel", "1", "1 to 64 instants at once (a job whose overlap is not allow: 1)."))
                div.field {
                    label { input #bf-all name="all" type="checkbox"; " Run again the instants that already succeeded" }
                    small.error data-error-for="bf-all" {}
                }
            }
            p #bf-plan role="status" hidden {}
            div.bar {
                button #bf-preview type="button" { "Preview" }
                button.primary type="submit" { "Start backfill" }
                a.button href=(job_href(&job.name)) { "Cancel" }
            }
        }
    };
    Ok(Html(
        page(
            &format!("Backfill {}", job.name),
            Some(Section::Jobs),
            Some(&v),
            body,
        )
        .into_string(),
    )
    .into_response())
}

/// A job's backfills with their progress; Cancel on the running ones for those who write.
pub fn backfills_block(list: &[Backfill], writes: bool) -> Markup {
    html! {
        h2 #backfills { "Backfills" }
        @if list.is_empty() {
            p.muted { "None yet." }
        } @else {
            table.backfills {
                thead { tr {
                    th { "ID" } th { "State" } th { "From" } th { "To" } th { "Progress" } th { "By" }
                    @if writes { th { "Actions" } }
                } }
                tbody {
                    @for b in list {
                        tr data-backfill=(b.id) {
                            td { (b.id) }
                            td { span class=(format!("state {}", tone(&b.state))) { (b.state) }
                                @if let Some(r) = &b.reason { " " span.muted { (r) } } }
                            td { (time(Some(b.from))) }
                            td { (time(Some(b.to))) }
                            td {
                                progress value=(b.settled()) max=(b.total.max(1)) {}
                                " " (progress_text(b))
                            }
                            td { (b.created_by.clone().unwrap_or_default()) }
                            @if writes { td.actions {
                                @if b.state == "running" {
                                    button type="button" data-post=(format!("/api/v1/backfills/{}/cancel", b.id))
                                        data-confirm=(format!("Cancel backfill {}? Runs going end as they end.", b.id)) { "Cancel" }
                                }
                            } }
                        }
                    }
                }
            }
        }
    }
}

fn tone(state: &str) -> &'static str {
    match state {
        "done" => "ok",
        "cancelled" => "warn",
        _ => "live",
    }
}

fn progress_text(b: &Backfill) -> String {
    let mut parts = vec![format!("{} of {}", b.settled(), b.total)];
    for (n, what) in [
        (b.succeeded, "succeeded"),
        (b.failed, "failed"),
        (b.skipped, "left out"),
        (b.going, "going"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(", ")
}
