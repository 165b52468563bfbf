//! Spawning one role child: its own sockets at fds 3.. (`LISTEN_FDS`/`LISTEN_FDNAMES`), a
//! private `NOTIFY_SOCKET`, and nothing else inherited.
//!
//! No `PR_SET_PDEATHSIG` here: it fires when the *thread* that forked the child exits, and an
//! exec-in-place self-upgrade ends every thread but one. A role instead watches its parent pid
//! and drains when it changes (see `roles::runtime`), which also covers a supervisor killed by
//! SIGKILL.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use command_fds::{CommandFdExt, FdMapping};
use tokio::process::{Child, Command};

use crate::listeners::Listeners;

/// How to start one role.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Role name, for logs and status (`dispatcher`, `executor`, `monitor`).
    pub role: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    /// Names of the supervisor's listeners this child gets, in fd order from 3.
    pub listeners: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{role}: no listener named `{name}`")]
    NoListener { role: String, name: String },
    #[error("{role}: duplicating listener `{name}`: {source}")]
    Dup {
        role: String,
        name: String,
        source: std::io::Error,
    },
    #[error("{role}: two listeners mapped to the same fd")]
    Collision { role: String },
    #[error("{role}: cannot start {program}: {source}")]
    Exec {
        role: String,
        program: String,
        source: std::io::Error,
    },
}

/// Makes the spawned process close every descriptor from `first` up before it execs, so that
/// nothing the parent inherited without close-on-exec (from a shell, a test runner, a service
/// manager) is passed on. Used for the roles and for the executor's jobs.
pub fn close_fds_from_on_exec(cmd: &mut Command, first: u32) {
    // SAFETY: the closure runs in the forked child before exec and makes one raw syscall,
    // which is async-signal-safe; it allocates nothing. Closing descriptors the child does not
    // use cannot invalidate anything it still relies on (the exec follows).
    unsafe {
        cmd.pre_exec(move || {
            // close_range(2) exists since Linux 5.9; on an older kernel the call fails with
            // ENOSYS and nothing is closed, which is the behaviour without this hook.
            let _ = libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32);
            Ok(())
        });
    }
}

/// Marks every open descriptor from `first` up close-on-exec, once, at start-up. A process that
/// spawns many children (the executor) calls this instead of [`close_fds_from_on_exec`]: a
/// `pre_exec` hook makes the standard library fork instead of `posix_spawn`, which costs a
/// great deal of spawn throughput in a multi-threaded process.
pub fn cloexec_from(first: i32) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // The directory's own fd is listed too and may be closed by now: errors are ignored.
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
}

pub fn spawn(spec: &ChildSpec, listeners: &Listeners, notify: &Path) -> Result<Child, SpawnError> {
    let mut mappings = Vec::with_capacity(spec.listeners.len());
    for (i, name) in spec.listeners.iter().enumerate() {
        let fd = listeners
            .dup(name)
            .ok_or_else(|| SpawnError::NoListener {
                role: spec.role.clone(),
                name: name.clone(),
            })?
            .map_err(|source| SpawnError::Dup {
                role: spec.role.clone(),
                name: name.clone(),
                source,
            })?;
        mappings.push(FdMapping {
            parent_fd: fd,
            child_fd: 3 + i as i32,
        });
    }
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("LISTEN_PID")
        .env("LISTEN_FDS", spec.listeners.len().to_string())
        .env("LISTEN_FDNAMES", spec.listeners.join(":"))
        .env("NOTIFY_SOCKET", notify)
        .kill_on_drop(true);
    let first_unmapped = 3 + mappings.len() as u32;
    cmd.fd_mappings(mappings)
        .map_err(|_| SpawnError::Collision {
            role: spec.role.clone(),
        })?;
    // Runs after the mappings: the child keeps 0-2 and its sockets, nothing else.
    close_fds_from_on_exec(&mut cmd, first_unmapped);
    cmd.spawn().map_err(|source| SpawnError::Exec {
        role: spec.role.clone(),
        program: spec.program.display().to_string(),
        source,
    })
}
