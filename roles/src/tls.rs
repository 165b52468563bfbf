//! Whom outbound https trusts: HTTP jobs, webhooks and SMS gateways call services the operator
//! does not run, so Mozilla's roots (webpki-roots, compiled in, the same on every host) are
//! always trusted; an operator's own CA (an internal gateway, a test) is added with
//! `tls.ca_file`. Certificates are always verified, names included: there is no switch to
//! turn verification off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CA file {path}: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The trust of an outbound client: a rustls client config built once per role.
#[derive(Clone, Debug)]
pub struct Trust(Arc<ClientConfig>);

impl Trust {
    /// Mozilla's roots plus the certificates of `ca_file` (a PEM file), if any.
    pub fn load(ca_file: Option<&Path>) -> Result<Trust, TlsError> {
        Trust::with_roots(roots(ca_file, true)?, None)
    }

    /// The trust of cronvisor's own RPC: the certificates of `ca_file` only, when it is set (an
    /// executor's certificate must come from the cluster's CA, not from any public one, or an
    /// entry written into etcd with a public certificate would get runs and the RPC token);
    /// with `identity` (`cert`, `key`), presented as the client's certificate under mutual TLS
    /// (never to the services jobs and alarms call).
    pub fn for_rpc(
        ca_file: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Trust, TlsError> {
        Trust::with_roots(roots(ca_file, ca_file.is_none())?, identity)
    }

    fn with_roots(
        roots: RootCertStore,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Trust, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let (certs, key) = self::identity(cert, key)?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| TlsError::Certificates {
                        path: cert.to_path_buf(),
                        reason: e.to_string(),
                    })?
            }
        };
        Ok(Trust(Arc::new(config)))
    }

    /// A copy of the client config for one connector.
    pub(crate) fn client_config(&self) -> ClientConfig {
        (*self.0).clone()
    }
}

/// The certificates of `ca_file`, and Mozilla's roots when `public`.
fn roots(ca_file: Option<&Path>, public: bool) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    if public {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(ca_file) = ca_file {
        for cert in load_ca_file(ca_file)? {
            roots.add(cert).map_err(|e| TlsError::Certificates {
                path: ca_file.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

/// The certificates of a PEM file: at least one, every one parseable.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificates {
            path: path.to_path_buf(),
            reason: format!("not PEM certificates ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificates {
            path: path.to_path_buf(),
            reason: "no `BEGIN CERTIFICATE` block".to_string(),
        });
    }
    Ok(certs)
}

/// A certificate chain and its private key, from PEM files.
fn identity(
    cert: &Path,
    key: &Path,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    TlsError,
> {
    use rustls::pki_types::PrivateKeyDer;
    let certs = load_ca_file(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Certificates {
        path: key.to_path_buf(),
        reason: format!("no private key: {e}"),
    })?;
    Ok((certs, key))
}

/// The server side of https: the certificate chain and key of `tls.cert_file` / `key_file`;
/// with `client_ca`, only clients whose certificate that CA signed get through the handshake.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key) = identity(cert, key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_ca_file(ca)? {
                roots.add(c).map_err(|e| TlsError::Certificates {
                    path: ca.to_path_buf(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Certificates {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_its_path() {
        let dir = std::env::temp_dir().join(format!("cronvisor-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Trust::load(Some(&empty)).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("BEGIN CERTIFICATE"),
            "{err}"
        );
        let missing = dir.join("missing.pem");
        let err = Trust::load(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        assert!(Trust::load(None).is_ok(), "Mozilla's roots alone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
