//! The executor registry. In cluster mode each executor process keeps a key under
//! `<prefix>/executors/<host>@<address>/<pid>` alive with an etcd lease, and every dispatcher watches the prefix to
//! keep the live set; standalone, the registry is just the local executor.
//!
//! etcd being away must not stop the fleet: an executor keeps serving and re-registers when
//! etcd returns; a dispatcher keeps firing to the last set it knew and resynchronises (a full
//! read, then a watch from that revision) when etcd returns. Both mark `etcd` degraded
//! meanwhile, which `/readyz` and the metrics show.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};

use super::{ClusterError, Dependencies, ExecutorInfo};
use crate::http::client::ServerNames;
use crate::shutdown::Shutdown;

/// Where and how to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster, e.g. `/cronvisor`.
    pub prefix: String,
    pub lease_ttl_secs: i64,
    /// Per-call timeout, and the keep-alive timeout that notices a vanished server.
    pub timeout: Duration,
    /// TLS and credentials.
    pub secure: super::secure::Secure,
    /// The cluster speaks TLS (`tls.cert_file`): an entry with an `http://` URL is a downgrade
    /// (whoever wrote it would get the RPC token in clear) and is refused.
    pub https_only: bool,
}

impl EtcdSettings {
    fn executors_prefix(&self) -> String {
        format!("{}/executors/", self.prefix.trim_end_matches('/'))
    }

    async fn connect(&self) -> Result<Client, ClusterError> {
        let options = self.secure.etcd_options(
            &self.endpoints,
            ConnectOptions::new()
                .with_connect_timeout(self.timeout)
                .with_timeout(self.timeout)
                .with_keep_alive(KEEP_ALIVE, self.timeout)
                .with_keep_alive_while_idle(true),
        );
        Client::connect(&self.endpoints, Some(options))
            .await
            .map_err(ClusterError::etcd(format!(
                "connecting to etcd {}",
                self.endpoints.join(",")
            )))
    }
}

/// HTTP/2 keep-alive pings on the etcd connection, to notice a vanished server while the watch
/// is idle. Stock etcd refuses clients that ping more often than its `--grpc-keepalive-min-time`
/// (5 s): it closes their connection (a 1 s ping dropped the watch every ~4.5 s). 6 s stays
/// within that default.
const KEEP_ALIVE: Duration = Duration::from_secs(6);

/// Delay between attempts to reach etcd again.
const RETRY: Duration = Duration::from_millis(500);

/// The executors a dispatcher may send runs to, sorted by id.
#[derive(Debug, Default)]
pub struct Registry {
    live: RwLock<Arc<Vec<ExecutorInfo>>>,
    loaded: std::sync::atomic::AtomicBool,
    /// Under TLS, each entry's address and the host identity its certificate must name.
    names: ServerNames,
    bind_names: bool,
}

/// The TLS name given to an address two entries claim for different hosts: no certificate
/// names it, so neither gets a run until one entry goes.
const CONFLICTING: &str = "conflicting-entries.invalid";

impl Registry {
    /// A registry filled from etcd; `https_only`: each executor must prove its host identity
    /// with its certificate (see [`Registry::server_names`]).
    pub fn watched(https_only: bool) -> Registry {
        Registry {
            bind_names: https_only,
            ..Registry::default()
        }
    }

    /// The names the dispatcher's client checks executors' certificates against: each
    /// entry's host identity by its URL's address (empty unless TLS is on in a cluster).
    pub fn server_names(&self) -> ServerNames {
        self.names.clone()
    }

    /// Binds each entry's address to its host identity, for the certificate check.
    fn bind(&self, list: &[ExecutorInfo]) {
        if !self.bind_names {
            return;
        }
        let mut names: HashMap<String, String> = HashMap::new();
        for e in list {
            let Some(authority) = e
                .url
                .parse::<hyper::Uri>()
                .ok()
                .and_then(|u| u.authority().map(|a| a.as_str().to_string()))
            else {
                continue;
            };
            match names.get(&authority) {
                Some(host) if host != &e.host => {
                    tracing::warn!(address = %authority, hosts = %format!("{host}, {}", e.host),
                        "two executor entries claim one address for different hosts: neither gets runs there");
                    names.insert(authority, CONFLICTING.to_string());
                }
                _ => {
                    names.insert(authority, e.host.clone());
                }
            }
        }
        self.names.set(names);
    }

    /// A registry that never changes: standalone mode's one local executor.
    pub fn fixed(executors: Vec<ExecutorInfo>) -> Arc<Registry> {
        let r = Registry::default();
        r.replace(executors.into_iter().map(|e| (e.id.clone(), e)).collect());
        Arc::new(r)
    }

    /// The current live set (a cheap snapshot).
    pub fn live(&self) -> Arc<Vec<ExecutorInfo>> {
        self.live
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Whether the set has been read at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fills a registry that etcd has not loaded yet (etcd away when this dispatcher started:
    /// a reload during an etcd outage) with executors known some other way; the first read
    /// of etcd replaces them. False when etcd got there first.
    pub fn seed(&self, executors: Vec<ExecutorInfo>) -> bool {
        let mut live = match self.live.write() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if self.is_loaded() {
            return false;
        }
        self.bind(&executors);
        *live = Arc::new(executors);
        true
    }

    /// Takes the registry's entries by key. Two processes of the same executor (the old and
    /// the new generation of a reload) count once.
    fn replace(&self, set: BTreeMap<String, ExecutorInfo>) {
        self.loaded
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let by_id: BTreeMap<String, ExecutorInfo> =
            set.into_values().map(|e| (e.id.clone(), e)).collect();
        let list: Vec<ExecutorInfo> = by_id.into_values().collect();
        self.bind(&list);
        match self.live.write() {
            Ok(mut l) => *l = Arc::new(list),
            Err(p) => *p.into_inner() = Arc::new(list),
        }
    }
}

/// Keeps `registry` equal to the executors registered in etcd until `shutdown`.
pub async fn watch(
    settings: EtcdSettings,
    registry: Arc<Registry>,
    deps: Arc<Dependencies>,
    shutdown: Shutdown,
) {
    let stop = crate::shutdown::stopped(shutdown);
    tokio::pin!(stop);
    loop {
        let error = tokio::select! {
            e = watch_once(&settings, &registry, &deps) => e,
            _ = &mut stop => return,
        };
        if deps.degrade("etcd", error.to_string()) {
            tracing::warn!(%error, executors = registry.live().len(),
                "etcd unreachable: firing to the last known executors");
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = &mut stop => return,
        }
    }
}

/// One session: a full read of the prefix, then its changes from that revision on. Returns the
/// error that ended it.
/// Reads and then follows the registry until something ends it; returns why.
async fn watch_once(
    settings: &EtcdSettings,
    registry: &Registry,
    deps: &Dependencies,
) -> ClusterError {
    let prefix = settings.executors_prefix();
    let mut client = match settings.connect().await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let read = match client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await
    {
        Ok(r) => r,
        Err(e) => return ClusterError::etcd(format!("reading {prefix}"))(e),
    };
    let revision = read.header().map(|h| h.revision()).unwrap_or(0);
    let mut set = BTreeMap::new();
    for kv in read.kvs() {
        if let Some(info) = parse(kv.value(), settings.https_only) {
            set.insert(String::from_utf8_lossy(kv.key()).to_string(), info);
        }
    }
    registry.replace(set.clone());
    if deps.restore("etcd") {
        tracing::info!(
            executors = set.len(),
            "etcd reachable again: executor set resynchronised"
        );
    } else {
        tracing::info!(executors = set.len(), "executor registry loaded from etcd");
    }
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = match client.watch(prefix.as_str(), Some(options)).await {
        Ok(s) => s,
        Err(e) => return ClusterError::etcd(format!("watching {prefix}"))(e),
    };
    loop {
        let message = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return ClusterError::Ended("etcd closed the watch".into()),
            Err(e) => return ClusterError::etcd(format!("watch on {prefix}"))(e),
        };
        if message.canceled() {
            return ClusterError::Ended(format!(
                "etcd cancelled the watch: {}",
                message.cancel_reason()
            ));
        }
        if message.events().is_empty() {
            continue;
        }
        for event in message.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).to_string();
            match event.event_type() {
                EventType::Put => match parse(kv.value(), settings.https_only) {
                    Some(info) => {
                        tracing::info!(executor = %info.id, url = %info.url, "executor registered");
                        set.insert(key, info);
                    }
                    None => tracing::warn!(%key, "ignoring an unreadable registry entry"),
                },
                EventType::Delete => {
                    if let Some(gone) = set.remove(&key) {
                        tracing::info!(executor = %gone.id, "executor left the registry");
                    }
                }
            }
        }
        registry.replace(set.clone());
    }
}

/// Resolves once `leave` is true (or its sender is gone).
async fn left(leave: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = leave.wait_for(|l| *l).await;
}

/// A registry entry, unless it is unreadable, its id is not of its host (`host@address`: an
/// entry cannot borrow another host's id), or (`https_only`) it names a cleartext URL.
fn parse(value: &[u8], https_only: bool) -> Option<ExecutorInfo> {
    let info: ExecutorInfo = serde_json::from_slice(value).ok()?;
    if info.id.split_once('@').map(|(host, _)| host) != Some(info.host.as_str()) {
        tracing::warn!(executor = %info.id, host = %info.host,
            "refusing an executor entry whose id is not of its host");
        return None;
    }
    if https_only && !info.url.starts_with("https://") {
        tracing::warn!(executor = %info.id, url = %info.url,
            "refusing an executor entry without https: the cluster is configured for TLS");
        return None;
    }
    Some(info)
}

/// Keeps this executor registered until `leave` turns true, then deletes its key (revokes the
/// lease) so that dispatchers stop sending it work before it drains.
pub async fn register(
    settings: EtcdSettings,
    info: ExecutorInfo,
    deps: Arc<Dependencies>,
    mut leave: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let error = register_once(&settings, &info, &deps, &mut leave).await;
        let Err(error) = error else { return };
        if deps.degrade("etcd", error.to_string()) {
            tracing::warn!(%error, "etcd unreachable: this executor keeps serving and will re-register");
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = left(&mut leave) => return,
        }
    }
}

async fn register_once(
    settings: &EtcdSettings,
    info: &ExecutorInfo,
    deps: &Dependencies,
    leave: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), ClusterError> {
    // One key per executor *process*: during a reload the old and the new executor of a host
    // are both registered for a moment, and either one leaving (drained, or rolled back)
    // removes only its own key.
    let key = format!(
        "{}{}/{}",
        settings.executors_prefix(),
        info.id,
        std::process::id()
    );
    let value = serde_json::to_vec(info).map_err(|source| ClusterError::Encode {
        what: "encoding the registration",
        source,
    })?;
    let mut client = settings.connect().await?;
    let lease = client
        .lease_grant(settings.lease_ttl_secs, None)
        .await
        .map_err(ClusterError::etcd("granting a lease"))?
        .id();
    client
        .put(
            key.as_str(),
            value,
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .map_err(ClusterError::etcd(format!("registering {key}")))?;
    if deps.restore("etcd") {
        tracing::info!(%key, "etcd reachable again: re-registered");
    } else {
        tracing::info!(%key, ttl = settings.lease_ttl_secs, "registered in etcd");
    }
    let (mut keeper, mut replies) = client
        .lease_keep_alive(lease)
        .await
        .map_err(ClusterError::etcd("keeping the lease alive"))?;
    let every = Duration::from_millis((settings.lease_ttl_secs as u64 * 1000 / 3).max(200));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                keeper.keep_alive().await.map_err(ClusterError::etcd("lease keep-alive"))?;
                match tokio::time::timeout(settings.timeout, replies.message()).await {
                    Ok(Ok(Some(r))) if r.ttl() > 0 => {}
                    Ok(Ok(Some(_))) => return Err(ClusterError::Ended("the lease expired".into())),
                    Ok(Ok(None)) => {
                        return Err(ClusterError::Ended("etcd closed the keep-alive stream".into()))
                    }
                    Ok(Err(e)) => return Err(ClusterError::etcd("lease keep-alive")(e)),
                    Err(_) => return Err(ClusterError::Ended("lease keep-alive timed out".into())),
                }
            }
            _ = left(leave) => {
                match tokio::time::timeout(settings.timeout, client.lease_revoke(lease)).await {
                    Ok(Ok(_)) => tracing::info!(%key, "left the registry"),
                    _ => tracing::warn!(%key, "could not leave the registry; the lease will expire"),
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_processes_of_one_executor_count_once() {
        let info = |url: &str| ExecutorInfo {
            id: "h@127.0.0.1:7071".into(),
            url: url.into(),
            host: "h".into(),
            groups: vec![],
            version: "t".into(),
            capacity: 1,
        };
        let r = Registry::default();
        assert!(!r.is_loaded());
        let mut set = BTreeMap::new();
        set.insert(
            "/c/executors/h@127.0.0.1:7071/10".to_string(),
            info("http://a"),
        );
        set.insert(
            "/c/executors/h@127.0.0.1:7071/11".to_string(),
            info("http://a"),
        );
        r.replace(set.clone());
        assert!(r.is_loaded());
        assert_eq!(r.live().len(), 1);
        // The old generation leaves: the new one is still there.
        set.remove("/c/executors/h@127.0.0.1:7071/10");
        r.replace(set);
        assert_eq!(r.live().len(), 1);
    }

    #[test]
    fn an_entry_proves_its_host_and_cannot_borrow_another_hosts_id() {
        let entry = |id: &str, host: &str, url: &str| {
            serde_json::json!({"id": id, "url": url, "host": host, "groups": [],
                "version": "t", "capacity": 1})
            .to_string()
        };
        let ok = entry("e1@127.0.0.1:7071", "e1", "https://127.0.0.1:7071");
        assert!(parse(ok.as_bytes(), true).is_some());
        let borrowed = entry("e1@127.0.0.1:7071", "e9", "https://127.0.0.1:7071");
        assert!(parse(borrowed.as_bytes(), true).is_none());
        let clear = entry("e1@127.0.0.1:7071", "e1", "http://127.0.0.1:7071");
        assert!(parse(clear.as_bytes(), true).is_none());
        // Under TLS each address must show a certificate naming its host; two hosts at one
        // address get a name no certificate has.
        let r = Registry::watched(true);
        let info = |id: &str, host: &str, url: &str| ExecutorInfo {
            id: id.into(),
            url: url.into(),
            host: host.into(),
            groups: vec![],
            version: "t".into(),
            capacity: 1,
        };
        r.seed(vec![
            info("e1@a", "e1", "https://127.0.0.1:7071"),
            info("e2@b", "e2", "https://127.0.0.1:7072"),
            info("e3@b", "e3", "https://127.0.0.1:7072"),
        ]);
        let names = r.server_names();
        let name = |url: &str| {
            use hyper_rustls::ResolveServerName;
            names
                .resolve(&url.parse().expect("uri"))
                .map(|n| n.to_str().to_string())
                .expect("a name")
        };
        assert_eq!(name("https://127.0.0.1:7071/rpc/v1/runs"), "e1");
        assert_eq!(name("https://127.0.0.1:7072/rpc/v1/runs"), CONFLICTING);
        // Not an executor's address: its URL's host.
        assert_eq!(name("https://127.0.0.1:9/x"), "127.0.0.1");
    }
}
