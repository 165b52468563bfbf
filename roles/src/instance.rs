//! Who a role process is, in the store and in logs: `host/pid/start`. A restarted or reloaded
//! dispatcher is another instance (new pid, new start), so the monitor can tell a process that
//! left from one that died.

use std::fmt;
use std::str::FromStr;

use crate::model::{now_millis, Millis};

/// This machine's hostname (`localhost` if it has none that reads as text).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// This process's host identity: the configured `host` once a role has said it
/// ([`set_identity`]), else the hostname. What `fired_by` and the instance ids name.
pub fn identity() -> String {
    IDENTITY.get().cloned().unwrap_or_else(hostname)
}

static IDENTITY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Says this process's host identity (once; later calls keep the first).
pub fn set_identity(host: &str) {
    let _ = IDENTITY.set(host.to_string());
}

/// One process of a role: its host identity, pid and start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub host: String,
    pub pid: u32,
    pub start: Millis,
}

impl Instance {
    /// This process, started now, on `host`.
    pub fn this(host: &str) -> Instance {
        Instance {
            host: host.to_string(),
            pid: std::process::id(),
            start: now_millis(),
        }
    }

    /// Whether this instance is a process of `host` that no longer exists (it can only be
    /// known from that host; anywhere else the answer is "not known gone").
    pub fn is_gone_from(&self, host: &str) -> bool {
        if self.host != host {
            return false;
        }
        let Ok(pid) = i32::try_from(self.pid) else {
            return false;
        };
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.host, self.pid, self.start)
    }
}

/// Parsed from the right: a host name may itself contain `/`.
impl FromStr for Instance {
    type Err = String;
    fn from_str(s: &str) -> Result<Instance, String> {
        let bad = || format!("`{s}` is not an instance id (host/pid/start)");
        let mut parts = s.rsplitn(3, '/');
        let start = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let pid = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        Ok(Instance {
            host: host.to_string(),
            pid,
            start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Instance;

    #[test]
    fn an_instance_id_reads_back_from_the_right() {
        let i: Instance = "a/b/42/7".parse().expect("parse");
        assert_eq!((i.host.as_str(), i.pid, i.start), ("a/b", 42, 7));
        assert_eq!(i.to_string(), "a/b/42/7");
        assert!("nohost".parse::<Instance>().is_err());
        assert!("/1/2".parse::<Instance>().is_err());
    }
}
