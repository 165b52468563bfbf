//! The test harness: a running `cronvisor up` ([`Cronvisor`]), a raw HTTP helper, bounded
//! waits, and real servers ([`mariadb`]).

pub mod capture;
pub mod cluster;
pub mod mariadb;
pub mod relay;
pub mod services;
pub mod tls;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cronvisor");

/// A temp dir removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cv-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a system user with no home and no login, once per machine (tests of the paths where
/// cronvisor is not root).
pub fn system_user(name: &str) {
    let exists = Command::new("id").arg(name).output().expect("id");
    if exists.status.success() {
        return;
    }
    let made = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ])
        .output()
        .expect("useradd");
    // Another test may have made it meanwhile.
    let exists = Command::new("id").arg(name).output().expect("id");
    assert!(exists.status.success(), "useradd {name}: {made:?}");
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `limit` saying `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// libfaketime, preloaded into the supervisor and its roles; the offset in `file` is read
/// again at every clock reading, so a test can step the wall clock of running processes (the
/// monotonic clock, which timers use, is left alone: as when NTP steps a host's clock).
pub fn faketime_env(file: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "LD_PRELOAD",
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1".to_string(),
        ),
        ("FAKETIME_TIMESTAMP_FILE", file.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
}

/// Whether the tests run as root (CI does; the unprivileged paths are tested by `runuser`).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Wall-clock milliseconds (every role runs on this machine), for instant windows.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Is `pid` a live (not zombie) process?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => !s
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
        Err(_) => false,
    }
}

/// Live processes of process group `pgid` (killed ones may linger as zombies until PID 1
/// reaps them: those are dead).
pub fn group_survivors(pgid: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .arg("-g")
        .arg(pgid.to_string())
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| alive(*p))
        .collect()
}

/// A field of /proc/PID/status in kB (VmRSS, VmHWM).
pub fn proc_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
}

/// Runs a checking tool of the repository (a script of `scripts/`, promtool) from the
/// repository's root; its stdout, which must contain `done` once it succeeded.
pub fn run_tool(
    program: &str,
    args: &[&std::ffi::OsStr],
    installed_by: &str,
    done: &str,
) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("{program} ({installed_by}): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(done), "{text}");
    text
}

/// One HTTP/1.1 request with `Connection: close`: (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A running `cronvisor up` in its own temp dir, listening on free loopback ports.
/// Dropping it stops it (SIGTERM, then SIGKILL) and checks nothing is left behind.
pub struct Cronvisor {
    pub dir: TempDir,
    pub child: Option<Child>,
    /// The binary `up` runs from (a private copy for self-upgrade tests).
    bin: PathBuf,
    /// Set in `up`'s environment.
    extra_env: Vec<(String, String)>,
    /// A command `up` runs under (`setpriv ...`, `runuser ...`), if any.
    wrapper: Vec<String>,
}

impl Cronvisor {
    pub fn start(tag: &str) -> Cronvisor {
        Cronvisor::start_with(tag, "")
    }

    /// Starts with `overrides` (TOML `[section]` headers and `key = value` lines) merged over
    /// the harness's config: loopback port 0 everywhere, quick restarts and polling.
    pub fn start_with(tag: &str, overrides: &str) -> Cronvisor {
        Cronvisor::start_prepared(tag, overrides, |_| {})
    }

    /// As [`Cronvisor::start_with`], with `prepare(data_dir)` run before `up` starts (to
    /// place the shared tokens of a cluster, for one).
    pub fn start_prepared(
        tag: &str,
        overrides: &str,
        prepare: impl FnOnce(&std::path::Path),
    ) -> Cronvisor {
        let dir = TempDir::new(tag);
        let base = format!(
            "data_dir = \"{}\"\n[listeners]\napi = \"127.0.0.1:0\"\nrpc = \"127.0.0.1:0\"\n\
             dispatch = \"127.0.0.1:0\"\n[supervisor]\ndrain_timeout_secs = 10\n\
             restart_backoff_initial_ms = 50\n[dispatcher]\npoll_interval_ms = 100\n\
             [executor]\nrun_as = \"root\"\nhttp_allow = [\"127.0.0.0/8\"]\n",
            dir.0.join("var").display()
        );
        std::fs::write(dir.0.join("cronvisor.toml"), merge_toml(&base, overrides))
            .expect("write config");
        std::fs::create_dir_all(dir.0.join("var")).expect("data dir");
        prepare(&dir.0.join("var"));
        let mut cv = Cronvisor {
            dir,
            child: None,
            bin: PathBuf::from(BIN),
            extra_env: Vec::new(),
            wrapper: Vec::new(),
        };
        cv.spawn();
        cv
    }

    /// As [`Cronvisor::start_with`], with `env` set in `up`'s environment (and so its roles').
    pub fn start_with_env(tag: &str, overrides: &str, env: &[(&str, &str)]) -> Cronvisor {
        let dir = TempDir::new(tag);
        let base = format!(
            "data_dir = \"{}\"\n[listeners]\napi = \"127.0.0.1:0\"\nrpc = \"127.0.0.1:0\"\n\
             dispatch = \"127.0.0.1:0\"\n[dispatcher]\npoll_interval_ms = 100\n\
             [executor]\nrun_as = \"root\"\nhttp_allow = [\"127.0.0.0/8\"]\n",
            dir.0.join("var").display()
        );
        std::fs::write(dir.0.join("cronvisor.toml"), merge_toml(&base, overrides))
            .expect("write config");
        std::fs::create_dir_all(dir.0.join("var")).expect("data dir");
        let mut cv = Cronvisor {
            dir,
            child: None,
            bin: PathBuf::from(BIN),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            wrapper: Vec::new(),
        };
        cv.spawn();
        cv
    }

    /// Starts `up` from a private copy of the binary, which the test may replace.
    pub fn start_copied(tag: &str) -> Cronvisor {
        let dir = TempDir::new(tag);
        let bin = dir.0.join("bin").join("cronvisor");
        std::fs::create_dir_all(dir.0.join("bin")).expect("bin dir");
        std::fs::copy(BIN, &bin).expect("copy binary");
        let base = format!(
            "data_dir = \"{}\"\n[listeners]\napi = \"127.0.0.1:0\"\nrpc = \"127.0.0.1:0\"\n\
             dispatch = \"127.0.0.1:0\"\n[dispatcher]\npoll_interval_ms = 100\n\
             [executor]\nrun_as = \"root\"\nhttp_allow = [\"127.0.0.0/8\"]\n",
            dir.0.join("var").display()
        );
        std::fs::write(dir.0.join("cronvisor.toml"), base).expect("write config");
        let mut cv = Cronvisor {
            dir,
            child: None,
            bin,
            extra_env: Vec::new(),
            wrapper: Vec::new(),
        };
        cv.spawn();
        cv
    }

    pub fn bin_path(&self) -> PathBuf {
        self.bin.clone()
    }

    /// Starts `up` as `user` (a system user made once per machine), its temp dir that user's,
    /// under `wrapper` (the command before the binary: `setpriv` with capabilities, or
    /// `runuser`), with `overrides` as [`Cronvisor::start_with`].
    pub fn start_as(tag: &str, overrides: &str, user: &str, wrapper: &[&str]) -> Cronvisor {
        system_user(user);
        let dir = TempDir::new(tag);
        let base = format!(
            "data_dir = \"{}\"\n[listeners]\napi = \"127.0.0.1:0\"\nrpc = \"127.0.0.1:0\"\n\
             dispatch = \"127.0.0.1:0\"\n[dispatcher]\npoll_interval_ms = 100\n\
             [executor]\nhttp_allow = [\"127.0.0.0/8\"]\n",
            dir.0.join("var").display()
        );
        std::fs::write(dir.0.join("cronvisor.toml"), merge_toml(&base, overrides))
            .expect("write config");
        std::fs::create_dir_all(dir.0.join("var")).expect("data dir");
        let chown = Command::new("chown")
            .args(["-R", &format!("{user}:"), &dir.0.display().to_string()])
            .status()
            .expect("chown");
        assert!(chown.success(), "chown {}", dir.0.display());
        let mut cv = Cronvisor {
            dir,
            child: None,
            bin: PathBuf::from(BIN),
            extra_env: vec![("HOME".into(), "/".into())],
            wrapper: wrapper.iter().map(|w| w.to_string()).collect(),
        };
        cv.spawn();
        cv
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.0.join("up.log")).expect("log file");
        let mut command = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let child = command
            .arg("up")
            .arg("--config")
            .arg(self.config_path())
            .env_remove("CRONVISOR_DATA_DIR")
            .env_remove("CRONVISOR_TOKEN")
            .env("RUST_LOG", "info")
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cronvisor up");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Starts `up` again after a stop, on the same data dir and config.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        // A supervisor killed with SIGKILL leaves its last status ("ready") behind: the new
        // one's readiness must not be read from it.
        let _ = std::fs::remove_file(self.data_dir().join("run/status.json"));
        self.spawn();
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.0.join("cronvisor.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.0.join("var")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("up.log")).unwrap_or_default()
    }

    /// The supervisor's status file.
    pub fn status(&self) -> Value {
        let path = self.data_dir().join("run/status.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("status json")
    }

    fn wait_ready(&mut self) {
        let path = self.data_dir().join("run/status.json");
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!("cronvisor up exited early ({st}):\n{}", self.log());
                }
            }
            let ready = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["phase"] == "ready");
            if ready {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("cronvisor not ready within 30 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of `role` in the serving generation.
    pub fn child_pid(&self, role: &str) -> Option<u32> {
        let st = self.status();
        let generation = st["generation"].clone();
        st["children"]
            .as_array()?
            .iter()
            .find(|c| c["role"] == role && c["generation"] == generation)
            .and_then(|c| c["pid"].as_u64())
            .map(|p| p as u32)
    }

    /// The pids of the three roles in the serving generation.
    pub fn role_pids(&self) -> Vec<u32> {
        ["dispatcher", "executor", "monitor"]
            .iter()
            .map(|r| self.child_pid(r).unwrap_or(0))
            .collect()
    }

    pub fn endpoint(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.data_dir().join("endpoints.json")).expect("endpoints");
        let v: Value = serde_json::from_str(&text).expect("endpoints json");
        v[name].as_str().expect("endpoint").to_string()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("api.token"))
            .expect("token")
            .trim()
            .to_string()
    }

    /// A CLI command against this instance, with no ambient CRONVISOR_* variable.
    fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("CRONVISOR_DATA_DIR")
            .env_remove("CRONVISOR_TOKEN")
            .env_remove("CRONVISOR_API_URL");
        cmd
    }

    /// Runs a CLI command against this instance.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().expect("run cli")
    }

    /// A CLI command authenticated by `token` (`CRONVISOR_TOKEN`) instead of the admin's.
    pub fn cli_command_with_token(&self, args: &[&str], token: &str) -> Command {
        let mut cmd = self.cli_command(args);
        cmd.env("CRONVISOR_TOKEN", token);
        cmd
    }

    /// Runs a CLI command with `input` on its standard input (passwords).
    pub fn cli_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cli_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cli");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("cli output")
    }

    /// `user add NAME --role ROLE [--groups G] --password-stdin`, which must succeed.
    pub fn add_user(&self, name: &str, role: &str, groups: Option<&str>, password: &str) {
        let mut args = vec!["user", "add", name, "--role", role, "--password-stdin"];
        if let Some(g) = groups {
            args.extend(["--groups", g]);
        }
        let out = self.cli_input(&args, &format!("{password}\n"));
        assert!(
            out.status.success(),
            "user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts a CLI command without waiting for it.
    pub fn cli_spawn(&self, args: &[&str]) -> Child {
        self.cli_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cli")
    }

    /// Sends `sig` to the supervisor.
    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "cronvisor {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `cronvisor <args> --json`, parsed.
    /// Runs the CLI, which must fail with `want` in what it prints on stderr (a refusal
    /// naming its field).
    pub fn refused(&self, args: &[&str], want: &str) {
        let out = self.cli(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }

    /// The alarms of `kind` on record (`alarms --json`).
    pub fn alarms_of(&self, kind: &str) -> Vec<Value> {
        self.json(&["alarms", "--limit", "1000"])
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["kind"] == kind)
            .collect()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).expect("json output")
    }

    /// One query on the standalone store with the sqlite3 CLI (works after `up` has stopped).
    pub fn sqlite(&self, sql: &str) -> String {
        let out = Command::new("sqlite3")
            .arg(self.data_dir().join("cronvisor.db"))
            .arg(sql)
            .output()
            .expect("sqlite3 (installed by scripts/install-deps.sh)");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs of a job, newest first.
    pub fn runs(&self, job: &str) -> Vec<Value> {
        self.json(&["runs", "--job", job, "--limit", "1000"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `job add --name NAME --schedule RULE --command CMD [extra...]`.
    pub fn add_job(&self, name: &str, rule: &str, command: &str, extra: &[&str]) {
        let mut args = vec![
            "job",
            "add",
            "--name",
            name,
            "--schedule",
            rule,
            "--command",
            command,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// `job run NAME`: the new run's id.
    pub fn run_now(&self, name: &str) -> String {
        self.json(&["job", "run", name])["run_id"]
            .as_i64()
            .expect("run id")
            .to_string()
    }

    /// `run show ID` once `done(state)` holds (bounded).
    pub fn wait_run(&self, id: &str, what: &str, done: impl Fn(&str) -> bool) -> Value {
        wait_for(Duration::from_secs(30), what, || {
            let r = self.json(&["run", "show", id]);
            done(r["state"].as_str().unwrap_or("")).then_some(r)
        })
    }

    /// The pid of a run once it is `running`.
    pub fn wait_running_pid(&self, id: &str) -> u32 {
        let r = self.wait_run(id, "the run to be running", |s| s == "running");
        r["pid"].as_u64().expect("pid") as u32
    }

    /// Waits until the job has at least `n` succeeded runs; returns all its runs.
    pub fn wait_succeeded(&self, job: &str, n: usize) -> Vec<Value> {
        wait_for(
            Duration::from_secs(20),
            &format!("{n} succeeded runs of {job}"),
            || {
                let runs = self.runs(job);
                (runs.iter().filter(|r| r["state"] == "succeeded").count() >= n).then_some(runs)
            },
        )
    }

    /// Sends a signal to the supervisor and waits (bounded) for it to exit.
    pub fn stop_with(&mut self, sig: i32, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cronvisor did not stop within {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cronvisor {
    fn drop(&mut self) {
        if self.child.is_some() {
            let pids: Vec<u32> = ["dispatcher", "executor", "monitor"]
                .iter()
                .filter_map(|r| {
                    std::panic::catch_unwind(|| self.child_pid(r))
                        .ok()
                        .flatten()
                })
                .collect();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.stop_with(libc::SIGTERM, Duration::from_secs(20))
            }));
            for pid in pids {
                if alive(pid) {
                    // SAFETY: plain kill(2) of a leftover test process.
                    unsafe {
                        libc::kill(pid as i32, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// Merges two flat TOML documents (root keys and one level of `[section]`), the second
/// overriding the first key by key. Enough for the harness's own configs.
pub fn merge_toml(base: &str, overrides: &str) -> String {
    let mut sections: Vec<(String, Vec<(String, String)>)> = vec![(String::new(), Vec::new())];
    for text in [base, overrides] {
        let mut current = String::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = name.to_string();
                if !sections.iter().any(|(n, _)| *n == current) {
                    sections.push((current.clone(), Vec::new()));
                }
                continue;
            }
            let (key, value) = line.split_once('=').expect("key = value");
            let (key, value) = (key.trim().to_string(), value.trim().to_string());
            let entries = &mut sections
                .iter_mut()
                .find(|(n, _)| *n == current)
                .expect("section")
                .1;
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(e) => e.1 = value,
                None => entries.push((key, value)),
            }
        }
    }
    let mut out = String::new();
    for (name, entries) in sections {
        if !name.is_empty() {
            out.push_str(&format!("[{name}]\n"));
        }
        for (k, v) in entries {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    out
}

/// Milliseconds field of a run.
pub fn ms(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}
