//! `cronvisor dispatcher|executor|monitor`: one role in this process.

use std::process::ExitCode;

use cronvisor_roles::config::Role;
use cronvisor_roles::runtime::{self, RoleContext};
use cronvisor_supervisor::activation::Inherited;

use crate::cli::Cli;

pub async fn run(cli: &Cli, role: Role, mut inherited: Inherited) -> anyhow::Result<ExitCode> {
    let config = super::load_config(cli)?;
    crate::logging::init(config.log_format);
    let listener = role.listener();
    let shutdown = runtime::shutdown_on_signals()?;
    // A stop that arrives while the store is still being opened ends the start-up, so that a
    // role stuck on an unreachable store can be stopped (a rolled-back reload, for one).
    let ctx = tokio::select! {
        ctx = RoleContext::prepare(role.as_str(), listener, config, &mut inherited) => ctx?,
        _ = runtime::stopped(shutdown.clone()) => {
            tracing::info!(role = role.as_str(), "stopped before it was ready");
            return Ok(ExitCode::SUCCESS);
        }
    };
    match role {
        Role::Dispatcher => {
            // The supervisor passes the local executor's address; started by hand, the config's.
            let url = std::env::var("CRONVISOR_EXECUTOR_URL").unwrap_or_else(|_| {
                match ctx.config.listeners.get(Role::Executor.listener()) {
                    Some(rpc) => format!("{}://{rpc}", ctx.config.tls.scheme()),
                    None => String::new(),
                }
            });
            cronvisor_roles::dispatcher::run(ctx, shutdown, url).await?
        }
        Role::Executor => cronvisor_roles::executor::run(ctx, shutdown).await?,
        Role::Monitor => cronvisor_roles::monitor::run(ctx, shutdown).await?,
    }
    Ok(ExitCode::SUCCESS)
}
