//! Who may use the console and the API: a bearer token (CLI, scripts), or a console session.
//!
//! A person logs in with the API token; the session is a cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` over TLS) holding a random id and an expiry, signed with an
//! HMAC key derived from the API token. Every monitor with the same token honours it, a reload
//! logs nobody out, and rotating the token ends every session. Nothing secret reaches the page
//! or a URL: the page gets a CSRF token (an HMAC of the session id) that every state-changing
//! request must send back in `X-CSRF-Token`, on top of `SameSite=Strict`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::hmac;

use crate::http::ApiError;
use crate::model::now_millis;

/// The session cookie's name.
pub const COOKIE: &str = "cronvisor_session";
/// How long a session lasts after login.
pub const LIFETIME_MS: i64 = 12 * 3600 * 1000;

/// The keys: the API token (for bearer requests and the login form) and the session key.
#[derive(Clone)]
pub struct Sessions {
    token: Arc<String>,
    key: hmac::Key,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(<redacted>)")
    }
}

/// A valid session, as a request carries it.
#[derive(Debug, Clone)]
pub struct Session {
    id: String,
    pub expires_at: i64,
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    pub fn new(api_token: &str) -> Sessions {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, api_token.as_bytes());
        let secret = hmac::sign(&derive, b"cronvisor console sessions v1");
        Sessions {
            token: Arc::new(api_token.to_string()),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref()),
        }
    }

    /// Whether `given` is the API token.
    pub fn is_token(&self, given: &str) -> bool {
        same(given.trim().as_bytes(), self.token.as_bytes())
    }

    fn sign(&self, what: &str) -> String {
        hex(hmac::sign(&self.key, what.as_bytes()).as_ref())
    }

    /// A new session's cookie value.
    pub fn open(&self) -> Result<(String, Session), ApiError> {
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).map_err(
            |_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no randomness for a session",
                )
            },
        )?;
        let session = Session {
            id: hex(&id),
            expires_at: now_millis() + LIFETIME_MS,
        };
        let body = format!("{}.{}", session.id, session.expires_at);
        Ok((format!("{body}.{}", self.sign(&body)), session))
    }

    /// The session a cookie value names, if it is genuine and not expired.
    pub fn check(&self, value: &str) -> Option<Session> {
        let (body, sig) = value.rsplit_once('.')?;
        if !same(sig.as_bytes(), self.sign(body).as_bytes()) {
            return None;
        }
        let (id, expires) = body.split_once('.')?;
        let expires_at: i64 = expires.parse().ok()?;
        (expires_at > now_millis()).then(|| Session {
            id: id.to_string(),
            expires_at,
        })
    }

    /// The CSRF token of a session.
    pub fn csrf(&self, session: &Session) -> String {
        self.sign(&format!("csrf:{}", session.id))
    }

    /// The session of a request, from its cookie.
    pub fn of(&self, headers: &HeaderMap) -> Option<Session> {
        cookie(headers, COOKIE).and_then(|v| self.check(&v))
    }

    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same(t.as_bytes(), self.token.as_bytes()))
    }
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value for a session (`value` empty: the cookie is cleared).
pub fn set_cookie(value: &str, secure: bool) -> String {
    let max_age = if value.is_empty() {
        0
    } else {
        LIFETIME_MS / 1000
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Whether a state-changing request comes from this site: no `Origin` (not a browser's
/// cross-site request) or one naming the host it was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !host.is_empty() && origin_host == host
}

/// Middleware of the API: a bearer token, or a console session (whose state-changing requests
/// carry its CSRF token and come from this site).
pub async fn api_auth(State(s): State<Sessions>, req: Request, next: Next) -> Response {
    if s.bearer_ok(req.headers()) {
        return next.run(req).await;
    }
    let Some(session) = s.of(req.headers()) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
            .into_response();
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !safe {
        let csrf = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same(csrf.as_bytes(), s.csrf(&session).as_bytes()) || !same_origin(req.headers()) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (reload the page)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_honoured_only_as_signed_and_until_it_expires() {
        let s = Sessions::new("token-a");
        let (value, session) = s.open().expect("open");
        assert!(s.check(&value).is_some());
        // Another token (rotated, or another install) does not honour it.
        assert!(Sessions::new("token-b").check(&value).is_none());
        // Tampering with the expiry breaks the signature.
        let (id, rest) = value.split_once('.').expect("id");
        let (_, sig) = rest.split_once('.').expect("sig");
        let forged = format!("{id}.{}.{sig}", session.expires_at + 1_000_000);
        assert!(s.check(&forged).is_none());
        assert_ne!(s.csrf(&session), s.csrf(&s.open().expect("other").1));
    }

    #[test]
    fn cookies_are_http_only_and_same_site_strict() {
        let c = set_cookie("v", true);
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(set_cookie("", false).contains("Max-Age=0"));
    }
}
