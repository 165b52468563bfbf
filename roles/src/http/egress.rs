//! Where HTTP jobs may call. An HTTP job is a request the executor makes on an operator's
//! behalf, from inside the network the executor sits in: without a policy, a job could call
//! cronvisor's own API on loopback, a cloud's metadata service (instance credentials) or any
//! other link-local service. By default those are refused — loopback, link-local (metadata
//! services live there: 169.254.169.254, fd00:ec2::254), unspecified and multicast addresses —
//! unless `executor.http_allow` names their network. The check is made on the addresses a name
//! resolves to (so a name pointing at 127.0.0.1 is refused too), and on IP literals in the URL.

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};

use crate::config::auth::{in_net, parse_net};

/// The egress policy of HTTP jobs.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// Networks allowed although the default refuses them (`executor.http_allow`).
    allowed: Vec<(IpAddr, u8)>,
}

impl Egress {
    /// The policy of `executor.http_allow` (validated by the config: bad entries cannot stay).
    pub fn new(allowed: &[String]) -> Egress {
        Egress {
            allowed: allowed.iter().filter_map(|n| parse_net(n).ok()).collect(),
        }
    }

    /// Whether a job may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        !refused_by_default(ip)
            || self
                .allowed
                .iter()
                .any(|(net, bits)| in_net(ip, *net, *bits))
    }

    /// Why `url` may not be called, when its host is an IP literal the policy refuses.
    pub fn refusal(&self, url: &str) -> Option<String> {
        let uri = url.parse::<hyper::Uri>().ok()?;
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = host.parse().ok()?;
        (!self.allows(ip)).then(|| refused(&ip.to_string()))
    }
}

fn refused(what: &str) -> String {
    format!(
        "{what}: refused by the HTTP jobs' egress policy (loopback, link-local and metadata \
         addresses need executor.http_allow)"
    )
}

/// Loopback, link-local (metadata services), unspecified, multicast and broadcast, in either
/// family (an IPv4-mapped IPv6 address as its IPv4 one).
fn refused_by_default(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return refused_by_default(IpAddr::V4(v4));
            }
            let metadata = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80
                || a == metadata
        }
    }
}

/// The system resolver, keeping only the addresses the policy allows (`None`: all). A name
/// none of whose addresses is allowed fails to resolve, saying why.
#[derive(Clone)]
pub struct Resolver {
    gai: GaiResolver,
    egress: Option<Arc<Egress>>,
}

impl Resolver {
    pub fn new(egress: Option<Arc<Egress>>) -> Resolver {
        Resolver {
            gai: GaiResolver::new(),
            egress,
        }
    }
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<Name>::poll_ready(&mut self.gai, cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let egress = self.egress.clone();
        let shown = name.as_str().to_string();
        let resolving = tower::Service::<Name>::call(&mut self.gai, name);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = resolving.await?.collect();
            let Some(egress) = egress else {
                return Ok(addrs.into_iter());
            };
            let kept: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| egress.allows(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    refused(&shown),
                ));
            }
            Ok(kept.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn loopback_link_local_and_metadata_are_refused_unless_allowed() {
        let default = Egress::default();
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!default.allows(ip(refused)), "{refused}");
        }
        for allowed in ["10.0.0.5", "192.168.1.2", "93.184.216.34", "2001:db8::1"] {
            assert!(default.allows(ip(allowed)), "{allowed}");
        }
        let loopback = Egress::new(&["127.0.0.0/8".to_string()]);
        assert!(loopback.allows(ip("127.0.0.1")));
        assert!(!loopback.allows(ip("169.254.169.254")));
        assert!(default
            .refusal("http://127.0.0.1:7070/api/v1/jobs")
            .is_some());
        assert!(default.refusal("http://[::1]:7070/").is_some());
        assert!(default.refusal("http://example.com/").is_none());
    }
}
