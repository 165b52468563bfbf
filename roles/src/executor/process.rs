//! One run's process: `sh -c COMMAND` in its own process group, output captured through capped
//! buffers, an optional timeout, and a kill that reaches every process of the group.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::live::{LiveOutput, Stream};
use crate::config::ExecutorConfig;
use crate::model::{now_millis, Limits, RunState};
pub use crate::privilege::{Caps, JobCredentials, RunAs, RunAsError};
use crate::store::RunOutcome;

/// A spawned run, before it is watched to the end.
pub struct Spawned {
    pub child: Child,
    pub pid: Option<u32>,
    pub started_at: i64,
    output: Arc<LiveOutput>,
    stdout: JoinHandle<()>,
    stderr: JoinHandle<()>,
}

/// The PATH a job gets when the executor has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A job's whole environment: nothing of the executor's (its tokens, the store's URL, the
/// SMTP password, `NOTIFY_SOCKET` are cronvisor's, not the job's) but a documented base, the
/// variables the operator passes on (`executor.pass_env`), and the job's own `env`.
pub fn job_env(
    req: &crate::model::RunRequest,
    pass: &[String],
    run_as: Option<&RunAs>,
) -> Vec<(String, String)> {
    let from_executor = |name: &str| std::env::var(name).ok();
    let me = match run_as {
        Some(u) => Some(u.user.clone()),
        None => nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten(),
    };
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            from_executor("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        ),
        (
            "HOME".into(),
            me.as_ref()
                .map(|u| u.dir.display().to_string())
                .unwrap_or_else(|| "/".into()),
        ),
        (
            "USER".into(),
            me.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
        ),
        (
            "LOGNAME".into(),
            me.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
        ),
        ("SHELL".into(), "/bin/sh".into()),
        (
            "LANG".into(),
            from_executor("LANG").unwrap_or_else(|| "C.UTF-8".into()),
        ),
        ("TZ".into(), req.timezone.clone()),
        ("CRONVISOR_JOB".into(), req.job_name.clone()),
        ("CRONVISOR_RUN_ID".into(), req.run_id.to_string()),
        (
            "CRONVISOR_INSTANT".into(),
            chrono::DateTime::from_timestamp_millis(req.instant)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
        ),
        ("CRONVISOR_ATTEMPT".into(), req.attempt.to_string()),
        ("CRONVISOR_SHARD_INDEX".into(), req.shard_index.to_string()),
        (
            "CRONVISOR_SHARD_TOTAL".into(),
            req.shard_total.max(1).to_string(),
        ),
    ];
    for (k, v) in &req.params {
        env.push((format!("CRONVISOR_PARAM_{k}"), v.clone()));
    }
    if let Some(flow) = req.flow_run {
        env.push(("CRONVISOR_FLOW_RUN".into(), flow.to_string()));
        env.push((
            "CRONVISOR_UPSTREAM_RUNS".into(),
            req.upstream_runs.clone().unwrap_or_default(),
        ));
    }
    for name in pass {
        if let Some(v) = from_executor(name) {
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), v));
        }
    }
    for (k, v) in &req.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Starts `sh -c command` as the leader of a new process group, with stdin closed and the
/// environment `env` only, as `run_as` (or the executor's user) with none of the executor's
/// capabilities (`caps`, what it holds); its output goes to `output`
/// (shared with live readers, and kept even if a reader must be abandoned).
pub fn spawn(
    command: &str,
    env: Vec<(String, String)>,
    run_as: Option<&RunAs>,
    caps: Caps,
    limits: Limits,
    output: Arc<LiveOutput>,
) -> std::io::Result<Spawned> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    // Descriptors need no pre_exec hook (it would turn posix_spawn into fork): the executor
    // marked every inherited one close-on-exec at start-up (`cloexec_from`). Credentials and
    // limits do: jobs drop to `run_as` with its groups and lose the executor's capabilities,
    // and a job's limits are set, in the child before exec (a spawn with a user is a fork
    // already; measured in docs/BENCHMARKS.md).
    if let Some(u) = run_as {
        cmd.current_dir(if u.user.dir.is_dir() {
            u.user.dir.as_path()
        } else {
            std::path::Path::new("/")
        });
    }
    let credentials = JobCredentials::new(run_as, caps);
    if !credentials.is_none() || !limits.is_none() {
        let rlimits = rlimits(limits);
        // SAFETY: the hook runs in the forked child before exec, and only makes system calls
        // (setrlimit, then `JobCredentials::apply`: setgroups, setgid, setuid, capability
        // drops) on values computed before the fork: no allocation, no lock, nothing that is
        // not async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                for (resource, limit) in &rlimits {
                    if libc::setrlimit(*resource, limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                credentials.apply()
            });
        }
    }
    let mut child = cmd.spawn()?;
    let started_at = now_millis();
    let pid = child.id();
    let stdout = capture(child.stdout.take(), output.clone(), Stream::Stdout);
    let stderr = capture(child.stderr.take(), output.clone(), Stream::Stderr);
    Ok(Spawned {
        child,
        pid,
        started_at,
        output,
        stdout,
        stderr,
    })
}

/// "killed by signal 24 (SIGXCPU)": the number as the kernel gives it, the name as people
/// know it (SIGXCPU is a CPU limit, SIGKILL often the OOM killer).
fn killed_by(sig: i32) -> String {
    match Signal::try_from(sig) {
        Ok(s) => format!("killed by signal {sig} ({})", s.as_str()),
        Err(_) => format!("killed by signal {sig}"),
    }
}

/// The `setrlimit` calls of a job's limits: soft and hard alike, but for CPU time, whose hard
/// limit (SIGKILL) comes five CPU seconds after the soft one (SIGXCPU, which a job may catch to
/// clean up).
fn rlimits(l: Limits) -> Vec<(libc::__rlimit_resource_t, libc::rlimit)> {
    let both = |v: u64| libc::rlimit {
        rlim_cur: v,
        rlim_max: v,
    };
    let mut out = Vec::new();
    if let Some(n) = l.max_open_files {
        out.push((libc::RLIMIT_NOFILE, both(n.max(0) as u64)));
    }
    if let Some(mb) = l.max_address_space_mb {
        out.push((
            libc::RLIMIT_AS,
            both((mb.max(0) as u64).saturating_mul(1 << 20)),
        ));
    }
    if let Some(s) = l.max_cpu_secs {
        let soft = s.max(0) as u64;
        out.push((
            libc::RLIMIT_CPU,
            libc::rlimit {
                rlim_cur: soft,
                rlim_max: soft.saturating_add(5),
            },
        ));
    }
    out
}

fn capture<R: AsyncRead + Unpin + Send + 'static>(
    pipe: Option<R>,
    output: Arc<LiveOutput>,
    stream: Stream,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match pipe.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => output.push(stream, &chunk[..n]),
            }
        }
    })
}

/// Why a run must stop before its process ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// The executor is stopping (fast stop, or drain timeout reached).
    Shutdown,
    /// A newer instant of the job replaced it (overlap `replace`).
    Replaced,
    /// The monitor recorded it `lost` (this executor's heartbeats stopped reaching the store):
    /// the fleet gave up on it and may be running its retry elsewhere.
    DeclaredLost,
    /// Its job was deleted while it ran (`job delete --force`).
    JobDeleted,
    /// An operator asked (`run kill`, the console's Kill button).
    Operator,
    /// A `forbid` run, stopped because the store has not taken this executor's beats for
    /// nearly `lost_after` (`fence.rs`): the monitor may soon start the next one elsewhere.
    Fenced,
}

impl KillReason {
    pub fn message(self) -> &'static str {
        match self {
            KillReason::Shutdown => "killed: executor stopping",
            KillReason::Replaced => "killed: replaced by a newer run (overlap = replace)",
            KillReason::DeclaredLost => {
                "killed: recorded lost while this executor could not reach the store"
            }
            KillReason::JobDeleted => "killed: its job was deleted",
            KillReason::Operator => "killed: by an operator",
            KillReason::Fenced => {
                "killed: this executor could not reach the store for nearly monitor.lost_after, \
                 and its job's overlap is forbid (fenced before the next run may start)"
            }
        }
    }
}

/// Resolves with the reason once the run is asked to stop.
async fn kill_requested(kill: &mut watch::Receiver<Option<KillReason>>) -> KillReason {
    loop {
        if let Some(reason) = *kill.borrow() {
            return reason;
        }
        if kill.changed().await.is_err() {
            return std::future::pending::<KillReason>().await;
        }
    }
}

/// Signals the whole group: SIGTERM, then SIGKILL after `grace` unless the leader exited.
async fn kill_group(child: &mut Child, pgid: Option<u32>, grace: Duration) {
    let Some(pgid) = pgid else { return };
    let pg = Pid::from_raw(pgid as i32);
    let _ = killpg(pg, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = killpg(pg, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Grandchildren that ignored SIGTERM while the leader exited still get SIGKILL.
    let _ = killpg(pg, Signal::SIGKILL);
}

/// Waits for the run to end (or times it out / kills it) and returns what to record.
pub async fn watch_to_end(
    mut spawned: Spawned,
    timeout: Option<Duration>,
    cfg: &ExecutorConfig,
    mut kill: watch::Receiver<Option<KillReason>>,
) -> RunOutcome {
    let grace = cfg.kill_grace;
    let pgid = spawned.pid;
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let killed = kill_requested(&mut kill);
    tokio::pin!(killed);

    let (state, exit_code, error) = tokio::select! {
        status = spawned.child.wait() => match status {
            Ok(s) => match s.code() {
                Some(0) => (RunState::Succeeded, Some(0), None),
                Some(c) => (RunState::Failed, Some(i64::from(c)), Some(format!("exit code {c}"))),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    let sig = s.signal().unwrap_or(0);
                    (RunState::Failed, None, Some(killed_by(sig)))
                }
            },
            Err(e) => (RunState::Failed, None, Some(format!("waiting for the process: {e}"))),
        },
        _ = &mut deadline => {
            kill_group(&mut spawned.child, pgid, grace).await;
            let secs = timeout.map(|t| t.as_secs()).unwrap_or(0);
            (RunState::TimedOut, None, Some(format!("timed out after {secs} s")))
        }
        reason = &mut killed => {
            // A fence has no time for a grace: the next run may start once it ends.
            let grace = if reason == KillReason::Fenced { Duration::ZERO } else { grace };
            kill_group(&mut spawned.child, pgid, grace).await;
            (RunState::Killed, None, Some(reason.message().to_string()))
        }
    };

    // Output still written by background processes is collected for a short while; they are
    // not killed (a job may start a daemon on purpose), but the run does not wait for them.
    let linger = cfg.output_linger;
    let stdout_open = !finished(spawned.stdout, linger).await;
    let stderr_open = !finished(spawned.stderr, linger).await;
    spawned.output.end();
    let ((mut stdout, stdout_cut), (mut stderr, stderr_cut)) = spawned.output.rendered();
    for (text, open) in [(&mut stdout, stdout_open), (&mut stderr, stderr_open)] {
        if open {
            text.push_str(
                "\n[cronvisor: output still open after the job's shell exited; stopped reading]",
            );
        }
    }
    RunOutcome {
        state,
        exit_code,
        error,
        stdout,
        stderr,
        stdout_cut,
        stderr_cut,
        ended_at: now_millis(),
    }
}

/// Whether a pipe's reader reached the end within `linger` (else it is stopped).
async fn finished(reader: JoinHandle<()>, linger: Duration) -> bool {
    let abort = reader.abort_handle();
    let done = tokio::time::timeout(linger, reader).await.is_ok();
    if !done {
        abort.abort();
    }
    done
}

/// Makes an HTTP job's request; the status and a capped body are the run's output.
pub async fn http_call(
    client: &crate::http::client::HttpClient,
    call: crate::model::HttpCall,
    timeout: Option<Duration>,
    output: Arc<LiveOutput>,
    mut kill: watch::Receiver<Option<KillReason>>,
) -> RunOutcome {
    let method = call
        .method
        .parse::<hyper::Method>()
        .unwrap_or(hyper::Method::GET);
    let headers: Vec<(String, String)> = call.headers.into_iter().collect();
    let body = call.body.unwrap_or_default().into_bytes();
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let killed = kill_requested(&mut kill);
    let mut sink = |c: &[u8]| output.push(Stream::Stdout, c);
    let request = client.request_streaming(method, &call.url, &headers, body, &mut sink);
    let result = tokio::select! {
        r = request => Ok(r),
        _ = deadline => Err((RunState::TimedOut, format!("timed out after {} s", timeout.map(|t| t.as_secs()).unwrap_or(0)))),
        reason = killed => Err((RunState::Killed, reason.message().to_string())),
    };
    let (state, exit_code, error) = match result {
        Ok(Ok(status)) => {
            let code = i64::from(status.as_u16());
            let ok = if call.expect_status == 0 {
                status.is_success()
            } else {
                code == call.expect_status
            };
            let expected = if call.expect_status == 0 {
                "2xx".to_string()
            } else {
                call.expect_status.to_string()
            };
            if ok {
                (RunState::Succeeded, Some(code), None)
            } else {
                (
                    RunState::Failed,
                    Some(code),
                    Some(format!("HTTP status {code} (expected {expected})")),
                )
            }
        }
        Ok(Err(e)) => (RunState::Failed, None, Some(e.to_string())),
        Err((state, message)) => (state, None, Some(message)),
    };
    output.end();
    let ((stdout, stdout_cut), _) = output.rendered();
    RunOutcome {
        state,
        exit_code,
        error,
        stdout,
        stderr: String::new(),
        stdout_cut,
        stderr_cut: 0,
        ended_at: now_millis(),
    }
}
