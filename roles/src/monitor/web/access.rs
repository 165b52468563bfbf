//! Who a request comes from, and what it may do.
//!
//! A request is authenticated by exactly one of: a bearer token — the install's `api.token`
//! (admin of everything, so no install breaks) or a named API token (its hash looked up on
//! every request: a revoked or expired one is refused at once by every monitor); a console
//! session cookie (its hash looked up in the store); or, when configured, a trusted proxy's
//! user header, believed only from the configured proxy addresses. The result, a [`Caller`],
//! goes into the request's extensions; handlers check its role and scope.
//!
//! A session's state-changing requests must carry its CSRF token (derived from the session's
//! secret, which only the cookie holds) and come from the same origin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::digest;

pub use super::passwords::{hash_password, password_matches};
use super::passwords::{verify_password, DUMMY_HASH};
pub use super::sso::Proxy;

use crate::http::auth::same;
use crate::http::ApiError;
use crate::model::access::{check_user_name, Access, Principal, User};
use crate::store::{NewAudit, Store};

/// The session cookie's name.
pub const COOKIE: &str = "cronvisor_session";
/// Its name over https: the `__Host-` prefix makes a browser refuse it unless it is `Secure`,
/// set by this host itself (not a sibling domain) and for `/`, so no other site can plant one.
pub const SECURE_COOKIE: &str = "__Host-cronvisor_session";
/// Failed logins allowed before each further attempt must wait.
const FREE_FAILURES: i64 = 5;
/// The longest wait between attempts.
const MAX_WAIT_SECS: i64 = 300;

/// SHA-256, hex: how tokens and session secrets are stored.
pub fn sha256_hex(text: &str) -> String {
    digest::digest(&digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A random secret, hex (32 bytes: tokens, session ids).
pub fn random_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no randomness available"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A name as typed at a login, fit for the log and the audit log: at most 64 characters,
/// control characters shown as `\u{..}` escapes (a name is never written raw: it could forge
/// log lines or fill the audit log).
pub fn shown_name(name: &str) -> String {
    let mut shown: String = name
        .chars()
        .take(64)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if name.chars().count() > 64 {
        shown.push('…');
    }
    shown
}

/// How a caller got in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Bearer,
    /// A console session; the secret is the cookie's value.
    Session {
        secret: String,
    },
    Proxy,
}

/// An authenticated request's caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The client's address (the proxy's when via a proxy).
    pub address: Option<String>,
    pub via: Via,
}

impl Caller {
    /// Changing jobs and runs: operators and admins.
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.principal.can_write() {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "`{}` is a {}: it may read, not change",
                    self.principal.name,
                    self.principal.access.as_str()
                ),
            ))
        }
    }

    /// Users, tokens and the audit log: admins.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.principal.is_admin() {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "only an admin may do this",
            ))
        }
    }

    /// Whether this caller may create or change a principal (user or token) of `access` over
    /// `groups`: an admin scoped to some groups may grant those groups only, never every group
    /// (so it cannot unscope itself or mint a wider token or user).
    pub fn may_grant(&self, groups: &Option<Vec<String>>) -> Result<(), ApiError> {
        let Some(mine) = &self.principal.groups else {
            return Ok(());
        };
        let within = groups
            .as_ref()
            .is_some_and(|g| g.iter().all(|x| mine.contains(x)));
        if within {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "`{}` is an admin of groups {} only: it may grant those groups, no others",
                    self.principal.name,
                    mine.join(",")
                ),
            ))
        }
    }

    /// Whether this caller would still be let in: its token not revoked or expired, its
    /// session not ended, its proxy user still active (a store error counts as yes: a
    /// long-lived stream is not cut by a hiccup).
    pub async fn still_valid(&self, store: &Store) -> bool {
        let answer = match &self.via {
            Via::Bearer => match self.principal.name.strip_prefix("token:") {
                Some(name) => store.token_live(name).await,
                None => Ok(true),
            },
            Via::Session { secret } => store.session_live(&sha256_hex(secret)).await,
            Via::Proxy => store
                .user_named(&self.principal.name)
                .await
                .map(|u| u.is_some_and(|(u, _)| u.active)),
        };
        answer.unwrap_or(true)
    }

    /// The CSRF token of a session caller (empty otherwise).
    pub fn csrf(&self) -> String {
        match &self.via {
            Via::Session { secret } => csrf_of(secret),
            _ => String::new(),
        }
    }

    /// Records what this caller did.
    pub async fn audit(
        &self,
        store: &Store,
        action: &str,
        object: String,
        job_id: Option<i64>,
        details: serde_json::Value,
    ) {
        let entry = NewAudit {
            actor: &self.principal.name,
            address: self.address.as_deref(),
            action,
            object,
            job_id,
            details,
        };
        if let Err(e) = store.record_audit(&entry).await {
            tracing::error!(error = %e, action, "cannot record the audit entry");
        }
    }
}

/// Refuses a principal (user or token) of `access` and `groups` while the install keeps to
/// admin-only mode: its jobs run as the roles' own user, so any job could read the admin
/// token, and a role or a group scope would be a boundary that is not kept.
pub fn admin_only_refusal(
    admin_only: Option<&Arc<String>>,
    access: Access,
    groups: &Option<Vec<String>>,
) -> Result<(), ApiError> {
    match admin_only {
        Some(why) if access != Access::Admin || groups.is_some() => Err(ApiError::field(
            if access != Access::Admin {
                "role"
            } else {
                "groups"
            },
            format!(
                "only admins of every group, in admin-only mode: {why} (docs/SECURITY.md, \
                 \"Privilege separation\")"
            ),
        )),
        _ => Ok(()),
    }
}

/// The CSRF token of a session secret.
pub fn csrf_of(secret: &str) -> String {
    sha256_hex(&format!("cronvisor csrf:{secret}"))
}

/// Everything authentication needs; cheap to clone.
#[derive(Clone)]
pub struct Gate {
    pub store: Store,
    install_token: Arc<String>,
    pub idle: Duration,
    pub lifetime: Duration,
    pub proxy: Option<Arc<Proxy>>,
    /// Served over TLS: cookies are `Secure`.
    pub secure: bool,
    /// Why this install keeps to admin-only mode (its jobs run as the roles' own user), if it
    /// does: no operator, viewer or group-scoped principal is created or let in.
    pub admin_only: Option<Arc<String>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate(<redacted>)")
    }
}

/// Why a login was refused.
#[derive(Debug)]
pub enum LoginRefused {
    Wrong,
    /// Too many failures: try again after this many seconds.
    Wait(i64),
    Store(ApiError),
}

impl Gate {
    pub fn new(store: Store, install_token: String, proxy: Option<Proxy>) -> Gate {
        Gate {
            store,
            install_token: Arc::new(install_token),
            idle: Duration::from_secs(2 * 3600),
            lifetime: Duration::from_secs(12 * 3600),
            proxy: proxy.map(Arc::new),
            secure: false,
            admin_only: None,
        }
    }

    /// The caller of a request, if it authenticates and this install can keep it within its
    /// bounds (see [`admin_only_refusal`]).
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Option<Caller>, ApiError> {
        let caller = self.identify_any(headers, peer).await?;
        if let (Some(why), Some(c)) = (&self.admin_only, &caller) {
            if !c.principal.is_admin() || c.principal.groups.is_some() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "`{}` is not let in: this install is in admin-only mode ({why})",
                        c.principal.name
                    ),
                ));
            }
        }
        Ok(caller)
    }

    /// The caller of a request, if it authenticates; an error for a proxy header from an
    /// address that is not a trusted proxy.
    async fn identify_any(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Option<Caller>, ApiError> {
        let address = peer.map(|p| p.ip().to_string());
        if let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let given = given.trim();
            if same(given.as_bytes(), self.install_token.as_bytes()) {
                return Ok(Some(Caller {
                    principal: Principal::install_token(),
                    address,
                    via: Via::Bearer,
                }));
            }
            let token = self.store.token_by_hash(&sha256_hex(given)).await?;
            return Ok(token.map(|t| Caller {
                principal: Principal {
                    name: format!("token:{}", t.name),
                    access: t.access,
                    groups: t.groups,
                },
                address,
                via: Via::Bearer,
            }));
        }
        if let Some(proxy) = &self.proxy {
            if headers.contains_key(proxy.header.as_str()) {
                return self.via_proxy(proxy, headers, peer, address).await;
            }
        }
        let Some(secret) = cookie(headers, self.cookie_name()) else {
            return Ok(None);
        };
        let Some(user_id) = self
            .store
            .session_user(&sha256_hex(&secret), self.idle.as_millis() as i64)
            .await?
        else {
            return Ok(None);
        };
        let Some(user) = self.store.user_by_id(user_id).await?.filter(|u| u.active) else {
            return Ok(None);
        };
        Ok(Some(Caller {
            principal: principal_of(&user),
            address,
            via: Via::Session { secret },
        }))
    }

    /// Checks a login; on success opens a session and returns its secret (the cookie's value).
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        address: Option<&str>,
    ) -> Result<(String, User), LoginRefused> {
        // A name no user can have is counted against the address only (it would add a row per
        // name typed).
        let could_be_user = check_user_name(name).is_ok();
        let subjects: Vec<String> = [
            could_be_user.then(|| format!("user:{}", name.to_lowercase())),
            Some(format!("addr:{}", address.unwrap_or("?"))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let now = crate::model::now_millis();
        for s in &subjects {
            let (failures, last) = self
                .store
                .login_failures(s)
                .await
                .map_err(|e| LoginRefused::Store(e.into()))?;
            if failures >= FREE_FAILURES {
                let wait = (1i64 << (failures - FREE_FAILURES).min(9)).min(MAX_WAIT_SECS);
                let left = wait - (now - last) / 1000;
                if left > 0 {
                    return Err(LoginRefused::Wait(left));
                }
            }
        }
        let found = match could_be_user {
            true => self
                .store
                .user_named(name)
                .await
                .map_err(|e| LoginRefused::Store(e.into()))?,
            false => None,
        };
        // An unknown user costs the same hash as a known one: timing tells no names.
        let (user, hash) = match found {
            Some((u, h)) if u.active => (Some(u), h),
            _ => (None, DUMMY_HASH.to_string()),
        };
        let ok = verify_password(password.to_string(), hash)
            .await
            .map_err(LoginRefused::Store)?
            && user.is_some();
        let Some(user) = user.filter(|_| ok) else {
            for s in &subjects {
                let _ = self.store.add_login_failure(s).await;
            }
            return Err(LoginRefused::Wrong);
        };
        for s in &subjects {
            let _ = self.store.clear_login_failures(s).await;
        }
        let secret = random_secret().map_err(LoginRefused::Store)?;
        let expires = now + self.lifetime.as_millis() as i64;
        self.store
            .open_session(&sha256_hex(&secret), user.id, expires, address)
            .await
            .map_err(|e| LoginRefused::Store(e.into()))?;
        let _ = self.store.note_login(user.id).await;
        Ok((secret, user))
    }

    /// Ends the session whose secret this is, on every monitor.
    pub async fn logout(&self, secret: &str) {
        if let Err(e) = self.store.end_session(&sha256_hex(secret)).await {
            tracing::warn!(error = %e, "cannot end a session");
        }
    }

    /// The session cookie's name: `__Host-` prefixed over https.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }

    /// The `Set-Cookie` value for a session secret (empty: the cookie is cleared).
    pub fn set_cookie(&self, secret: &str) -> String {
        let max_age = if secret.is_empty() {
            0
        } else {
            self.lifetime.as_secs()
        };
        let secure = if self.secure { "; Secure" } else { "" };
        let name = self.cookie_name();
        format!("{name}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }
}

pub(super) fn principal_of(user: &User) -> Principal {
    Principal {
        name: user.name.clone(),
        access: user.access,
        groups: user.groups.clone(),
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

/// The peer of a request.
pub fn peer_of(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Middleware of the API: a request with a body must say it is JSON (`415` otherwise). A
/// browser sends `text/plain`, form and multipart bodies cross-site without asking, so a body
/// read as JSON whatever its type could be forged by any page; `application/json` it cannot
/// send cross-site without the site's consent (CORS), which the API never gives.
pub async fn json_bodies(req: Request, next: Next) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|n| n.trim() != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if has_body && !json {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body must be JSON, sent as Content-Type: application/json",
        )
        .into_response();
    }
    next.run(req).await
}

/// Middleware of the API: authenticates, checks a session's CSRF token and origin on
/// state-changing requests, and hands the [`Caller`] to the handlers.
pub async fn api_auth(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let peer = peer_of(&req);
    let caller = match gate.identify(req.headers(), peer).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing, wrong, expired or revoked token (or no session)",
            )
            .into_response()
        }
        Err(e) => return e.into_response(),
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    // The proxy adds its user header to every request the browser sends through it, forged
    // cross-site ones too: a proxy user's writes must come from this origin.
    if !safe && caller.via == Via::Proxy && !same_origin(req.headers()) {
        return ApiError::new(StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    if let (false, Via::Session { secret }) = (safe, &caller.via) {
        let given = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same(given.as_bytes(), csrf_of(secret).as_bytes()) || !same_origin(req.headers()) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (reload the page)",
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_name_is_shown_bounded_and_without_control_characters() {
        assert_eq!(shown_name("alice"), "alice");
        assert_eq!(shown_name("a\nfake line\t"), "a\\u{a}fake line\\u{9}");
        let long = "x".repeat(2 << 20);
        assert_eq!(shown_name(&long).chars().count(), 65);
    }
}
