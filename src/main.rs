//! `cronvisor`: one binary for the supervisor (`up`), the three roles, and the CLI that talks
//! to the monitor's API.

mod api_client;
mod cli;
mod commands;
mod logging;
mod print;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Sockets inherited by `LISTEN_FDS` are taken before any thread exists: adopting them edits
    // the environment.
    // A self-upgrade hands its sockets and children over through an inherited fd.
    let adopted = match &cli.command {
        Command::Up(_) => match cronvisor_supervisor::upgrade::take_state() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: self-upgrade hand-over: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let inherited = match &cli.command {
        Command::Up(_) if adopted.is_some() => {
            let fds = adopted
                .as_ref()
                .map(|s| s.listeners.clone())
                .unwrap_or_default();
            match cronvisor_supervisor::activation::Inherited::from_fds(&fds) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: self-upgrade sockets: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Command::Up(_) | Command::Dispatcher | Command::Executor | Command::Monitor => {
            match cronvisor_supervisor::activation::Inherited::from_env() {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: inherited sockets: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => cronvisor_supervisor::activation::Inherited::default(),
    };
    // Nothing this process inherited without close-on-exec reaches what it spawns (jobs, for
    // the executor). Done once here rather than per spawn: see `cloexec_from`.
    cronvisor_supervisor::child::cloexec_from(3);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli, inherited, adopted)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
