//! Self-upgrade: the supervisor re-executes itself from the binary now on disk, keeping its
//! PID, its listening sockets and its running children. What the new image needs (listener fds,
//! the serving generation and its children) crosses the exec through a pipe whose read end is
//! the one inherited fd named in `CRONVISOR_UPGRADE_STATE_FD`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use serde::{Deserialize, Serialize};

pub const STATE_ENV: &str = "CRONVISOR_UPGRADE_STATE_FD";

/// How to re-execute: the binary path, the arguments of the running `up`, and the arguments of
/// the dry-run that must pass first.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub check_args: Vec<OsString>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdoptedChild {
    pub role: String,
    pub pid: u32,
    pub started_at: i64,
    pub restarts: u64,
}

/// What one image hands the next.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeState {
    pub from_version: String,
    pub generation: u64,
    pub listeners: Vec<(String, RawFd)>,
    pub children: Vec<AdoptedChild>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("{STATE_ENV}=`{0}` is not an fd number")]
    BadFd(String),
    #[error("reading the upgrade state: {0}")]
    Read(std::io::Error),
    #[error("decoding the upgrade state: {0}")]
    Decode(serde_json::Error),
}

/// The state left by the previous image, if this start is an upgrade. Call it at start-up,
/// before other threads exist (it edits the environment).
pub fn take_state() -> Result<Option<UpgradeState>, UpgradeError> {
    let Ok(value) = std::env::var(STATE_ENV) else {
        return Ok(None);
    };
    std::env::remove_var(STATE_ENV);
    let fd: RawFd = value
        .trim()
        .parse()
        .map_err(|_| UpgradeError::BadFd(value.clone()))?;
    fcntl(fd, FcntlArg::F_GETFD).map_err(|e| UpgradeError::Read(e.into()))?;
    // SAFETY: the fd is open (checked above) and is the pipe's read end that the previous
    // image left us for exactly this purpose; nothing else in this process refers to it.
    let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut text = String::new();
    std::fs::File::from(pipe)
        .read_to_string(&mut text)
        .map_err(UpgradeError::Read)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(UpgradeError::Decode)
}

/// Runs the new binary's dry-run (`up --check`) with a deadline; the reason on failure.
pub async fn dry_run(spec: &ExecSpec, limit: Duration) -> Result<(), String> {
    let run = tokio::process::Command::new(&spec.program)
        .args(&spec.check_args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(limit, run).await {
        Err(_) => Err(format!(
            "dry-run did not finish within {} s",
            limit.as_secs()
        )),
        Ok(Err(e)) => Err(format!("cannot run {}: {e}", spec.program.display())),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "dry-run of {} failed ({}): {}",
            spec.program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

fn set_cloexec(fd: RawFd, on: bool) -> std::io::Result<()> {
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))
        .map(|_| ())
        .map_err(std::io::Error::from)
}

/// Replaces this process image with `spec.program`, handing over `state`. Returns only on
/// failure, with every fd's close-on-exec flag restored.
pub fn exec(spec: &ExecSpec, state: &UpgradeState) -> std::io::Error {
    let result = (|| -> std::io::Result<std::io::Error> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let text = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        // The state is a few hundred bytes: far below the pipe's buffer, so this cannot block.
        std::fs::File::from(write).write_all(&text)?;
        let mut kept: Vec<RawFd> = state.listeners.iter().map(|(_, fd)| *fd).collect();
        kept.push(read.as_raw_fd());
        for fd in &kept {
            set_cloexec(*fd, false)?;
        }
        let err = std::process::Command::new(&spec.program)
            .args(&spec.args)
            .env(STATE_ENV, read.as_raw_fd().to_string())
            .exec();
        for fd in &kept {
            let _ = set_cloexec(*fd, true);
        }
        Ok(err)
    })();
    match result {
        Ok(e) | Err(e) => e,
    }
}
