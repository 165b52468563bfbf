//! `[auth]`: console sessions and the trusted-proxy login (single sign-on behind a company
//! proxy that authenticates people and passes their name in a header).

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::duration;
use super::{invalid, ConfigError};

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A console session ends after this long unused. Default "2h".
    #[serde(with = "duration")]
    pub session_idle: Duration,
    /// ... and this long after login whatever happens. Default "12h".
    #[serde(with = "duration")]
    pub session_lifetime: Duration,
    /// A header naming the logged-in user, set by an authenticating proxy (e.g.
    /// `X-Forwarded-User`). Default none: no proxy login.
    #[serde(
        with = "super::values::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_header: Option<String>,
    /// The proxies' addresses or networks (`10.0.0.5`, `10.0.0.0/8`): the header is believed
    /// only from them, and refused (and recorded) from anywhere else.
    pub trusted_proxies: Vec<String>,
    /// Create a viewer for a proxy user unknown here (else such a user is refused).
    pub proxy_creates_viewers: bool,
    /// The header the proxy sends its shared secret in, proving a request came through it (an
    /// address alone does not: a job on the proxy's host has it too). Default
    /// "X-Cronvisor-Proxy-Secret".
    pub proxy_secret_header: String,
    /// The proxy's shared secret: at least 16 characters, required with `proxy_header`. Best
    /// given as `CRONVISOR_PROXY_SECRET` (never logged).
    #[serde(with = "super::values::optional", skip_serializing)]
    pub proxy_secret: Option<String>,
}

/// The secret never shows (the config's debug form is logged).
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("session_idle", &self.session_idle)
            .field("session_lifetime", &self.session_lifetime)
            .field("proxy_header", &self.proxy_header)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("proxy_creates_viewers", &self.proxy_creates_viewers)
            .field("proxy_secret_header", &self.proxy_secret_header)
            .field(
                "proxy_secret",
                &self.proxy_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_idle: Duration::from_secs(2 * 3600),
            session_lifetime: Duration::from_secs(12 * 3600),
            proxy_header: None,
            trusted_proxies: Vec::new(),
            proxy_creates_viewers: false,
            proxy_secret_header: "X-Cronvisor-Proxy-Secret".to_string(),
            proxy_secret: None,
        }
    }
}

/// `10.0.0.0/8`, `10.0.0.5` (a /32), `::1`.
pub fn parse_net(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, bits) = match text.trim().split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (text.trim(), None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("`{text}` is not an address or network (10.0.0.0/8)"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) => b
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("`{text}`: the prefix must be 0 to {max}"))?,
    };
    Ok((ip, bits))
}

/// Whether `ip` is in `net/bits`.
pub fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl AuthConfig {
    /// A proxy login needs the proxy's secret (16+ characters).
    pub(super) fn check_proxy_secret(&self) -> Result<(), ConfigError> {
        let missing = self
            .proxy_secret
            .as_ref()
            .is_none_or(|s| s.chars().count() < 16);
        if self.proxy_header.is_some() && missing {
            return Err(invalid(
                "auth.proxy_secret",
                "at least 16 characters, required with auth.proxy_header: the proxy sends it in \
                 auth.proxy_secret_header to prove a request came through it (set \
                 CRONVISOR_PROXY_SECRET)",
            ));
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.session_idle.is_zero() || self.session_lifetime.is_zero() {
            return Err(invalid(
                "auth.session_idle",
                "sessions must last more than 0s",
            ));
        }
        for t in &self.trusted_proxies {
            parse_net(t).map_err(|m| invalid("auth.trusted_proxies", m))?;
        }
        if let Some(h) = &self.proxy_header {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    "auth.proxy_header",
                    format!("`{h}` is not a header name"),
                ));
            }
            if self.trusted_proxies.is_empty() {
                return Err(invalid(
                    "auth.trusted_proxies",
                    "must name the proxies when auth.proxy_header is set (else anyone could send it)",
                ));
            }
            if axum::http::HeaderName::from_bytes(self.proxy_secret_header.as_bytes()).is_err() {
                return Err(invalid(
                    "auth.proxy_secret_header",
                    format!("`{}` is not a header name", self.proxy_secret_header),
                ));
            }
        }
        Ok(())
    }
}
