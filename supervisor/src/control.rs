//! The local control socket (`<data_dir>/run/control.sock`, mode 0600): one JSON request line,
//! one JSON answer line. `{"cmd":"reload"}` answers when the new generation serves or was rolled
//! back; `{"cmd":"status"}` answers at once.
//!
//! The socket is created 0600 (under a 0077 umask, not chmod after bind: no window where others
//! may connect), and each peer's uid is checked (the supervisor's own user or root); a client
//! must send its line within [`REQUEST_TIMEOUT`], and accept errors (EMFILE) back off.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::supervise::Request;

/// How long a control client has to send its request line.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
pub struct Command {
    pub cmd: String,
}

/// Binds the socket (replacing a stale one) and serves it until the process ends; the path
/// is removed when the returned guard drops.
pub fn serve(path: &Path, requests: mpsc::Sender<Request>) -> std::io::Result<SocketGuard> {
    let _ = std::fs::remove_file(path);
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(umask);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let me = nix::unistd::getuid().as_raw();
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            match stream.peer_cred().map(|c| c.uid()) {
                Ok(uid) if uid == me || uid == 0 => {}
                other => {
                    tracing::warn!(peer = ?other, "control connection from another user refused");
                    continue;
                }
            }
            let requests = requests.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, requests).await {
                    tracing::warn!(error = %e, "control connection failed");
                }
            });
        }
    });
    Ok(SocketGuard(path.to_path_buf()))
}

pub struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn answer(stream: UnixStream, requests: mpsc::Sender<Request>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A request is one short line; anything longer is not ours; a silent client is let go.
    let n = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        BufReader::new(read.take(4096)).read_line(&mut line),
    )
    .await
    {
        Ok(n) => n?,
        Err(_) => return Ok(()),
    };
    if n == 0 {
        return Ok(());
    }
    let reply = match serde_json::from_str::<Command>(line.trim()) {
        Ok(c) if c.cmd == "reload" => {
            let (tx, rx) = oneshot::channel();
            let _ = requests.send(Request::Reload { reply: Some(tx) }).await;
            match rx.await {
                Ok(outcome) => serde_json::to_value(outcome),
                Err(_) => Ok(serde_json::json!({"ok": false, "message": "supervisor stopping"})),
            }
        }
        Ok(c) if c.cmd == "upgrade" => {
            let (tx, rx) = oneshot::channel();
            let _ = requests.send(Request::Upgrade { reply: tx }).await;
            // Answered only on failure; on success this process image is replaced and the
            // caller sees the connection close.
            match rx.await {
                Ok(outcome) => serde_json::to_value(outcome),
                Err(_) => Ok(serde_json::json!({"ok": false, "message": "supervisor stopping"})),
            }
        }
        Ok(c) if c.cmd == "status" => {
            let (tx, rx) = oneshot::channel();
            let _ = requests.send(Request::Status { reply: tx }).await;
            serde_json::to_value(rx.await.ok().flatten())
        }
        Ok(c) => {
            Ok(serde_json::json!({"ok": false, "message": format!("unknown command `{}`", c.cmd)}))
        }
        Err(e) => Ok(serde_json::json!({"ok": false, "message": format!("bad request: {e}")})),
    }
    .unwrap_or_else(|e| serde_json::json!({"ok": false, "message": e.to_string()}));
    let mut text = reply.to_string();
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

/// The client side: sends one command and returns the answer line.
pub async fn call(path: &Path, cmd: &str) -> std::io::Result<serde_json::Value> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut req = serde_json::to_string(&Command {
        cmd: cmd.to_string(),
    })?;
    req.push('\n');
    write.write_all(req.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    serde_json::from_str(line.trim()).map_err(std::io::Error::other)
}
