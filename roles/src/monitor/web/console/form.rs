//! The job form, for add and edit. It has every field of the API's job body (`JobFields`), each
//! named as there, so the API's `{"error": {"field", ...}}` lands beside its field; the page's
//! script sends it as JSON to `POST /api/v1/jobs` or `PATCH /api/v1/jobs/{job}` — the same
//! validation as the CLI, no second copy — and previews the rule's next instants as it is typed.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};

use super::layout::{encode, job_href, page, Section};
use super::{Bounce, Console};
use crate::model::{AlarmKind, CalendarMode, Channel, Fanout, Job, Misfire, Overlap};
use crate::monitor::web::api;

/// One text field: label, name (as in the API), value, hint.
fn text(label: &str, name: &str, value: &str, hint: &str) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            input #(name) name=(name) data-field=(name) value=(value) aria-describedby=(format!("{name}-hint {name}-error"));
            small.hint #(format!("{name}-hint")) { (hint) }
            small.error #(format!("{name}-error")) data-error-for=(name) {}
        }
    }
}

fn number(label: &str, name: &str, value: Option<i64>, hint: &str) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            input #(name) name=(name) type="number" data-field=(name) data-kind="int"
                value=(value.map(|v| v.to_string()).unwrap_or_default()) aria-describedby=(format!("{name}-hint {name}-error"));
            small.hint #(format!("{name}-hint")) { (hint) }
            small.error #(format!("{name}-error")) data-error-for=(name) {}
        }
    }
}

fn area(label: &str, name: &str, value: &str, hint: &str, kind: &str) -> Markup {
    html! {
        div.field.wide {
            label for=(name) { (label) }
            textarea #(name) name=(name) data-field=(name) data-kind=(kind) rows="3" aria-describedby=(format!("{name}-hint {name}-error")) { (value) }
            small.hint #(format!("{name}-hint")) { (hint) }
            small.error #(format!("{name}-error")) data-error-for=(name) {}
        }
    }
}

fn choice(label: &str, name: &str, options: &[&str], current: &str) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            select #(name) name=(name) data-field=(name) {
                @for o in options { option value=(o) selected[*o == current] { (o) } }
            }
            small.error data-error-for=(name) {}
        }
    }
}

fn checks(legend: &str, name: &str, options: &[&str], on: &[&str]) -> Markup {
    html! {
        fieldset.field.wide data-field=(name) data-kind="list" {
            legend { (legend) }
            @for o in options {
                label.check { input type="checkbox" value=(o) checked[on.contains(o)]; " " (o) }
            }
            small.error data-error-for=(name) {}
        }
    }
}

/// A job's HTTP headers and environment as the form shows them. Secret values are never put on
/// the page: `***` stands for them, and sent back keeps them.
fn masked_secrets(j: Option<&Job>) -> (String, String) {
    let headers = j
        .map(|j| {
            j.http_headers
                .iter()
                .map(|(k, v)| {
                    let shown = if crate::model::secret_header(k) {
                        crate::model::MASK
                    } else {
                        v.as_str()
                    };
                    format!("{k}: {shown}")
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let env = j
        .map(|j| {
            j.env
                .keys()
                .map(|k| format!("{k}={}", crate::model::MASK))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    (headers, env)
}

/// The declared parameters, one `NAME=DEFAULT` (or `NAME`) per line, secret defaults `***`.
fn params_text(job: Option<&Job>) -> String {
    job.map(|j| {
        crate::model::params::masked(&j.params)
            .iter()
            .map(|p| match &p.default {
                Some(d) => format!("{}={d}", p.name),
                None => p.name.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// `after`: the jobs it runs after, `name[:failure|end]`, comma-separated; the other jobs the
/// visitor may see are offered as they type.
fn after(value: &str, others: &[String]) -> Markup {
    html! {
        div.field {
            label for="after" { "Runs after" }
            input #after name="after" data-field="after" data-kind="after" value=(value) list="job-names"
                aria-describedby="after-hint after-error";
            datalist #job-names { @for n in others { option value=(n) {} } }
            small.hint #after-hint { "Jobs, comma-separated; add :failure or :end to run on their failure or whatever their end (default: their success). Then no rule." }
            small.error #after-error data-error-for="after" {}
        }
    }
}

fn form(job: Option<&Job>, default_tz: &str, others: &[String]) -> Markup {
    let j = job.cloned();
    let get = |f: fn(&Job) -> String| j.as_ref().map(f).unwrap_or_default();
    let (action, method) = match job {
        Some(j) => (format!("/api/v1/jobs/{}", encode(&j.name)), "PATCH"),
        None => ("/api/v1/jobs".to_string(), "POST"),
    };
    let names = |all: &[&'static str]| all.to_vec();
    let overlap: Vec<&str> = names(&Overlap::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>());
    let fanout: Vec<&str> = Fanout::ALL.iter().map(|o| o.as_str()).collect();
    let misfire: Vec<&str> = Misfire::ALL.iter().map(|o| o.as_str()).collect();
    let kinds: Vec<&str> = AlarmKind::ALL.iter().map(|o| o.as_str()).collect();
    let channels: Vec<&str> = Channel::ALL.iter().map(|o| o.as_str()).collect();
    let alarm_on: Vec<&str> = match &j {
        Some(j) => j.alarm_on.iter().map(|k| k.as_str()).collect(),
        None => crate::model::fields::DEFAULT_ALARM_ON
            .iter()
            .map(|k| k.as_str())
            .collect(),
    };
    let alarm_channels: Vec<&str> = j
        .as_ref()
        .map(|j| j.alarm_channels.iter().map(|c| c.as_str()).collect())
        .unwrap_or_default();
    let (headers, env) = masked_secrets(j.as_ref());
    let tz = j
        .as_ref()
        .map(|j| j.timezone.clone())
        .unwrap_or_else(|| default_tz.to_string());
    html! {
        form.job #job-form data-action=(action) data-method=(method) novalidate {
            fieldset {
                legend { "What and when" }
                (text("Name", "name", &get(|j| j.name.clone()), "Unique, whatever its case."))
                (text("Description", "description", &get(|j| j.description.clone().unwrap_or_default()), "What it is for, in words."))
                (text("Run as", "run_as", &get(|j| j.run_as.clone().unwrap_or_default()), "A user of the executors' allowed_users; empty: their run_as."))
                (text("Rule", "schedule", &get(|j| j.schedule.clone()), "5 or 6 fields (sec min hour dom month dow), @daily, @every 90s. Empty for a job that runs after others."))
                (after(&get(|j| crate::model::flows::edges_text(&j.after)), others))
                (text("Requires", "requires", &get(|j| j.requires.clone().unwrap_or_default()), "A job that must have succeeded within the window before each instant, or the instant is skipped."))
                (number("Within (seconds)", "within_secs", j.as_ref().and_then(|j| j.within_secs), "With Requires; default a day."))
                (text("Time zone", "timezone", &tz, "IANA name, e.g. Europe/Paris."))
                (text("Calendars", "calendars", &get(|j| j.calendars.join(", ")), "Comma-separated, e.g. cn-workdays (see Calendars); empty: none."))
                (choice("Calendar mode", "calendar_mode", &CalendarMode::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(), j.as_ref().map(|j| j.calendar_mode.as_str()).unwrap_or("skip")))
                div.field.wide #preview aria-live="polite" { strong { "Next instants" } span #preview-words {} ol #preview-list {} small.error #preview-error {} }
                (area("Shell command", "command", &get(|j| j.command.clone().unwrap_or_default()), "Run by /bin/sh -c on the executor. Or give an HTTP URL instead.", "text"))
                (area("Environment", "env", &env, "One NAME=VALUE per line; values are shown as ***, and *** keeps the value.", "env"))
                (area("Parameters", "params", &params_text(j.as_ref()), "One NAME=DEFAULT (or NAME: required) per line; a run sees CRONVISOR_PARAM_NAME, and Run now asks for them.", "lines"))
                (area("Parameter choices", "param_choices", &get(|j| j.params.iter().filter(|p| !p.choices.is_empty()).map(|p| format!("{}={}", p.name, p.choices.join("|"))).collect::<Vec<_>>().join("\n")), "One NAME=a|b|c per line: the only values it may take.", "lines"))
                (text("Secret parameters", "secret_params", &get(|j| j.params.iter().filter(|p| p.secret).map(|p| p.name.clone()).collect::<Vec<_>>().join(", ")), "Comma-separated: their values show as ***."))
            }
            fieldset {
                legend { "HTTP job (instead of a command)" }
                (text("URL", "http_url", &get(|j| j.http_url.clone().unwrap_or_default()), "http:// or https://"))
                (text("Method", "http_method", &get(|j| j.http_method.clone()), "GET, POST, ..."))
                (area("Headers", "http_headers", &headers, "One \"Name: value\" per line; secret values show as ***, and *** keeps them.", "headers"))
                (area("Body", "http_body", &get(|j| j.http_body.clone().unwrap_or_default()), "", "text"))
                (number("Expected status", "http_expect_status", j.as_ref().map(|j| j.http_expect_status), "0: any 2xx."))
            }
            fieldset {
                legend { "Where and how" }
                (text("Run at", "run_at", &get(|j| j.run_at.clone().unwrap_or_default()), "A group or a host; empty: any executor."))
                (choice("Fan-out", "fanout", &fanout, j.as_ref().map(|j| j.fanout.as_str()).unwrap_or("one")))
                (choice("Overlap", "overlap", &overlap, j.as_ref().map(|j| j.overlap.as_str()).unwrap_or(Overlap::default().as_str())))
                (number("Timeout (seconds)", "timeout_secs", j.as_ref().and_then(|j| j.timeout_secs), "Empty or 0: none."))
                (number("Late after (seconds)", "late_after_secs", j.as_ref().and_then(|j| j.late_after_secs), "SLA: alarm `late` when a run has not started this long after its instant. Empty or 0: none."))
                (text("Deadline", "deadline", &get(|j| j.deadline.map(|d| d.text()).unwrap_or_default()), "SLA: alarm `overdue` when an instant (a flow's root: its flow) has not ended successfully this long after it (90m) or by this time of day (09:30). Empty: none."))
                (text("Duration alarm", "duration_alarm", &get(|j| j.duration_alarm.text()), "Alarms from the usual duration learned from its last successes: both (slow and short), slow, short or off; :K sets how far from the usual band (default 3, as in slow:5)."))
                (number("Retries", "retries", j.as_ref().map(|j| j.retries), "Extra attempts after a failure."))
                (number("Retry backoff (seconds)", "retry_backoff_secs", j.as_ref().map(|j| j.retry_backoff_secs), "Doubles each attempt."))
                (choice("Misfire", "misfire", &misfire, j.as_ref().map(|j| j.misfire.as_str()).unwrap_or(Misfire::default().as_str())))
                (number("Misfire window (seconds)", "misfire_window_secs", j.as_ref().map(|j| j.misfire_window_secs), "How late a catch-up may be."))
            }
            fieldset {
                legend { "Alarms" }
                (checks("Alarm on", "alarm_on", &kinds, &alarm_on))
                (checks("Channels (none checked: every configured one)", "alarm_channels", &channels, &alarm_channels))
                (text("E-mail", "admin_email", &get(|j| j.admin_email.clone().unwrap_or_default()), "Comma-separated addresses."))
                (text("Mobile", "admin_mobile", &get(|j| j.admin_mobile.clone().unwrap_or_default()), "Comma-separated numbers."))
            }
            div.bar {
                button.primary type="submit" { @if job.is_some() { "Save" } @else { "Add job" } }
                a.button href=(job.map(|j| job_href(&j.name)).unwrap_or_else(|| "/jobs".into())) { "Cancel" }
            }
        }
    }
}

pub async fn new_job(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Bounce> {
    let v = c.visitor(&headers, peer, "/jobs/new").await?;
    let others = job_names(&c, &v, None).await;
    let body = form(None, &c.api.default_tz, &others);
    Ok(Html(page("New job", Some(Section::Jobs), Some(&v), body).into_string()).into_response())
}

pub async fn edit_job(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, Bounce> {
    let v = c
        .visitor(&headers, peer, &format!("{}/edit", job_href(&key)))
        .await?;
    let job = api::find(&c.api, &v.caller, &key)
        .await
        .map_err(|e| e.into_response())?;
    let others = job_names(&c, &v, Some(&job.name)).await;
    let body = form(Some(&job), &c.api.default_tz, &others);
    Ok(Html(
        page(
            &format!("Edit {}", job.name),
            Some(Section::Jobs),
            Some(&v),
            body,
        )
        .into_string(),
    )
    .into_response())
}

/// The names of the jobs `v` may see, but `except`, for the `after` field's suggestions.
async fn job_names(c: &Console, v: &super::Visitor, except: Option<&str>) -> Vec<String> {
    c.api
        .store
        .jobs()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|j| v.caller.principal.sees(&j.group) && Some(j.name.as_str()) != except)
        .map(|j| j.name)
        .collect()
}

/// `/jobs/{job}/run`: the values of a job's parameters for one run, each field its default
/// (a list for one with choices), sent as `POST /api/v1/jobs/{job}/run` by the page's script.
pub async fn run_form(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, Bounce> {
    let v = c
        .visitor(&headers, peer, &format!("{}/run", job_href(&key)))
        .await?;
    let job = api::find(&c.api, &v.caller, &key)
        .await
        .map_err(|e| e.into_response())?;
    let params = crate::model::params::masked(&job.params);
    let action = format!("/api/v1/jobs/{}/run", encode(&job.name));
    let body = html! {
        form.job #run-form data-action=(action) novalidate {
            fieldset {
                legend { "Parameters" }
                @for p in &params {
                    div.field {
                        label for=(format!("param-{}", p.name)) { (p.name)
                            @if p.default.is_none() { " (required)" } }
                        @if p.choices.is_empty() {
                            input #(format!("param-{}", p.name)) data-param=(p.name)
                                type=(if p.secret { "password" } else { "text" })
                                placeholder=(p.default.clone().unwrap_or_default());
                        } @else {
                            select #(format!("param-{}", p.name)) data-param=(p.name) {
                                @for choice in &p.choices {
                                    option value=(choice) selected[p.default.as_deref() == Some(choice.as_str())] { (choice) }
                                }
                            }
                        }
                        small.hint { @if let Some(d) = &p.default { "Default: " (d) "." } @else { "No default: give a value." } }
                        small.error data-error-for=(format!("param-{}", p.name)) {}
                    }
                }
            }
            div.bar {
                button.primary type="submit" { "Run now" }
                a.button href=(job_href(&job.name)) { "Cancel" }
            }
        }
    };
    Ok(Html(
        page(
            &format!("Run {}", job.name),
            Some(Section::Jobs),
            Some(&v),
            body,
        )
        .into_string(),
    )
    .into_response())
}
