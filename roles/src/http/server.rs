//! Serving a router on a listener the role was handed (inherited from the supervisor or from
//! systemd), until a shutdown future resolves.

use std::future::Future;

use axum::Router;

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
