//! What the supervisor knows about its children, kept in memory and mirrored to a JSON file
//! (`<data_dir>/run/status.json`) that `cronvisor status` and tests read.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChildStatus {
    pub role: String,
    pub pid: Option<u32>,
    pub generation: u64,
    pub ready: bool,
    /// Milliseconds since the epoch when the current process started.
    pub started_at: i64,
    pub restarts: u64,
    pub last_exit: Option<String>,
    pub status: Option<String>,
}

/// The outcome of a reload, as the caller and `status` see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReloadOutcome {
    pub ok: bool,
    /// The generation serving after the reload.
    pub generation: u64,
    pub message: String,
    /// Milliseconds since the epoch when the reload ended.
    pub at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub pid: u32,
    pub version: String,
    /// The generation that serves (older ones may still be draining).
    pub generation: u64,
    pub phase: String,
    pub listeners: Vec<(String, String)>,
    pub children: Vec<ChildStatus>,
    #[serde(default)]
    pub last_reload: Option<ReloadOutcome>,
}

#[derive(Debug)]
pub struct StatusBoard {
    inner: Mutex<Status>,
    path: PathBuf,
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl StatusBoard {
    pub fn new(path: PathBuf, status: Status) -> StatusBoard {
        let board = StatusBoard {
            inner: Mutex::new(status),
            path,
        };
        board.update(|_| {});
        board
    }

    /// Applies `f` and rewrites the file atomically (write, then rename).
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        let Ok(mut s) = self.inner.lock() else {
            return;
        };
        f(&mut s);
        let Ok(text) = serde_json::to_vec_pretty(&*s) else {
            return;
        };
        let tmp = self.path.with_extension("json.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }

    /// Adds the children of a new generation, not started yet.
    pub fn add_generation(&self, generation: u64, roles: &[String]) {
        self.update(|s| {
            for role in roles {
                s.children.push(ChildStatus {
                    role: role.clone(),
                    pid: None,
                    generation,
                    ready: false,
                    started_at: 0,
                    restarts: 0,
                    last_exit: None,
                    status: None,
                });
            }
        });
    }

    pub fn remove_generation(&self, generation: u64) {
        self.update(|s| s.children.retain(|c| c.generation != generation));
    }

    pub fn child(&self, role: &str, generation: u64, f: impl FnOnce(&mut ChildStatus)) {
        self.update(|s| {
            if let Some(c) = s
                .children
                .iter_mut()
                .find(|c| c.role == role && c.generation == generation)
            {
                f(c);
            }
        });
    }

    pub fn started(&self, role: &str, generation: u64, pid: Option<u32>) {
        self.child(role, generation, |c| {
            c.pid = pid;
            c.ready = false;
            c.started_at = now_millis();
        });
    }

    pub fn snapshot(&self) -> Option<Status> {
        self.inner.lock().ok().map(|s| s.clone())
    }
}
