//! How a role is asked to stop, as a value its loops watch: the lowest layer's view of the
//! role's lifecycle, so that the HTTP server and the cluster's loops can stop with their role
//! without depending on the role's own machinery (`runtime.rs` turns signals into it).

use tokio::sync::watch;

/// How a role is asked to stop: the supervisor's own `Stop`, passed on by signal (SIGTERM:
/// `Graceful`, finish in-flight work within the drain timeout; SIGINT: `Fast`, running jobs are
/// killed and recorded `killed`).
pub use cronvisor_supervisor::Stop;

pub type Shutdown = watch::Receiver<Option<Stop>>;

/// Resolves when any stop is requested.
pub async fn stopped(mut shutdown: Shutdown) {
    loop {
        if shutdown.borrow().is_some() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves when a fast stop is requested.
pub async fn stopped_fast(mut shutdown: Shutdown) {
    loop {
        if *shutdown.borrow() == Some(Stop::Fast) {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
