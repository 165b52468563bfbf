//! A small HTTP/1 client on hyper: the dispatcher's RPC to executors, the CLI's calls to the
//! API, HTTP jobs, webhooks and SMS gateways. http:// and https:// (rustls, see `tls`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{header, Method, Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::egress::{Egress, Resolver};
use super::tls::Trust;

/// A URL as an error may show it: its query and credentials (webhook and robot keys, tokens
/// in HTTP jobs' URLs) never reach a run's error, an alarm's last error or a log.
fn shown(url: &str) -> String {
    crate::model::masked_url(url)
}

/// What went wrong with a request; every URL in it is masked ([`shown`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL `{0}`")]
    Url(String),
    /// No connection could be made: the request was certainly not received.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The connection failed after it was made: the request may have been received.
    #[error("request to {url} failed: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} did not answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("reading the answer of {url}: {reason}")]
    Body { url: String, reason: String },
    /// The egress policy of HTTP jobs refuses the address (`http::egress`).
    #[error("cannot call {url}: {reason}")]
    Refused { url: String, reason: String },
}

#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>,
    timeout: Duration,
    /// HTTP jobs' egress policy (`None`: cronvisor's own calls, webhooks, gateways).
    egress: Option<Arc<Egress>>,
}

/// The names the servers at some addresses (`host:port`) must prove with their certificate,
/// shared with whoever knows them — the executor registry: an executor's certificate must name
/// its host identity, not only its URL's host, so that an entry written into etcd for another
/// host's runs is refused at the handshake. An address not listed is checked against its URL.
#[derive(Debug, Clone, Default)]
pub struct ServerNames(Arc<RwLock<HashMap<String, String>>>);

impl ServerNames {
    /// Replaces the whole map.
    pub fn set(&self, names: HashMap<String, String>) {
        match self.0.write() {
            Ok(mut m) => *m = names,
            Err(p) => *p.into_inner() = names,
        }
    }

    fn name_of(&self, authority: &str) -> Option<String> {
        let map = match self.0.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.get(authority).cloned()
    }
}

impl hyper_rustls::ResolveServerName for ServerNames {
    fn resolve(
        &self,
        uri: &hyper::Uri,
    ) -> Result<rustls::pki_types::ServerName<'static>, Box<dyn std::error::Error + Sync + Send>>
    {
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let name = match self.name_of(authority) {
            Some(name) => name,
            None => uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        };
        rustls::pki_types::ServerName::try_from(name).map_err(|e| Box::new(e) as _)
    }
}

/// A response: status and body bytes.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl HttpClient {
    /// A client whose https connections trust `trust`; `timeout` bounds connecting and each
    /// whole request (not `request_streaming`).
    pub fn new(timeout: Duration, trust: &Trust) -> HttpClient {
        HttpClient::with_connect_timeout(timeout, timeout, trust)
    }

    /// As [`HttpClient::new`], with connecting bounded apart: a connect that hangs (packets
    /// dropped, not refused) fails after `connect` and counts as "never sent", so a caller
    /// can try elsewhere while its own budget lasts.
    pub fn with_connect_timeout(timeout: Duration, connect: Duration, trust: &Trust) -> HttpClient {
        HttpClient::build(timeout, connect, trust, None, None)
    }

    /// As [`HttpClient::with_connect_timeout`], each server's certificate checked against the
    /// name `names` gives its address (the dispatcher's client of executors).
    pub fn naming(
        timeout: Duration,
        connect: Duration,
        trust: &Trust,
        names: ServerNames,
    ) -> HttpClient {
        HttpClient::build(timeout, connect, trust, None, Some(names))
    }

    /// The client of HTTP jobs: every address checked against `egress` (after resolution, and
    /// for an IP literal before it), so that a job cannot call loopback or metadata services.
    pub fn for_jobs(timeout: Duration, trust: &Trust, egress: Egress) -> HttpClient {
        HttpClient::build(timeout, timeout, trust, Some(Arc::new(egress)), None)
    }

    fn build(
        timeout: Duration,
        connect: Duration,
        trust: &Trust,
        egress: Option<Arc<Egress>>,
        names: Option<ServerNames>,
    ) -> HttpClient {
        let mut connector = HttpConnector::new_with_resolver(Resolver::new(egress.clone()));
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect.min(timeout)));
        // The TLS layer sees the URL's scheme, so the inner connector must not refuse https.
        connector.enforce_http(false);
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(trust.client_config())
            .https_or_http();
        let builder = match names {
            Some(names) => builder.with_server_name_resolver(names),
            None => builder,
        };
        let connector = builder.enable_http1().wrap_connector(connector);
        // Below the servers' `http.header_read_timeout` (20 s), which closes idle connections:
        // a connection is never reused just as the server closes it.
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(10))
            .build(connector);
        HttpClient {
            inner,
            timeout,
            egress,
        }
    }

    /// The egress policy's refusal of `url`'s IP literal, if any.
    fn refused(&self, url: &str) -> Result<(), ClientError> {
        match self.egress.as_ref().and_then(|e| e.refusal(url)) {
            Some(reason) => Err(ClientError::Refused {
                url: shown(url),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        json: Option<Vec<u8>>,
    ) -> Result<Reply, ClientError> {
        let mut headers = Vec::new();
        if let Some(t) = token {
            headers.push((header::AUTHORIZATION.to_string(), format!("Bearer {t}")));
        }
        if json.is_some() {
            headers.push((
                header::CONTENT_TYPE.to_string(),
                "application/json".to_string(),
            ));
        }
        self.request(method, url, &headers, json.unwrap_or_default())
            .await
    }

    /// Sends a request with arbitrary headers and body.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Reply, ClientError> {
        self.refused(url)?;
        let mut builder = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let body = Full::new(Bytes::from(body));
        let req = builder
            .body(body)
            .map_err(|_| ClientError::Url(shown(url)))?;
        let fut = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| request_error(url, &e))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Body {
                    url: shown(url),
                    reason: e.to_string(),
                })?
                .to_bytes();
            Ok(Reply { status, body })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout {
                url: shown(url),
                secs: self.timeout.as_secs(),
            })?
    }
}

impl HttpClient {
    /// Sends a request and streams the answer's body into `on_chunk` (so a large answer is
    /// never held whole); returns the status. No overall timeout: the caller bounds it.
    pub async fn request_streaming(
        &self,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        on_chunk: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<StatusCode, ClientError> {
        self.refused(url)?;
        let mut builder = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let req = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| ClientError::Url(shown(url)))?;
        let resp = self
            .inner
            .request(req)
            .await
            .map_err(|e| request_error(url, &e))?;
        let status = resp.status();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Body {
                url: shown(url),
                reason: e.to_string(),
            })?;
            if let Some(data) = frame.data_ref() {
                on_chunk(data);
            }
        }
        Ok(status)
    }
}

pub use crate::model::check_url;

impl ClientError {
    /// True when the request certainly never reached the server, so sending it elsewhere
    /// cannot make it run twice.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. } | ClientError::Url(_) | ClientError::Refused { .. }
        )
    }
}

fn request_error(url: &str, e: &hyper_util::client::legacy::Error) -> ClientError {
    let reason = error_chain(e);
    let url = shown(url);
    if e.is_connect() {
        ClientError::Unreachable { url, reason }
    } else {
        ClientError::Connect { url, reason }
    }
}

/// The error and its sources on one line ("client error (Connect): Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
