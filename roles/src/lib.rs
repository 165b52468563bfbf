//! The three cronvisor roles and what they share.
//!
//! - [`dispatcher`]: computes each job's next instants and fires them, once.
//! - [`executor`]: runs the work in its own process group and records the result.
//! - [`monitor`]: serves the API (and later the console, health checks and alarms).
//!
//! Shared: [`config`], [`cluster`] (etcd registry, Redis fire lock), the job [`model`] and [`schedule`], the [`store`], capped [`output`],
//! [`http`] serving/auth/health/client, [`metrics`], [`tokens`], process [`instance`] ids and
//! the role [`runtime`].

#[macro_use]
mod names;

pub mod cluster;
pub mod config;
pub mod dispatcher;
pub mod executor;
pub mod http;
pub mod instance;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod output;
pub mod presence;
pub mod privilege;
pub mod runtime;
pub mod schedule;
pub mod shutdown;
pub mod store;
pub mod tls;
pub mod tokens;
