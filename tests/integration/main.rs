//! Black-box tests of the `cronvisor` binary: each starts the real supervisor with `up` in its
//! own temp dir on free loopback ports, and drives it through the CLI and the HTTP API.

// Test code: a harness that cannot go on fails the test loudly (the workspace denies these in
// runtime code).
#![allow(clippy::panic, clippy::unwrap_used)]

mod harness;

mod access;
mod alarms;
mod backfill;
mod bad_input;
mod calendars;
mod cli;
mod cluster;
mod cluster_tls;
mod console;
mod docs;
mod fault_alarms;
mod firing;
mod flows;
mod hardening;
mod kubernetes;
mod lifecycle;
mod live;
mod metrics;
mod mysql;
mod openapi;
mod output;
mod package;
mod policies;
mod privilege;
mod reload;
mod run_control;
mod security;
mod sla;
mod sms;
mod systemd;
mod tls;
mod usual;
