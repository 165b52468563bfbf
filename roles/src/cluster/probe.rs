//! The monitor's view of the cluster's outside dependencies: etcd and Redis are probed every
//! few seconds and the result kept in [`Dependencies`], from which the monitor raises one alarm
//! when one goes away and one when it returns.

use std::sync::Arc;
use std::time::Duration;

use super::Dependencies;
use crate::config::ClusterConfig;
use crate::runtime::Shutdown;

/// How often the dependencies are probed.
const EVERY: Duration = Duration::from_secs(2);

pub async fn watch(cfg: ClusterConfig, deps: Arc<Dependencies>, shutdown: Shutdown) {
    let timeout = Duration::from_millis(cfg.call_timeout_ms);
    let stop = crate::runtime::stopped(shutdown);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return,
        }
        if !cfg.redis_url.is_empty() {
            record(&deps, "redis", redis(&cfg.redis_url, timeout).await);
        }
        if cfg.enabled() {
            record(&deps, "etcd", etcd(&cfg.etcd_endpoints, timeout).await);
        }
    }
}

fn record(deps: &Dependencies, name: &'static str, outcome: Result<(), String>) {
    match outcome {
        Ok(()) => {
            deps.restore(name);
        }
        Err(e) => {
            deps.degrade(name, e);
        }
    }
}

async fn redis(url: &str, timeout: Duration) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| format!("redis unreachable: {e}"))?;
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("redis PING: {e}"))?;
    Ok(())
}

async fn etcd(endpoints: &[String], timeout: Duration) -> Result<(), String> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout);
    let mut client = etcd_client::Client::connect(endpoints, Some(options))
        .await
        .map_err(|e| format!("etcd unreachable: {e}"))?;
    client
        .status()
        .await
        .map_err(|e| format!("etcd status: {e}"))?;
    Ok(())
}
