//! Serving a router on a listener the role was handed (inherited from the supervisor or from
//! systemd), and draining it without a client ever seeing a reset.
//!
//! hyper's own graceful shutdown closes at once every connection that is idle in keep-alive or
//! accepted but not yet read (hyperium/hyper #2730, #3792, #3808), and a client that sent its
//! request at that moment sees a reset. So the drain here has three steps:
//!
//! 1. stop accepting: this process's copy of the listening socket is closed; the socket itself
//!    stays open in the supervisor and the next generation, whose accept queue takes new
//!    connections;
//! 2. for `grace`, keep serving the open connections but answer with `Connection: close`, so
//!    every client that sends a request is answered and then moves to a new connection;
//! 3. then ask the remaining (idle) connections to close, and wait for in-flight ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::shutdown::{Shutdown, Stop};

/// How a listener is served.
///
/// Against hostile or broken clients: a connection must send a request's headers within
/// `header_read_timeout` — from when it opens, and again after each response, so an idle
/// keep-alive connection is closed after that long too (slow-loris and idle floods cost a
/// bounded time each) — and at most `max_connections` are open at once; beyond that, new ones
/// wait in the kernel's accept queue rather than exhaust the process's descriptors. One client
/// address holds at most `max_connections_per_client` of them: past it a new connection from it
/// is closed at once, so one client cannot take the slots everyone else needs. A request's body
/// must arrive whole within `header_read_timeout` of its headers (else 408): a body trickled a
/// byte at a time holds no slot for longer than that. Bodies are
/// bounded by axum's default limit (2 MiB) on every route that reads one.
#[derive(Debug, Clone)]
pub struct Options {
    pub grace: Duration,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// Connections open at once from one address; past it a new one is closed at once.
    pub max_connections_per_client: usize,
    /// Serve https with this (`tls.cert_file`), else http.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// One connection, over plain TCP or TLS, until it ends or the drain asks it to close.
async fn serve_connection<IO, S>(
    io: IO,
    service: S,
    header_timeout: Duration,
    mut close_rx: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { let _ = close_rx.wait_for(|c| *c).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Serves `router` on `listener` until a stop is requested, then drains as described above
/// (a fast stop skips the grace period).
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    shutdown: Shutdown,
    options: Options,
) -> std::io::Result<()> {
    let grace = options.grace;
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let clients = PerClient::new(options.max_connections_per_client.max(1));
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let closing = Arc::new(AtomicBool::new(false));
    let flag = closing.clone();
    let router = router.layer(axum::middleware::map_response(move |mut resp: Response| {
        let closing = flag.load(Ordering::Relaxed);
        async move {
            if closing {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }));
    let router = router.layer(axum::middleware::from_fn_with_state(
        options.header_read_timeout,
        bounded_body,
    ));
    let (close_idle, close_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let stop = crate::shutdown::stopped(shutdown.clone());
    tokio::pin!(stop);
    loop {
        // A slot first: at the cap, connections wait in the accept queue.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and the like: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(client) = clients.enter(peer.ip()) else {
                    tracing::debug!(%peer, "too many connections from this client; closed");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                // Each request knows its peer (`ConnectInfo`): the audit log, login throttling
                // and trusted proxies need it.
                let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                    router.clone(),
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                        req
                    },
                ));
                let close_rx = close_rx.clone();
                let header_timeout = options.header_read_timeout;
                let tls = options.tls.clone();
                conns.spawn(async move {
                    let (_slot, _client) = (slot, client);
                    match tls {
                        None => serve_connection(stream, service, header_timeout, close_rx).await,
                        Some(tls) => {
                            // The handshake counts against the header timeout too.
                            let accept = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
                            match tokio::time::timeout(header_timeout, accept).await {
                                Ok(Ok(stream)) => {
                                    serve_connection(stream, service, header_timeout, close_rx).await
                                }
                                Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                });
                while conns.try_join_next().is_some() {}
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    drain(conns, &closing, grace, &shutdown, close_idle).await;
    Ok(())
}

/// The largest body a request may have: axum's limit on every extractor that reads one.
const MAX_BODY: usize = 2 * 1024 * 1024;

/// Reads a request's body whole within `limit` before any handler sees it: a slow body is
/// answered 408 instead of holding its connection, a body past [`MAX_BODY`] 413.
async fn bounded_body(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|n| n.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let refuse = |status: StatusCode, message: String| {
        let body = serde_json::json!({"error": {"message": message}}).to_string();
        let mut resp = Response::new(axum::body::Body::from(body));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    };
    match tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => {
            let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            next.run(req).await
        }
        Ok(Err(_)) => refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {MAX_BODY} bytes (or broke off)"),
        ),
        Err(_) => refuse(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                limit.as_secs()
            ),
        ),
    }
}

/// The drain, in order: stop accepting (the caller dropped the listener), serve what is open
/// for `grace` closing each connection after its next response, then close the idle rest and
/// let in-flight requests finish.
async fn drain(
    mut conns: JoinSet<()>,
    closing: &AtomicBool,
    grace: Duration,
    shutdown: &Shutdown,
    close_idle: watch::Sender<bool>,
) {
    closing.store(true, Ordering::Relaxed);
    let grace = if *shutdown.borrow() == Some(Stop::Fast) {
        Duration::ZERO
    } else {
        grace
    };
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    let _ = close_idle.send(true);
    while conns.join_next().await.is_some() {}
}

/// Connections open per client address, shared by a listener's connections.
#[derive(Clone)]
struct PerClient {
    max: usize,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// One connection's place in its client's count, given back when it closes.
struct ClientSlot {
    clients: PerClient,
    ip: std::net::IpAddr,
}

impl PerClient {
    fn new(max: usize) -> PerClient {
        PerClient {
            max,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, unless it holds `max` already. The map
    /// holds only addresses with connections open, so it is bounded by `max_connections`.
    fn enter(&self, ip: std::net::IpAddr) -> Option<ClientSlot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.clients.open.lock() {
            if let Some(n) = open.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PerClient;

    #[test]
    fn one_client_holds_at_most_its_share_and_gets_it_back() {
        let clients = PerClient::new(2);
        let ip = "127.0.0.1".parse().expect("ip");
        let other = "127.0.0.2".parse().expect("ip");
        let a = clients.enter(ip).expect("first");
        let _b = clients.enter(ip).expect("second");
        assert!(clients.enter(ip).is_none(), "a third from the same client");
        assert!(clients.enter(other).is_some(), "another client");
        drop(a);
        assert!(clients.enter(ip).is_some(), "a place freed");
    }
}
