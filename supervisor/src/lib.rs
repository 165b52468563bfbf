//! The cronvisor supervisor: owns the listening sockets, runs each role as a child process that
//! inherits exactly its own sockets, waits for each child's sd_notify readiness, restarts
//! crashed children with backoff, and stops them all on SIGTERM / SIGINT leaving nothing behind.
//!
//! The socket hand-over uses the systemd protocol in both directions (`LISTEN_FDS`,
//! `LISTEN_FDNAMES`, `NOTIFY_SOCKET`), so a role runs the same under the supervisor and directly
//! under systemd, and the supervisor itself can adopt systemd's sockets.

pub mod activation;
pub mod backoff;
pub mod child;
pub mod control;
mod keeper;
pub mod listeners;
pub mod notify;
pub mod status;
pub mod supervise;
pub mod upgrade;

pub use activation::ActivationError;
pub use child::ChildSpec;
pub use listeners::{ListenerSpec, Listeners};
pub use supervise::{run, Reconfigure, ReconfigureError, Request, Settings, Stop, SuperviseError};
pub use upgrade::{ExecSpec, UpgradeState};
