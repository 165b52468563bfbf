//! How cronvisor reaches etcd and Redis off a trusted network: TLS verified against
//! `tls.ca_file` (presenting `tls.cert_file` as the client certificate under `tls.client_auth`),
//! etcd's user and password (`cluster.etcd_user`, `CRONVISOR_ETCD_PASSWORD`), and Redis's AUTH
//! from its URL (`rediss://user:password@host:port/db`, best given as `CRONVISOR_REDIS_URL`).
//! An `https://` etcd endpoint or a `rediss://` URL turns TLS on; certificates and names are
//! always verified.

use crate::config::Config;

use super::ClusterError;

/// The TLS material and credentials of the cluster's dependencies, read when a role starts (a
/// reload picks up rotated files).
#[derive(Clone, Default)]
pub struct Secure {
    /// PEM of `tls.ca_file`.
    ca: Option<Vec<u8>>,
    /// PEM of `tls.cert_file` and `tls.key_file`, under `tls.client_auth`.
    identity: Option<(Vec<u8>, Vec<u8>)>,
    etcd_user: Option<(String, String)>,
}

impl std::fmt::Debug for Secure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure")
            .field("ca", &self.ca.is_some())
            .field("identity", &self.identity.is_some())
            .field("etcd_user", &self.etcd_user.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl Secure {
    pub fn of(config: &Config) -> Result<Secure, ClusterError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| ClusterError::Setup(format!("{}: {e}", p.display())))
        };
        let tls = &config.tls;
        let ca = tls.ca_file.as_deref().map(read).transpose()?;
        let identity = match (&tls.cert_file, &tls.key_file, tls.client_auth) {
            (Some(c), Some(k), true) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        let cluster = &config.cluster;
        let etcd_user = cluster.etcd_user.clone().map(|u| {
            let password = cluster.etcd_password.clone().unwrap_or_default();
            (u, password)
        });
        Ok(Secure {
            ca,
            identity,
            etcd_user,
        })
    }

    /// `options` with etcd's user, and TLS when an endpoint is `https://`.
    pub fn etcd_options(
        &self,
        endpoints: &[String],
        mut options: etcd_client::ConnectOptions,
    ) -> etcd_client::ConnectOptions {
        if let Some((user, password)) = &self.etcd_user {
            options = options.with_user(user.clone(), password.clone());
        }
        if endpoints.iter().any(|e| e.starts_with("https://")) {
            let mut tls = etcd_client::TlsOptions::new();
            if let Some(ca) = &self.ca {
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &self.identity {
                tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
            }
            options = options.with_tls(tls);
        }
        options
    }

    /// A Redis client for `url`: over TLS for `rediss://`, trusting `tls.ca_file`.
    pub fn redis_client(&self, url: &str) -> Result<redis::Client, ClusterError> {
        if !url.starts_with("rediss://") {
            return redis::Client::open(url).map_err(ClusterError::redis("redis url"));
        }
        let certs = redis::TlsCertificates {
            client_tls: self
                .identity
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca.clone(),
        };
        redis::Client::build_with_tls(url, certs).map_err(ClusterError::redis("redis url"))
    }
}
