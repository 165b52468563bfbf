//! The CLI's side of the monitor API: finds the URL and token, sends JSON, and turns an error
//! body into a message that names the field.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use cronvisor_roles::config::Config;
use cronvisor_roles::http::client::HttpClient;
use cronvisor_roles::http::ErrorBody;
use cronvisor_roles::tokens;
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::cli::Cli;

pub struct Api {
    client: HttpClient,
    base: String,
    token: String,
}

impl Api {
    /// URL: `--api-url` / `CRONVISOR_API_URL`, else `<data_dir>/endpoints.json` written by `up`,
    /// else the configured `api` listener. Token: `CRONVISOR_TOKEN`, else `<data_dir>/api.token`.
    pub fn from_cli(cli: &Cli, config: &Config) -> anyhow::Result<Api> {
        let chosen = cli.api_url.is_some()
            || cli.config.is_some()
            || cli.data_dir.is_some()
            || std::env::var_os("CRONVISOR_DATA_DIR").is_some();
        if !chosen {
            trust_default_data_dir(&config.data_dir)?;
        }
        let base = match &cli.api_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let from_file = std::fs::read(config.data_dir.join("endpoints.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v.get("api").and_then(|a| a.as_str()).map(str::to_string));
                let addr = from_file
                    .or_else(|| config.listeners.get("api").map(|a| a.to_string()))
                    .ok_or_else(|| anyhow!("no API address: pass --api-url"))?;
                format!("{}://{addr}", config.tls.scheme())
            }
        };
        let token = tokens::load(&config.data_dir, tokens::API)?;
        Ok(Api {
            client: HttpClient::new(
                Duration::from_secs(30),
                &cronvisor_roles::http::tls::Trust::load(config.tls.ca_file.as_deref())?,
            ),
            base,
            token,
        })
    }

    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<T> {
        let raw = self.call_raw(method, path, body).await?;
        serde_json::from_slice(&raw).context("decoding the API's answer")
    }

    /// Sends the request; a non-2xx answer becomes an error with the API's message.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let body = body.map(|b| serde_json::to_vec(&b)).transpose()?;
        let reply = self
            .client
            .send(method, &url, Some(&self.token), body)
            .await
            .with_context(|| format!("is cronvisor up? (API {})", self.base))?;
        if reply.status.is_success() {
            return Ok(reply.body.to_vec());
        }
        if reply.status == StatusCode::UNAUTHORIZED {
            bail!("the API refused the token (check CRONVISOR_TOKEN or <data_dir>/api.token)");
        }
        match serde_json::from_slice::<ErrorBody>(&reply.body) {
            Ok(e) => match e.error.field {
                Some(f) => bail!("{f}: {}", e.error.message),
                None => bail!("{}", e.error.message),
            },
            Err(_) => bail!(
                "API answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ),
        }
    }
}

impl Api {
    /// A GET whose answer is read as it arrives (Server-Sent Events), from `last_event_id` if
    /// given; the status, once the answer ended.
    pub async fn stream(
        &self,
        path: &str,
        last_event_id: Option<&str>,
        on_chunk: &mut (dyn FnMut(&[u8]) + Send),
    ) -> anyhow::Result<StatusCode> {
        let url = format!("{}{path}", self.base);
        let mut headers = vec![
            (
                "authorization".to_string(),
                format!("Bearer {}", self.token),
            ),
            ("accept".to_string(), "text/event-stream".to_string()),
        ];
        if let Some(id) = last_event_id {
            headers.push(("last-event-id".to_string(), id.to_string()));
        }
        Ok(self
            .client
            .request_streaming(Method::GET, &url, &headers, Vec::new(), on_chunk)
            .await?)
    }
}

/// The default data dir (`./var`, relative to wherever the CLI runs) names the API address and
/// the token the CLI sends: it is used only if this user owns it and nobody else can write it,
/// so a directory planted in a shared place cannot lure the token to another server.
fn trust_default_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(()); // not there: the token read fails with its own message
    };
    let me = nix::unistd::getuid().as_raw();
    if meta.uid() != me {
        bail!(
            "refusing the data dir {}: it belongs to uid {}, not to you (uid {me}); pass \
             --data-dir, --config or --api-url to choose one",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "refusing the data dir {}: others can write it (mode {:o}); `chmod 700` it or pass \
             --data-dir",
            dir.display(),
            meta.mode() & 0o777
        );
    }
    Ok(())
}

/// Percent-encodes a path segment (job names are plain, but ids and names pass through here).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
