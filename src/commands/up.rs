//! `cronvisor up`: prepare the data dir (tokens, migrated store), open the listeners, and run
//! the roles as supervised children until SIGTERM (drain) or SIGINT (fast).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cronvisor_roles::config::{Config, Role};
use cronvisor_roles::store::Store;
use cronvisor_roles::tokens;
use cronvisor_supervisor::activation::Inherited;
use cronvisor_supervisor::{
    ChildSpec, ExecSpec, ListenerSpec, Listeners, Reconfigure, ReconfigureError, Request, Settings,
    Stop, UpgradeState,
};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::cli::{Cli, UpArgs};

/// One supervisor per data dir: two would overwrite each other's `endpoints.json`, status and
/// control socket. The lock is `flock(2)` on `<data_dir>/supervisor.lock`, which holds the
/// owner's pid for the message; the kernel releases it when the owner dies, so a crash leaves
/// nothing to clean up.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("supervisor.lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0)?;
            lock.rewind()?;
            write!(lock, "{}", std::process::id())?;
            Ok(lock)
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            anyhow::bail!(
                "cronvisor is already running on data dir {} (pid {}); stop it first, or give \
                 this one another --data-dir",
                data_dir.display(),
                pid.trim()
            )
        }
        Err((_, e)) => Err(anyhow::Error::new(e).context(format!("locking {}", path.display()))),
    }
}

/// Alarms with no channel are only recorded: say so where the operator looks first.
fn warn_without_alarm_channels(config: &Config) {
    if let Some(warning) = super::alarm_channel_warning(config) {
        tracing::warn!("{warning}");
    }
}

/// `up`, in named phases: `prepare` (data dir, its lock, tokens, migrated store), `open`
/// (listeners, adopted from systemd or a self-upgrade, or bound), `signals` (SIGHUP, SIGUSR2,
/// SIGTERM, SIGINT and the control socket become requests), then the supervisor runs the
/// roles until stopped.
pub async fn run(
    cli: &Cli,
    args: &UpArgs,
    mut inherited: Inherited,
    adopted: Option<UpgradeState>,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(cli)?;
    config.check_serving()?;
    if args.check {
        println!("config ok");
        return Ok(ExitCode::SUCCESS);
    }
    crate::logging::init(config.log_format);
    let (config, _one_supervisor) = prepare(config, adopted.is_some()).await?;
    let listeners = open(&config, &mut inherited)?;
    let data_dir = config.data_dir.clone();

    // The path, resolved once: a reload starts the binary found at this path then, so a
    // replaced binary is picked up.
    let program = std::env::current_exe().context("locating the cronvisor binary")?;
    let config_path = match &cli.config {
        Some(c) => Some(
            c.canonicalize()
                .with_context(|| format!("resolving {}", c.display()))?,
        ),
        None => None,
    };
    let rpc_addr = listeners
        .addr("rpc")
        .map(|a| a.to_string())
        .unwrap_or_default();
    let run_dir = data_dir.join("run");
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let s = &config.supervisor;
    let settings = Settings {
        children: child_specs(
            &program,
            &data_dir,
            config_path.as_deref(),
            &config.roles,
            &format!("{}://{rpc_addr}", config.tls.scheme()),
        ),
        run_dir: run_dir.clone(),
        ready_timeout: s.ready_timeout,
        drain_timeout: s.drain_timeout,
        fast_stop_timeout: Duration::from_secs(5),
        backoff_initial: s.restart_backoff_initial,
        backoff_max: s.restart_backoff_max,
        version: env!("CARGO_PKG_VERSION").to_string(),
        exec: Some(exec_spec(cli, &program, config_path.as_deref())),
    };
    let reconfigure = reconfigure(
        cli.data_dir.clone(),
        config_path.clone(),
        config.clone(),
        program.clone(),
        rpc_addr.clone(),
    );
    let (requests_tx, requests_rx) = mpsc::channel(16);
    let _control =
        cronvisor_supervisor::control::serve(&run_dir.join("control.sock"), requests_tx.clone())
            .context("opening the control socket")?;
    let stop_rx = signals(requests_tx)?;

    let api = listeners
        .addr("api")
        .map(|a| a.to_string())
        .unwrap_or_default();
    let data_shown = data_dir.display().to_string();
    let store_shown = super::redact_url(&config.store_url());
    if let Some(a) = &adopted {
        tracing::info!(from = %a.from_version, generation = a.generation,
            "self-upgrade: adopted the running roles");
    }
    cronvisor_supervisor::run(
        settings,
        listeners,
        stop_rx,
        requests_rx,
        reconfigure,
        adopted,
        move |status| {
            tracing::info!(
                api = %format!("{}://{api}/api/v1", config.tls.scheme()),
                data_dir = %data_shown,
                store = %store_shown,
                token = %format!("{data_shown}/{}", tokens::API),
                children = status.children.len(),
                "cronvisor is up"
            );
            cronvisor_roles::runtime::notify_ready("all roles ready");
        },
    )
    .await?;
    tracing::info!("cronvisor stopped");
    Ok(ExitCode::SUCCESS)
}

/// The data dir, made and resolved, locked for this supervisor, with its tokens and a migrated
/// store. The lock is held until this process exits (an exec in place drops it with the fd and
/// the new image takes it again at once).
/// `upgrading`: this image took over a running supervisor's roles (`reload --upgrade`), so it
/// must not exit for a store that is away for a moment — the roles ride over that.
async fn prepare(
    config: Config,
    upgrading: bool,
) -> anyhow::Result<(Config, nix::fcntl::Flock<std::fs::File>)> {
    // What is created here (the data dir, the store's files, the tokens) is the owner's only;
    // the umask is restored before the roles (and so the jobs) start.
    let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let prepared = prepare_data_dir(config, upgrading).await;
    nix::sys::stat::umask(umask);
    prepared
}

async fn prepare_data_dir(
    config: Config,
    upgrading: bool,
) -> anyhow::Result<(Config, nix::fcntl::Flock<std::fs::File>)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let data_dir = config
        .data_dir
        .canonicalize()
        .with_context(|| format!("resolving data dir {}", config.data_dir.display()))?;
    let config = Config {
        data_dir: data_dir.clone(),
        ..config
    };
    // The data dir holds the store, the tokens and the control socket: its owner's only.
    std::fs::set_permissions(
        &data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("making {} private (0700)", data_dir.display()))?;
    let lock = lock_data_dir(&data_dir)?;
    warn_without_alarm_channels(&config);
    tokens::ensure(&data_dir, tokens::API)?;
    tokens::ensure(&data_dir, tokens::RPC)?;
    if !config.cluster.enabled() {
        tokens::ensure(&data_dir, tokens::MONITOR)?;
    }

    match migrate(&config).await {
        Ok(()) => {}
        // The roles it adopted run on the schema as it is, and every role rides over a store
        // outage: exiting here would leave them without a supervisor.
        Err(e) if upgrading => tracing::warn!(
            error = format!("{e:#}"),
            "upgraded with the store away: migrations wait for the next start"
        ),
        Err(e) => return Err(e),
    }
    Ok((config, lock))
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store_url = config.store_url();
    let store = Store::connect(&store_url, 1)
        .await
        .with_context(|| format!("opening the store {}", super::redact_url(&store_url)))?;
    store.migrate().await.context("migrating the store")?;
    store.close().await;
    Ok(())
}

/// The listeners of the roles this host runs (a listener of a role it does not run is not
/// opened), adopted where inherited, and their addresses in `<data_dir>/endpoints.json` for
/// the CLI.
fn open(config: &Config, inherited: &mut Inherited) -> anyhow::Result<Listeners> {
    let unused = |name: &str| {
        Role::ALL
            .iter()
            .any(|role| role.listener() == name && !config.runs(*role))
    };
    let specs: Vec<ListenerSpec> = config
        .listeners
        .iter()
        .filter(|(name, _)| !unused(name))
        .map(|(name, addr)| ListenerSpec {
            name: name.clone(),
            addr: *addr,
        })
        .collect();
    let listeners = Listeners::open(&specs, inherited)?;
    let endpoints: serde_json::Map<String, serde_json::Value> = listeners
        .addrs()
        .into_iter()
        .map(|(n, a, _)| (n, serde_json::Value::String(a.to_string())))
        .collect();
    let endpoints_path = config.data_dir.join("endpoints.json");
    std::fs::write(&endpoints_path, serde_json::to_vec_pretty(&endpoints)?)
        .with_context(|| format!("writing {}", endpoints_path.display()))?;
    for (name, addr, adopted) in listeners.addrs() {
        tracing::info!(listener = %name, %addr, source = if adopted { "systemd" } else { "bound" }, "listener open");
    }
    Ok(listeners)
}

/// SIGHUP asks for a reload, SIGUSR2 for a self-upgrade; SIGTERM (graceful) and SIGINT (fast)
/// stop, through the returned receiver.
fn signals(requests: mpsc::Sender<Request>) -> anyhow::Result<watch::Receiver<Option<Stop>>> {
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let upgrade_tx = requests.clone();
    tokio::spawn(async move {
        while usr2.recv().await.is_some() {
            tracing::info!("SIGUSR2: self-upgrade requested");
            let (reply, _) = tokio::sync::oneshot::channel();
            if upgrade_tx.send(Request::Upgrade { reply }).await.is_err() {
                return;
            }
        }
    });
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reload requested");
            if requests
                .send(Request::Reload { reply: None })
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let (stop_tx, stop_rx) = watch::channel(None);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let how = tokio::select! {
                _ = term.recv() => Stop::Graceful,
                _ = int.recv() => Stop::Fast,
            };
            tracing::info!(?how, "supervisor stopping");
            cronvisor_roles::runtime::notify_stopping();
            if stop_tx.send(Some(how)).is_err() {
                return;
            }
        }
    });
    Ok(stop_rx)
}

/// The children of one generation: each role with its listener, the same binary, data dir and
/// config.
fn child_specs(
    program: &Path,
    data_dir: &Path,
    config: Option<&Path>,
    roles: &[Role],
    executor_url: &str,
) -> Vec<ChildSpec> {
    let mut common: Vec<OsString> = vec!["--data-dir".into(), data_dir.into()];
    if let Some(c) = config {
        common.push("--config".into());
        common.push(c.into());
    }
    Role::ALL
        .iter()
        .filter(|role| roles.contains(role))
        .map(|role| {
            let mut args: Vec<OsString> = vec![role.as_str().into()];
            args.extend(common.iter().cloned());
            let env = if *role == Role::Dispatcher {
                vec![(
                    "CRONVISOR_EXECUTOR_URL".to_string(),
                    executor_url.to_string(),
                )]
            } else {
                Vec::new()
            };
            ChildSpec {
                role: role.as_str().to_string(),
                program: program.to_path_buf(),
                args,
                env,
                listeners: vec![role.listener().to_string()],
            }
        })
        .collect()
}

/// What a reload does before anything starts: re-read and validate the config file. The
/// sockets and the data dir belong to the running supervisor, so a change to them is refused
/// (it needs a restart) rather than half-applied.
fn reconfigure(
    data_dir_flag: Option<PathBuf>,
    config_path: Option<PathBuf>,
    running: Config,
    program: PathBuf,
    rpc_addr: String,
) -> Reconfigure {
    Box::new(move || {
        let invalid = |e: Box<dyn std::error::Error + Send + Sync>| ReconfigureError::Invalid(e);
        let mut config = Config::load(config_path.as_deref()).map_err(|e| invalid(e.into()))?;
        if let Some(d) = &data_dir_flag {
            config.data_dir = d.clone();
        }
        config.validate().map_err(|e| invalid(e.into()))?;
        config.check_serving().map_err(|e| invalid(e.into()))?;
        let data_dir = config
            .data_dir
            .canonicalize()
            .map_err(|e| invalid(format!("data_dir {}: {e}", config.data_dir.display()).into()))?;
        if data_dir != running.data_dir {
            return Err(ReconfigureError::NeedsRestart {
                what: "data_dir",
                before: running.data_dir.display().to_string(),
                after: data_dir.display().to_string(),
            });
        }
        if config.listeners != running.listeners {
            return Err(ReconfigureError::NeedsRestart {
                what: "listeners",
                before: format!("{:?}", running.listeners),
                after: format!("{:?}", config.listeners),
            });
        }
        Ok(child_specs(
            &program,
            &data_dir,
            config_path.as_deref(),
            &config.roles,
            &format!("{}://{rpc_addr}", config.tls.scheme()),
        ))
    })
}

/// Re-executing this `up` for a self-upgrade: the same arguments, and first a dry-run of the new
/// binary against the same config (`up --check`).
fn exec_spec(cli: &Cli, program: &Path, config: Option<&Path>) -> ExecSpec {
    let mut check_args: Vec<OsString> = Vec::new();
    if let Some(c) = config {
        check_args.push("--config".into());
        check_args.push(c.into());
    }
    if let Some(d) = &cli.data_dir {
        check_args.push("--data-dir".into());
        check_args.push(d.into());
    }
    check_args.push("up".into());
    check_args.push("--check".into());
    ExecSpec {
        program: program.to_path_buf(),
        args: std::env::args_os().skip(1).collect(),
        check_args,
    }
}
