//! The web console: the back office where operators see every job, every run and its output
//! live, served by every monitor on its `api` listener next to the API.
//!
//! Its boundary: pages are server-rendered HTML (maud) from the same store queries as the API;
//! everything a page changes (run now, pause, edit, delete, kill) goes through the JSON API
//! from a small script (`assets/console.js`), with the session cookie and a CSRF token — one
//! validation for the CLI, scripts and the console. Assets are compiled into the binary.
//!
//! Every response carries a Content-Security-Policy without inline script or style, framing
//! refused, and `nosniff`; every value on a page is escaped, and output is shown as text.

mod backfills;
mod calendars;
mod durations;
mod flows;
mod form;
mod layout;
mod ops;
mod overview;
mod pages;

pub use layout::masked;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::html;
use serde::Deserialize;

use super::access::{Caller, Gate, LoginRefused, Via};
use super::api::ApiState;

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    pub api: ApiState,
    pub gate: Gate,
    pub deps: Arc<crate::cluster::Dependencies>,
}

/// A page not shown: a redirect to the login form, or an error page.
pub struct Bounce(Box<Response>);

impl From<Response> for Bounce {
    fn from(r: Response) -> Bounce {
        Bounce(Box::new(r))
    }
}

impl IntoResponse for Bounce {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// A logged-in person on a page.
pub struct Visitor {
    pub csrf: String,
    pub caller: Caller,
}

impl Visitor {
    /// Whether the page shows the buttons that change jobs and runs.
    pub fn writes(&self) -> bool {
        self.caller.principal.can_write()
    }
}

impl Console {
    /// The visitor of a page, or a redirect to the login form (back to `here` after).
    async fn visitor(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        here: &str,
    ) -> Result<Visitor, Bounce> {
        match self.gate.identify(headers, Some(peer)).await {
            Ok(Some(caller)) if caller.via != Via::Bearer => Ok(Visitor {
                csrf: caller.csrf(),
                caller,
            }),
            Ok(_) => Err(Redirect::to(&layout::href("/login", &[("next", here)]))
                .into_response()
                .into()),
            Err(e) => Err(e.into_response().into()),
        }
    }
}

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(overview::overview))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/new", get(form::new_job))
        .route("/jobs/{job}", get(pages::job))
        .route("/jobs/{job}/edit", get(form::edit_job))
        .route("/jobs/{job}/run", get(form::run_form))
        .route("/jobs/{job}/backfill", get(backfills::backfill_form))
        .route("/flows", get(flows::flows))
        .route("/calendars", get(calendars::calendars))
        .route("/calendars/{name}", get(calendars::calendar))
        .route("/flows/{run}", get(flows::flow))
        .route("/runs", get(ops::runs))
        .route("/runs/{id}", get(ops::run))
        .route("/fleet", get(ops::fleet))
        .route("/alarms", get(ops::alarms))
        .route("/audit", get(ops::audit))
        .route("/users", get(ops::users))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/static/console.js", get(script))
        .route("/static/console.css", get(style))
        .with_state(console)
}

/// Over https, browsers are told to use nothing else for a year (HSTS): a network attacker
/// cannot then downgrade a console visit to http and read the session cookie.
pub async fn strict_transport(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    resp
}

/// Headers every console and API response carries.
pub async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
             object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

/// Only a path of this site, never another origin (`//host`, `https://...`, nor `/<TAB>/host`:
/// browsers drop tabs and line breaks from a URL, so no control character or space either).
fn safe_next(next: &str) -> &str {
    let plain = !next
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    if plain && next.starts_with('/') && !next.starts_with("//") {
        next
    } else {
        "/"
    }
}

fn login_page(next: &str, error: Option<&str>) -> Html<String> {
    let body = html! {
        form.login method="post" action="/login" {
            input type="hidden" name="next" value=(safe_next(next));
            div.field {
                label for="name" { "User" }
                input #name name="name" autocomplete="username" required autofocus;
            }
            div.field {
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                @if let Some(e) = error { small.error role="alert" { (e) } }
            }
            button.primary type="submit" { "Log in" }
            p.muted { "No user yet? On the host running cronvisor: "
                code { "cronvisor user add NAME --role admin --password-stdin" } }
        }
    };
    Html(layout::page("Log in", None, None, body).into_string())
}

async fn login_form(Query(q): Query<LoginQuery>) -> Html<String> {
    login_page(&q.next, None)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !super::access::same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site login refused").into_response();
    }
    let address = peer.ip().to_string();
    let typed = super::access::shown_name(&f.name);
    let attempt = Caller {
        principal: crate::model::access::Principal {
            name: typed.clone(),
            access: crate::model::access::Access::Viewer,
            groups: Some(Vec::new()),
        },
        address: Some(address.clone()),
        via: Via::Bearer,
    };
    match c.gate.login(&f.name, &f.password, Some(&address)).await {
        Ok((secret, user)) => {
            tracing::info!(user = %user.name, "console login");
            attempt
                .audit(
                    &c.api.store,
                    "login",
                    format!("user {}", user.name),
                    None,
                    serde_json::json!({}),
                )
                .await;
            let mut resp = Redirect::to(safe_next(&f.next)).into_response();
            if let Ok(v) = HeaderValue::from_str(&c.gate.set_cookie(&secret)) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(LoginRefused::Wrong) => {
            tracing::warn!(user = %typed, %address, "console login refused");
            attempt
                .audit(
                    &c.api.store,
                    "login.failed",
                    format!("user {typed}"),
                    None,
                    serde_json::json!({}),
                )
                .await;
            (
                StatusCode::UNAUTHORIZED,
                login_page(&f.next, Some("Wrong user or password.")),
            )
                .into_response()
        }
        Err(LoginRefused::Wait(secs)) => {
            attempt
                .audit(
                    &c.api.store,
                    "login.throttled",
                    format!("user {typed}"),
                    None,
                    serde_json::json!({"wait_secs": secs}),
                )
                .await;
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                login_page(
                    &f.next,
                    Some(&format!("Too many failed logins: try again in {secs} s.")),
                ),
            )
                .into_response()
        }
        Err(LoginRefused::Store(e)) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    if let Ok(Some(caller)) = c.gate.identify(&headers, Some(peer)).await {
        if let Via::Session { secret } = &caller.via {
            if f.csrf != caller.csrf() {
                return (StatusCode::FORBIDDEN, "wrong CSRF token").into_response();
            }
            // Ends the session in the store: on every monitor, for every copy of the cookie.
            c.gate.logout(secret).await;
            caller
                .audit(
                    &c.api.store,
                    "logout",
                    format!("user {}", caller.principal.name),
                    None,
                    serde_json::json!({}),
                )
                .await;
        }
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&c.gate.set_cookie("")) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn the_login_goes_back_to_a_path_of_this_site_only() {
        assert_eq!(safe_next("/jobs?page=2"), "/jobs?page=2");
        for off_site in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
        ] {
            assert_eq!(safe_next(off_site), "/", "{off_site:?}");
        }
    }
}
