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

/// A client command whose output is piped into `head` ends the way `cat` or `git log` do: killed
/// quietly by SIGPIPE when the reader goes away, not with a "Broken pipe" panic. The Rust
/// runtime ignores SIGPIPE; the long-running roles keep it that way (a peer closing a socket
/// must be an error there, not a death).
fn default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL, before any thread exists; no handler is installed and
    // nothing else in the process depends on SIGPIPE being ignored (every socket write of the
    // client goes through std's send(MSG_NOSIGNAL)).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every cronvisor process holds a secret (a token, the store's URL): none is readable
    // through /proc or ptrace by a job that runs as the same user (docs/SECURITY.md).
    cronvisor_roles::privilege::protect_process();
    if !matches!(
        cli.command,
        Command::Up(_) | Command::Dispatcher | Command::Executor | Command::Monitor
    ) {
        default_sigpipe();
    }
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
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: many errors already quote their
/// source in their own message ("cannot bind ...: Address already in use"), and anyhow's
/// `{:#}` would repeat it.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_chain_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = anyhow::Error::new(io)
            .context("cannot bind listener `api` on 127.0.0.1:7070: Address already in use");
        assert_eq!(
            super::chain(&e),
            "cannot bind listener `api` on 127.0.0.1:7070: Address already in use"
        );
        let e = anyhow::anyhow!("no such file").context("reading x");
        assert_eq!(super::chain(&e), "reading x: no such file");
    }
}
