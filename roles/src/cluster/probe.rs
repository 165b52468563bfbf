//! The monitor's view of the cluster's outside dependencies: etcd and Redis are probed every
//! few seconds and the result kept in [`Dependencies`], from which the monitor raises one alarm
//! when one goes away and one when it returns.

use std::sync::Arc;
use std::time::Duration;

use super::{ClusterError, Dependencies};
use crate::config::ClusterConfig;
use crate::shutdown::Shutdown;

/// How often the dependencies are probed.
const EVERY: Duration = Duration::from_secs(2);

/// The dependencies `watch` probes under `cfg`.
pub fn probed(cfg: &ClusterConfig) -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg.redis_url.is_some() {
        names.push("redis");
    }
    if cfg.enabled() {
        names.push("etcd");
    }
    names
}

pub async fn watch(
    cfg: ClusterConfig,
    secure: super::secure::Secure,
    deps: Arc<Dependencies>,
    shutdown: Shutdown,
) {
    let timeout = cfg.call_timeout;
    let stop = crate::shutdown::stopped(shutdown);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(EVERY);
    // One connection each, kept while it answers and dropped on the first error (the next
    // probe connects afresh), so a healthy cluster costs one round trip per probe.
    let mut redis_conn = None;
    let mut etcd_client = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return,
        }
        if let Some(url) = &cfg.redis_url {
            let outcome = redis(&secure, url, timeout, &mut redis_conn).await;
            record(&deps, "redis", outcome);
        }
        if cfg.enabled() {
            let outcome = etcd(&secure, &cfg.etcd_endpoints, timeout, &mut etcd_client).await;
            record(&deps, "etcd", outcome);
        }
        deps.mark_probed();
    }
}

fn record(deps: &Dependencies, name: &'static str, outcome: Result<(), ClusterError>) {
    match outcome {
        Ok(()) => {
            deps.restore(name);
        }
        Err(e) => {
            deps.degrade(name, e.to_string());
        }
    }
}

async fn redis(
    secure: &super::secure::Secure,
    url: &str,
    timeout: Duration,
    kept: &mut Option<redis::aio::MultiplexedConnection>,
) -> Result<(), ClusterError> {
    let mut conn = match kept.take() {
        Some(c) => c,
        None => {
            let client = secure.redis_client(url)?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout));
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(ClusterError::redis("redis unreachable"))?
        }
    };
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(ClusterError::redis("redis PING"))?;
    *kept = Some(conn);
    Ok(())
}

async fn etcd(
    secure: &super::secure::Secure,
    endpoints: &[String],
    timeout: Duration,
    kept: &mut Option<etcd_client::Client>,
) -> Result<(), ClusterError> {
    let mut client = match kept.take() {
        Some(c) => c,
        None => {
            let options = secure.etcd_options(
                endpoints,
                etcd_client::ConnectOptions::new()
                    .with_connect_timeout(timeout)
                    .with_timeout(timeout),
            );
            etcd_client::Client::connect(endpoints, Some(options))
                .await
                .map_err(ClusterError::etcd("etcd unreachable"))?
        }
    };
    client
        .status()
        .await
        .map_err(ClusterError::etcd("etcd status"))?;
    *kept = Some(client);
    Ok(())
}
