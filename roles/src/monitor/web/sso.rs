//! Single sign-on behind an authenticating proxy: the proxy passes the logged-in user's name
//! in a header. Anyone who can reach the API could send that header, so it is believed only
//! when the proxy proves itself: the request comes from a configured proxy address *and*
//! carries the proxy's shared secret (a job on a trusted host knows the address, not the
//! secret), and names exactly one user who could exist. Anything else is refused and recorded.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, StatusCode};

use super::access::{principal_of, random_secret, shown_name, Caller, Gate, Via};
use super::passwords::hash_password;
use crate::config::auth::{in_net, parse_net};
use crate::config::AuthConfig;
use crate::http::auth::same;
use crate::http::ApiError;
use crate::model::access::{check_user_name, Access, Principal};

/// Trusted-proxy login: a header believed only from these addresses.
#[derive(Clone)]
pub struct Proxy {
    pub header: String,
    pub trusted: Vec<(IpAddr, u8)>,
    /// Create a viewer for an unknown name (else it is refused).
    pub creates_viewers: bool,
    /// The header the proxy proves itself with, and its value (`CRONVISOR_PROXY_SECRET`).
    pub secret_header: String,
    pub secret: String,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("header", &self.header)
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// The proxy login of `[auth]`, when configured (validated: bad entries cannot remain).
    pub fn from_config(auth: &AuthConfig) -> Option<Proxy> {
        let header = auth.proxy_header.clone()?;
        Some(Proxy {
            header: header.to_ascii_lowercase(),
            trusted: auth
                .trusted_proxies
                .iter()
                .filter_map(|t| parse_net(t).ok())
                .collect(),
            creates_viewers: auth.proxy_creates_viewers,
            secret_header: auth.proxy_secret_header.to_ascii_lowercase(),
            secret: auth.proxy_secret.clone().unwrap_or_default(),
        })
    }

    /// Whether the request carries the proxy's secret (once, compared in constant time).
    fn proved_by(&self, headers: &HeaderMap) -> bool {
        let mut given = headers.get_all(self.secret_header.as_str()).iter();
        match (given.next(), given.next()) {
            (Some(v), None) => {
                !self.secret.is_empty() && same(v.as_bytes(), self.secret.as_bytes())
            }
            _ => false,
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted
            .iter()
            .any(|(net, bits)| in_net(ip, *net, *bits))
    }
}

impl Gate {
    /// The caller a proxy names, once the proxy has proved itself: the request comes from a
    /// trusted address, carries the proxy's secret, and names one user (a second user header
    /// — one the proxy passed on from the client beside its own — is refused).
    pub(super) async fn via_proxy(
        &self,
        proxy: &Proxy,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        address: Option<String>,
    ) -> Result<Option<Caller>, ApiError> {
        let names: Vec<&str> = headers
            .get_all(proxy.header.as_str())
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        let name = names.first().map(|n| n.trim()).unwrap_or("");
        let refusal = if !peer.is_some_and(|p| proxy.trusts(p.ip())) {
            Some("not from a trusted proxy")
        } else if !proxy.proved_by(headers) {
            Some("without the proxy's secret")
        } else if names.len() != 1 {
            Some("the user header more than once")
        } else if check_user_name(name).is_err() {
            Some("not a user name")
        } else {
            None
        };
        if let Some(reason) = refusal {
            let refused = Caller {
                principal: Principal {
                    name: shown_name(name),
                    access: Access::Viewer,
                    groups: Some(Vec::new()),
                },
                address,
                via: Via::Proxy,
            };
            refused
                .audit(
                    &self.store,
                    "login.proxy_refused",
                    format!("header {}", proxy.header),
                    None,
                    serde_json::json!({"reason": reason}),
                )
                .await;
            tracing::warn!(peer = ?peer, header = %proxy.header, reason, "proxy user header refused");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "`{}` is only believed from a trusted proxy with its secret, naming one user ({reason})",
                    proxy.header
                ),
            ));
        }
        let user = match self.store.user_named(name).await? {
            Some((u, _)) => u,
            None if proxy.creates_viewers && self.admin_only.is_none() => {
                let hash = hash_password(random_secret()?).await?;
                let created = self
                    .store
                    .insert_user(&crate::store::UserChange {
                        name: Some(name.to_string()),
                        access: Some(Access::Viewer),
                        password_hash: Some(hash),
                        ..Default::default()
                    })
                    .await?;
                tracing::info!(user = %name, "viewer created for a proxy login");
                created
            }
            None => return Ok(None),
        };
        Ok(user.active.then(|| Caller {
            principal: principal_of(&user),
            address,
            via: Via::Proxy,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(in_net(ip("10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(!in_net(ip("11.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_net(ip("127.0.0.1"), ip("127.0.0.1"), 32));
        assert!(in_net(ip("::1"), ip("::1"), 128));
        assert!(!in_net(ip("::1"), ip("127.0.0.1"), 0));
    }
}
