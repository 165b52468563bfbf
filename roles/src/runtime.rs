//! What every role process does around its work: adopt its socket, open the store, report
//! readiness to whoever started it (supervisor or systemd), and turn SIGTERM / SIGINT into a
//! shutdown value the role's loops watch.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

pub use crate::shutdown::{stopped, stopped_fast, Shutdown, Stop};

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Activation(#[from] cronvisor_supervisor::ActivationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] crate::tokens::TokenError),
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    #[error("no listener `{0}` configured")]
    NoListener(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("config key `tls.ca_file`: {0}")]
    Tls(#[from] crate::http::tls::TlsError),
    #[error(transparent)]
    RunAs(#[from] crate::privilege::RunAsError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// Everything a role needs, prepared before it starts serving.
#[derive(Debug)]
pub struct RoleContext {
    pub role: &'static str,
    pub config: Config,
    pub store: Store,
    pub listener: std::net::TcpListener,
    pub metrics: Arc<Metrics>,
    pub draining: Arc<AtomicBool>,
    pub deps: Arc<crate::cluster::Dependencies>,
}

impl RoleContext {
    /// Adopts the role's listener from the inherited sockets (falling back to binding the
    /// configured address when started by hand) and opens the store.
    pub async fn prepare(
        role: &'static str,
        listener_name: &str,
        config: Config,
        inherited: &mut cronvisor_supervisor::activation::Inherited,
    ) -> Result<RoleContext, RoleError> {
        let listener = if inherited.is_empty() {
            let addr = config
                .listeners
                .get(listener_name)
                .copied()
                .ok_or_else(|| RoleError::NoListener(listener_name.to_string()))?;
            tracing::info!(role, listener = listener_name, %addr, "no inherited socket; binding");
            std::net::TcpListener::bind(addr).map_err(|source| RoleError::Bind { addr, source })?
        } else {
            inherited.take_tcp_listener(listener_name)?
        };
        crate::instance::set_identity(&crate::cluster::host_identity(config.host.as_deref()));
        let store = Store::connect(&config.store_url(), config.store.max_connections).await?;
        Ok(RoleContext {
            role,
            config,
            store,
            listener,
            metrics: Metrics::new(role),
            draining: Arc::new(AtomicBool::new(false)),
            deps: Arc::default(),
        })
    }

    /// How this role serves HTTP: the drain's grace (how long a stopping role keeps serving
    /// open connections, answering `Connection: close`) and the limits against hostile clients.
    /// The executors' RPC asks for client certificates under `tls.client_auth`
    /// (`require_client_cert`); the other listeners serve people and probes.
    pub fn http_options(
        &self,
        require_client_cert: bool,
    ) -> Result<crate::http::server::Options, crate::http::tls::TlsError> {
        let tls_config = &self.config.tls;
        let client_ca = tls_config
            .ca_file
            .as_deref()
            .filter(|_| require_client_cert && tls_config.client_auth);
        let tls = match (&tls_config.cert_file, &tls_config.key_file) {
            (Some(cert), Some(key)) => Some(crate::http::tls::server_config(cert, key, client_ca)?),
            _ => None,
        };
        Ok(crate::http::server::Options {
            grace: self.config.supervisor.http_close_grace,
            header_read_timeout: self.config.http.header_read_timeout,
            max_connections: self.config.http.max_connections,
            max_connections_per_client: self.config.http.max_connections_per_client,
            tls,
        })
    }

    /// Whom this role's outbound https trusts (`tls.ca_file` is read now).
    pub fn trust(&self) -> Result<crate::http::tls::Trust, crate::http::tls::TlsError> {
        crate::http::tls::Trust::load(self.config.tls.ca_file.as_deref())
    }

    /// The trust of this role's calls to executors: under `tls.client_auth`, presenting
    /// `tls.cert_file` as its client certificate.
    pub fn rpc_trust(&self) -> Result<crate::http::tls::Trust, crate::http::tls::TlsError> {
        let tls = &self.config.tls;
        let identity = match (&tls.cert_file, &tls.key_file, tls.client_auth) {
            (Some(cert), Some(key), true) => Some((cert.as_path(), key.as_path())),
            _ => None,
        };
        crate::tls::Trust::for_rpc(tls.ca_file.as_deref(), identity)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    pub fn health(&self) -> crate::http::health::Health {
        crate::http::health::Health {
            role: self.role,
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            draining: self.draining.clone(),
            deps: self.deps.clone(),
            configured: self.config.cluster.dependencies(),
            detail_tokens: Arc::new(
                [
                    crate::tokens::API,
                    crate::tokens::RPC,
                    crate::tokens::MONITOR,
                ]
                .iter()
                .filter_map(|f| crate::tokens::load(&self.config.data_dir, f).ok())
                .collect(),
            ),
        }
    }
}

/// Tells the process that started us (if it listens) that we serve.
pub fn notify_ready(status: &str) {
    let _ = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ],
    );
}

pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Set once this role's supervisor is gone: the role drains its work but does not *leave*
/// (its presence row stays to age out), so the monitor alarms its host's loss — a supervisor
/// killed is a fault, where a stop it asked for is not.
static ORPHANED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this role's supervisor went away (see [`ORPHANED`]).
pub fn orphaned() -> bool {
    ORPHANED.load(std::sync::atomic::Ordering::Relaxed)
}

/// How often a role checks that its parent (the supervisor) is still the same process.
const PARENT_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// SIGTERM -> `Drain`, SIGINT -> `Fast` (also during a drain). A role whose parent goes away
/// (the supervisor was killed: the role is re-parented) drains as on SIGTERM, so no role
/// outlives its supervisor by more than `PARENT_CHECK`.
pub fn shutdown_on_signals() -> Result<Shutdown, RoleError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(RoleError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RoleError::Signal)?;
    let parent = nix::unistd::getppid();
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut check = tokio::time::interval(PARENT_CHECK);
        let mut orphaned = false;
        loop {
            let kind = tokio::select! {
                _ = term.recv() => Stop::Graceful,
                _ = int.recv() => Stop::Fast,
                _ = check.tick() => {
                    if orphaned || nix::unistd::getppid() == parent {
                        continue;
                    }
                    orphaned = true;
                    ORPHANED.store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!("supervisor gone; draining (not leaving: the monitor reports this process lost)");
                    Stop::Graceful
                }
            };
            // A repeated SIGTERM (the supervisor's and a process-group signal) stays a drain;
            // SIGINT at any point makes it fast.
            let next = match *tx.borrow() {
                Some(Stop::Fast) => Stop::Fast,
                _ => kind,
            };
            tracing::info!(?next, "stop requested");
            if tx.send(Some(next)).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
