//! Adopting sockets passed with the systemd protocol: fds 3.. with `LISTEN_FDS` = count,
//! `LISTEN_FDNAMES` = colon-separated names and, when set, `LISTEN_PID` = our pid.
//!
//! Used by the supervisor (sockets from systemd) and by every role (sockets from the
//! supervisor). Adopted fds are marked close-on-exec at once, so they never leak into a job the
//! executor spawns.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

const FIRST_FD: RawFd = 3;

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("LISTEN_FDS=`{0}` is not a number")]
    BadCount(String),
    #[error("LISTEN_FDNAMES has {names} names for {fds} fds")]
    NameCount { names: usize, fds: usize },
    #[error("inherited fd {fd} ({name}) is not open: {source}")]
    NotOpen {
        fd: RawFd,
        name: String,
        source: nix::Error,
    },
    #[error("no inherited socket named `{0}` (LISTEN_FDNAMES lists: {1})")]
    Missing(String, String),
}

/// Sockets inherited by name.
#[derive(Debug, Default)]
pub struct Inherited {
    fds: Vec<(String, OwnedFd)>,
}

impl Inherited {
    /// Takes the sockets described by the environment and removes the variables, so that
    /// nothing this process spawns believes the sockets are its own. Call it at start-up,
    /// before other threads exist (it edits the environment).
    pub fn from_env() -> Result<Inherited, ActivationError> {
        let pid_ok = match std::env::var("LISTEN_PID") {
            Ok(p) => p.trim() == std::process::id().to_string(),
            Err(_) => true,
        };
        let count = std::env::var("LISTEN_FDS").ok();
        let names = std::env::var("LISTEN_FDNAMES").ok();
        for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(var);
        }
        let Some(count) = count else {
            return Ok(Inherited::default());
        };
        if !pid_ok {
            return Ok(Inherited::default());
        }
        let n: usize = count
            .trim()
            .parse()
            .map_err(|_| ActivationError::BadCount(count.clone()))?;
        let names: Vec<String> = match names {
            Some(s) if !s.is_empty() => s.split(':').map(str::to_string).collect(),
            _ => (0..n)
                .map(|i| format!("fd{}", FIRST_FD as usize + i))
                .collect(),
        };
        if names.len() != n {
            return Err(ActivationError::NameCount {
                names: names.len(),
                fds: n,
            });
        }
        let mut fds = Vec::with_capacity(n);
        for (i, name) in names.into_iter().enumerate() {
            let fd = FIRST_FD + i as RawFd;
            // Check that the fd is open before taking ownership of it.
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).map_err(|source| {
                ActivationError::NotOpen {
                    fd,
                    name: name.clone(),
                    source,
                }
            })?;
            // SAFETY: the fd is open (checked just above), was passed to us by our parent under
            // the LISTEN_FDS protocol, and nothing else in this process owns it: we take it
            // exactly once, here, before any other code could have used fds 3..3+n.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            fds.push((name, owned));
        }
        Ok(Inherited { fds })
    }

    /// Sockets handed over by a previous image of the supervisor (self-upgrade), by fd number.
    pub fn from_fds(fds: &[(String, RawFd)]) -> Result<Inherited, ActivationError> {
        let mut out = Vec::with_capacity(fds.len());
        for (name, fd) in fds {
            nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_GETFD).map_err(|source| {
                ActivationError::NotOpen {
                    fd: *fd,
                    name: name.clone(),
                    source,
                }
            })?;
            // SAFETY: the fd is open (checked above); the previous image cleared its
            // close-on-exec flag only to hand it to us, and nothing else here owns it.
            let owned = unsafe { OwnedFd::from_raw_fd(*fd) };
            let _ = nix::fcntl::fcntl(
                *fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            out.push((name.clone(), owned));
        }
        Ok(Inherited { fds: out })
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.fds.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Removes and returns the socket called `name`.
    pub fn take(&mut self, name: &str) -> Option<OwnedFd> {
        let i = self.fds.iter().position(|(n, _)| n == name)?;
        Some(self.fds.remove(i).1)
    }

    /// Removes the socket called `name` as a non-blocking std listener, ready for tokio.
    pub fn take_tcp_listener(
        &mut self,
        name: &str,
    ) -> Result<std::net::TcpListener, ActivationError> {
        let listed = self.names().join(", ");
        let fd = self
            .take(name)
            .ok_or_else(|| ActivationError::Missing(name.to_string(), listed))?;
        let listener = std::net::TcpListener::from(fd);
        let _ = listener.set_nonblocking(true);
        Ok(listener)
    }
}
