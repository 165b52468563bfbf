//! The frame every page shares (head, navigation, log out) and the small pieces pages repeat:
//! times, states, durations. Everything goes through maud, which escapes every value it
//! interpolates: a job's name or a run's output is text on the page, never markup.

use maud::{html, Markup, DOCTYPE};

use crate::model::{Millis, RunState};

/// The console's sections, for the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Jobs,
    Flows,
    Calendars,
    Runs,
    Fleet,
    Alarms,
    Audit,
    Users,
}

/// The sections, and whether only admins see them.
const SECTIONS: [(Section, &str, &str, bool); 9] = [
    (Section::Overview, "/", "Overview", false),
    (Section::Jobs, "/jobs", "Jobs", false),
    (Section::Flows, "/flows", "Flows", false),
    (Section::Calendars, "/calendars", "Calendars", false),
    (Section::Runs, "/runs", "Runs", false),
    (Section::Fleet, "/fleet", "Fleet", false),
    (Section::Alarms, "/alarms", "Alarms", false),
    (Section::Audit, "/audit", "Audit", true),
    (Section::Users, "/users", "Users", true),
];

/// A whole page for `visitor` (none: the login page). Its CSRF token goes in a meta tag for
/// the script's state-changing requests.
pub fn page(
    title: &str,
    section: Option<Section>,
    visitor: Option<&super::Visitor>,
    body: Markup,
) -> Markup {
    let csrf = visitor.map(|v| v.csrf.as_str()).unwrap_or("");
    let admin = visitor.is_some_and(|v| v.caller.principal.is_admin());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(csrf);
                title { (title) " · cronvisor" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "cronvisor" }
                    nav aria-label="Sections" {
                        @for (s, href, name, admin_only) in SECTIONS {
                            @if visitor.is_some() && (admin || !admin_only) {
                                @if Some(s) == section {
                                    a href=(href) aria-current="page" { (name) }
                                } @else {
                                    a href=(href) { (name) }
                                }
                            }
                        }
                    }
                    @if let Some(v) = visitor {
                        span.who { (v.caller.principal.name) " · " (v.caller.principal.access.as_str()) }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    div #notice role="alert" hidden {}
                    (body)
                }
            }
        }
    }
}

/// A time, in UTC as text (the script shows it in the browser's zone, UTC on hover).
pub fn time(ms: Option<Millis>) -> Markup {
    let Some(ms) = ms else {
        return html! { span.muted { "—" } };
    };
    let utc = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    html! { time datetime=(utc) data-ms=(ms) title=(format!("{utc} (UTC)")) { (utc) } }
}

/// A run state as a coloured badge (colour and text: never colour alone).
pub fn state(s: RunState) -> Markup {
    let tone = match s {
        RunState::Succeeded => "ok",
        RunState::Failed | RunState::TimedOut | RunState::Lost | RunState::Missed => "bad",
        RunState::Killed | RunState::Skipped => "warn",
        RunState::Scheduled | RunState::Dispatched | RunState::Running => "live",
    };
    html! { span class=(format!("state {tone}")) data-state=(s.as_str()) { (s.as_str()) } }
}

pub use crate::model::durations::span;

/// How long a run took, or has been going.
pub fn run_duration(started: Option<Millis>, ended: Option<Millis>) -> Markup {
    match (started, ended) {
        (Some(s), Some(e)) => html! { (span(e - s)) },
        (Some(s), None) => {
            html! { span.muted { (span(crate::model::now_millis() - s)) " so far" } }
        }
        _ => html! { span.muted { "—" } },
    }
}

/// A link that keeps a query string: `href` with `pairs` whose value is not empty.
pub fn href(path: &str, pairs: &[(&str, &str)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// Percent-encodes a URL component.
pub fn encode(s: &str) -> String {
    crate::http::percent_encode(s)
}

/// A job's page.
pub fn job_href(name: &str) -> String {
    format!("/jobs/{}", encode(name))
}

/// A masked secret-bearing value: a URL keeps its scheme, host and path (its query and
/// credentials may hold keys); anything else as is.
pub fn masked(value: &str) -> String {
    crate::model::masked_url(value)
}

/// An empty-state line.
pub fn none(text: &str) -> Markup {
    html! { p.muted { (text) } }
}
