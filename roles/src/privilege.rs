//! Who a job runs as, and what it keeps of cronvisor's privileges.
//!
//! A job is the one thing cronvisor runs that its operators wrote, so it must never run with an
//! identity that can read what the roles hold: the tokens and the SQLite store in the data dir
//! (mode 0700, the roles' user), the roles' environment and memory (`/proc/PID/environ`,
//! ptrace), the control socket. The roles make themselves non-dumpable at start
//! ([`protect_process`]), which takes `/proc/PID/*` and ptrace away from every other process of
//! their user; and the executor runs jobs as `executor.run_as`, another user. Becoming another
//! user takes root, or — under the shipped systemd unit, which runs cronvisor as its own user —
//! `CAP_SETUID` and `CAP_SETGID` (with `CAP_KILL` to stop the job's process group) as ambient
//! capabilities. A job's process drops every capability before exec ([`JobCredentials`]), so
//! the capabilities that let the executor switch users never reach a job.
//!
//! Where none of that is possible (a person's own `cronvisor up`), jobs run as the roles' user:
//! [`Separation::None`], said loudly at start, and the monitor keeps to admin-only mode (no
//! operator, viewer or scoped token, whose boundary a job could step over).

use std::ffi::CString;

/// Capability numbers (`linux/capability.h`).
const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// The unprivileged user a job runs as (`executor.run_as`, or the job's own `run_as`).
#[derive(Debug, Clone)]
pub struct RunAs {
    pub user: nix::unistd::User,
    /// Its groups (`getgrouplist`: the primary one and every group that lists it), set before
    /// exec so a job has its user's supplementary groups and none of the executor's.
    pub groups: Vec<libc::gid_t>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunAsError {
    #[error("executor.run_as: no user `{0}` on this host")]
    NoSuchUser(String),
    #[error("executor.run_as: looking up `{0}`: {1}")]
    Lookup(String, #[source] nix::Error),
    #[error(
        "jobs would run as this executor's own user (uid {uid}), which holds the RPC token and \
         the store's credentials; {how}. In cluster mode an executor does not start so \
         (docs/SECURITY.md, \"Privilege separation\")"
    )]
    NotSeparated { uid: u32, how: String },
    #[error(
        "jobs run as `{0}`, but this executor could not stop them: it is not root and lacks \
         CAP_KILL (add it beside CAP_SETUID and CAP_SETGID)"
    )]
    CannotKill(String),
}

/// Why a job's run fails before it starts, when the job names its own user.
#[derive(Debug, thiserror::Error)]
pub enum JobUserError {
    #[error("run_as `{0}` is not in this executor's executor.allowed_users")]
    NotAllowed(String),
    #[error(
        "run_as `{user}` is not in this executor's executor.allowed_users nor in \
         executor.allowed_users_by_group.{group}"
    )]
    NotAllowedForGroup { user: String, group: String },
    #[error("run_as `{0}`: this executor cannot switch users (not root, no CAP_SETUID)")]
    CannotSwitch(String),
    #[error("{0}")]
    Resolve(#[from] RunAsError),
}

/// What keeps jobs from the roles' secrets on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Separation {
    /// Jobs run as `user`, another user than the roles'.
    User { user: String },
    /// `run_as = "root"` under a root executor: the admin's explicit choice; a job can read
    /// everything, as any root process can.
    RootByChoice,
    /// Jobs run as the roles' own user: nothing keeps them from its secrets.
    None { reason: String },
}

impl Separation {
    /// Whether the roles' secrets are out of a job's reach (or put in reach on purpose).
    pub fn kept(&self) -> bool {
        !matches!(self, Separation::None { .. })
    }
}

/// The capability sets of this process (`/proc/self/status`), as bit masks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    pub effective: u64,
    pub permitted: u64,
    pub ambient: u64,
    pub inheritable: u64,
}

impl Caps {
    pub fn current() -> Caps {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0)
        };
        Caps {
            effective: field("CapEff:"),
            permitted: field("CapPrm:"),
            ambient: field("CapAmb:"),
            inheritable: field("CapInh:"),
        }
    }

    fn has(self, cap: u32) -> bool {
        self.effective & (1 << cap) != 0
    }

    /// Whether this process can become another user (root, or `CAP_SETUID` + `CAP_SETGID`).
    pub fn can_switch_users(self) -> bool {
        nix::unistd::geteuid().is_root() || (self.has(CAP_SETUID) && self.has(CAP_SETGID))
    }

    /// Whether this non-root process holds a capability a job must not inherit.
    pub fn any_to_drop(self) -> bool {
        !nix::unistd::geteuid().is_root()
            && (self.effective | self.permitted | self.ambient | self.inheritable) != 0
    }

    /// Whether it may signal a job's process group that runs as another user.
    pub fn can_kill_others(self) -> bool {
        nix::unistd::geteuid().is_root() || self.has(CAP_KILL)
    }
}

impl RunAs {
    /// Looks a user up, with its groups.
    fn lookup(name: &str) -> Result<RunAs, RunAsError> {
        let user = match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => user,
            Ok(None) => return Err(RunAsError::NoSuchUser(name.to_string())),
            Err(e) => return Err(RunAsError::Lookup(name.to_string(), e)),
        };
        let c = CString::new(name).map_err(|_| RunAsError::NoSuchUser(name.to_string()))?;
        let groups = nix::unistd::getgrouplist(&c, user.gid)
            .map_err(|e| RunAsError::Lookup(name.to_string(), e))?
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        Ok(RunAs { user, groups })
    }

    /// Whom jobs run as (`executor.run_as`): `None` when they run as the executor's own user
    /// (`run_as = "root"` under root, or an executor that cannot switch users — see
    /// [`separation`] for what that means).
    pub fn resolve(name: &str) -> Result<Option<RunAs>, RunAsError> {
        let me = nix::unistd::geteuid();
        if (me.is_root() && name == "root") || !Caps::current().can_switch_users() {
            return Ok(None);
        }
        let user = RunAs::lookup(name)?;
        Ok((user.user.uid != me).then_some(user))
    }

    /// The user of a job of `group` that names its own (`run_as`): one of `allowed` or of the
    /// group's own users (`by_group`), and one this executor can become. `Ok(None)`: the
    /// executor's own user.
    pub fn for_job(
        name: &str,
        group: &str,
        allowed: &[String],
        by_group: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<Option<RunAs>, JobUserError> {
        let groups_own = by_group
            .get(group)
            .is_some_and(|us| us.iter().any(|u| u == name));
        if !allowed.iter().any(|u| u == name) && !groups_own {
            return Err(if by_group.is_empty() {
                JobUserError::NotAllowed(name.to_string())
            } else {
                JobUserError::NotAllowedForGroup {
                    user: name.to_string(),
                    group: group.to_string(),
                }
            });
        }
        let me = nix::unistd::geteuid();
        if !Caps::current().can_switch_users() {
            let my_name = nix::unistd::User::from_uid(me)
                .ok()
                .flatten()
                .map(|u| u.name);
            return match my_name {
                Some(mine) if mine == name => Ok(None),
                _ => Err(JobUserError::CannotSwitch(name.to_string())),
            };
        }
        if me.is_root() && name == "root" {
            return Ok(None);
        }
        let user = RunAs::lookup(name)?;
        Ok((user.user.uid != me).then_some(user))
    }
}

/// What keeps this host's jobs from the roles' secrets, for `executor.run_as`.
pub fn separation(run_as: &str) -> Separation {
    let me = nix::unistd::geteuid();
    match RunAs::resolve(run_as) {
        Ok(Some(u)) if u.user.uid.is_root() => Separation::RootByChoice,
        Ok(Some(u)) => Separation::User {
            user: u.user.name.clone(),
        },
        Ok(None) if me.is_root() => Separation::RootByChoice,
        Ok(None) => Separation::None {
            reason: not_separated(me.as_raw(), run_as).to_string(),
        },
        Err(e) => Separation::None {
            reason: e.to_string(),
        },
    }
}

/// Why jobs run as the roles' own user, and what would change it.
pub fn not_separated(uid: u32, run_as: &str) -> RunAsError {
    let how = if Caps::current().can_switch_users() {
        format!("executor.run_as (`{run_as}`) is this user: name another one")
    } else {
        "start cronvisor as root, or give it CAP_SETUID, CAP_SETGID and CAP_KILL as ambient \
         capabilities (the shipped systemd unit does)"
            .to_string()
    };
    RunAsError::NotSeparated { uid, how }
}

/// Makes this process non-dumpable: `/proc/PID/environ`, `mem`, `fd/` and ptrace are then
/// root's only, so a job that runs as the same user (a person's own `up`) cannot read a role's
/// environment (the store URL, the tokens) or memory. A job gets its own dumpable flag back at
/// exec.
pub fn protect_process() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "cannot make this process non-dumpable (PR_SET_DUMPABLE)");
    }
}

/// `struct __user_cap_header_struct` of `capset(2)`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` of `capset(2)` (two of them for version 3).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The identity a job's process takes between fork and exec, computed before the fork: the
/// user to become (if any), and whether the capabilities the executor holds must be dropped.
#[derive(Debug, Clone)]
pub struct JobCredentials {
    user: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    drop_caps: bool,
}

impl JobCredentials {
    pub fn new(run_as: Option<&RunAs>, caps: Caps) -> JobCredentials {
        JobCredentials {
            user: run_as.map(|u| (u.user.uid.as_raw(), u.user.gid.as_raw(), u.groups.clone())),
            drop_caps: caps.any_to_drop(),
        }
    }

    /// Whether anything is to be done before exec (else the spawn needs no hook).
    pub fn is_none(&self) -> bool {
        self.user.is_none() && !self.drop_caps
    }

    /// Takes the identity, in the forked child: groups, group, user, then (for an executor
    /// that is not root) every capability away, ambient ones included, so neither the job nor
    /// what it execs can switch users or signal others. Only system calls on values computed
    /// before the fork: async-signal-safe.
    pub fn apply(&self) -> std::io::Result<()> {
        if let Some((uid, gid, groups)) = &self.user {
            // SAFETY: setgroups/setgid/setuid take plain values and a pointer to a live slice
            // of `groups.len()` gids; they run in the forked child before exec.
            let failed = unsafe {
                libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(*gid) != 0
                    || libc::setuid(*uid) != 0
            };
            if failed {
                return Err(std::io::Error::last_os_error());
            }
        }
        if self.drop_caps {
            let header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            let none = [CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            }; 2];
            // SAFETY: prctl(PR_CAP_AMBIENT, CLEAR_ALL) takes no pointer; capset reads a header
            // and two data structs laid out as `linux/capability.h` declares them, both alive
            // for the call. Dropping capabilities only lowers privilege.
            let failed = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                ) != 0
                    || libc::syscall(libc::SYS_capset, &header, none.as_ptr()) != 0
            };
            if failed {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets_are_read_from_proc() {
        let caps = Caps::current();
        if nix::unistd::geteuid().is_root() {
            assert!(caps.can_switch_users());
            assert!(caps.has(CAP_SETUID), "{caps:?}");
            assert!(!caps.any_to_drop(), "root's are dropped by setuid itself");
        }
    }

    #[test]
    fn run_as_root_under_root_is_a_choice_and_a_missing_user_is_no_separation() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        assert_eq!(separation("root"), Separation::RootByChoice);
        assert_eq!(
            separation("nobody"),
            Separation::User {
                user: "nobody".into()
            }
        );
        assert!(!separation("no-such-user-here").kept());
    }
}
