//! One module per group of subcommands.

mod access;
mod backfill;
mod calendars;
mod flows;
mod import;
mod jobs;
mod next;
mod roles;
mod status;
mod tail;
mod up;
mod windows;

use std::process::ExitCode;

use anyhow::Context;
use cronvisor_roles::config::{Config, Role};
use cronvisor_supervisor::activation::Inherited;

use crate::cli::{Cli, Command, ConfigCommand, ImportCommand};

/// The config of this invocation: file (or defaults), environment, then `--data-dir`.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
        config.validate()?;
    }
    Ok(config)
}

pub async fn run(
    cli: Cli,
    inherited: Inherited,
    adopted: Option<cronvisor_supervisor::UpgradeState>,
) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Up(args) => up::run(&cli, args, inherited, adopted).await,
        Command::Dispatcher => roles::run(&cli, Role::Dispatcher, inherited).await,
        Command::Executor => roles::run(&cli, Role::Executor, inherited).await,
        Command::Monitor => roles::run(&cli, Role::Monitor, inherited).await,
        Command::Job(cmd) => jobs::job(&cli, cmd).await,
        Command::Runs(args) => jobs::runs(&cli, args).await,
        Command::Alarms(args) => jobs::alarms(&cli, args).await,
        Command::User(cmd) => access::user(&cli, cmd).await,
        Command::Token(cmd) => access::token(&cli, cmd).await,
        Command::Audit(args) => access::audit(&cli, args).await,
        Command::Whoami(out) => access::whoami(&cli, *out).await,
        Command::Run(cmd) => jobs::run(&cli, cmd).await,
        Command::Flow(cmd) => flows::flow(&cli, cmd).await,
        Command::Backfill(cmd) => backfill::backfill(&cli, cmd).await,
        Command::Calendar(cmd) => calendars::calendar(&cli, cmd).await,
        Command::Window(cmd) => windows::window(&cli, cmd).await,
        Command::Next(args) => next::run(&cli, args).await,
        Command::Import(ImportCommand::Crontab(args)) => import::crontab(&cli, args).await,
        Command::Import(ImportCommand::GocronConfig(args)) => import::gocron_config_command(args),
        Command::Import(ImportCommand::Gocron(args)) => import::gocron(&cli, args).await,
        Command::Status(out) => status::run(&cli, *out).await,
        Command::Reload(args) => status::reload(&cli, args).await,
        Command::Migrate => {
            let config = load_config(&cli)?;
            let store = cronvisor_roles::store::Store::connect(&config.store_url(), 1)
                .await
                .context("connecting to the store")?;
            store.migrate().await?;
            println!("store migrated: {}", redact_url(&config.store_url()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut cmd, "cronvisor", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            let doc = cronvisor_roles::monitor::openapi_document();
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).context("writing the document")?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check) => {
            let config = load_config(&cli)?;
            config.check_serving()?;
            println!(
                "config ok: {} (data dir {}, store {})",
                cli.config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "built-in defaults".into()),
                config.data_dir.display(),
                redact_url(&config.store_url())
            );
            let roles: Vec<&str> = config.roles.iter().map(|r| r.as_str()).collect();
            println!("roles: {}", roles.join(", "));
            if config.cluster.enabled() {
                println!(
                    "cluster: host {}, etcd {}, redis {}, {} machine group(s)",
                    cronvisor_roles::cluster::host_identity(config.host.as_deref()),
                    config.cluster.etcd_endpoints.join(","),
                    match &config.cluster.redis_url {
                        None => "none (store fence alone)".to_string(),
                        Some(url) => redact_url(url),
                    },
                    config.machine.len()
                );
            } else {
                println!("standalone (no cluster.etcd_endpoints)");
            }
            if let Some(w) = alarm_channel_warning(&config) {
                eprintln!("warning: {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Said by `up` and `config check` when no alarm channel is configured: alarms are then only
/// recorded (`cronvisor alarms` lists them), nobody is told. Only hosts running the monitor
/// send alarms.
pub fn alarm_channel_warning(config: &Config) -> Option<String> {
    (!config.alarm.any_channel() && config.runs(Role::Monitor)).then(|| {
        "no alarm channel configured (alarm.webhook_urls, alarm.sms.url, alarm.email.smtp_host): \
         alarms are only recorded, see `cronvisor alarms`"
            .to_string()
    })
}

/// A store URL fit for logs: the password is replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact_url("mysql://app:s3cret@127.0.0.1:3306/cron"),
            "mysql://app:***@127.0.0.1:3306/cron"
        );
        assert_eq!(super::redact_url("sqlite://var/x.db"), "sqlite://var/x.db");
    }
}
