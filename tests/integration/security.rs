//! What a job or a client sends cannot reach cronvisor's secrets (issue 13): a job starts from
//! a clean environment, its own `env` values are masked to people, and the servers hold under
//! idle and slow clients.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{http, wait_for, Cronvisor};

/// `NAME=VALUE` lines of a run's output (`env`), as a map.
fn env_of(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_job_sees_a_clean_environment_and_none_of_cronvisors_secrets() {
    let cv = Cronvisor::start_with_env(
        "security-env",
        "[executor]\npass_env = [\"CV_PASSED\"]\n",
        &[
            ("CV_PASSED", "yes"),
            ("CV_NOT_PASSED", "no"),
            ("CRONVISOR_SMTP_PASSWORD", "smtp-secret"),
            ("CRONVISOR_STORE_URL", ""),
        ],
    );
    cv.add_job(
        "envjob",
        "@yearly",
        "env",
        &[
            "--tz",
            "Europe/Paris",
            "--env",
            "MY_VAR=hello",
            "--env",
            "TOKEN=job-secret",
        ],
    );
    let id = cv.run_now("envjob");
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    let env = env_of(run["stdout"].as_str().unwrap_or(""));
    for (k, v) in [
        ("TZ", "Europe/Paris"),
        ("MY_VAR", "hello"),
        ("TOKEN", "job-secret"),
        ("CV_PASSED", "yes"),
        ("CRONVISOR_JOB", "envjob"),
        ("CRONVISOR_RUN_ID", id.as_str()),
        ("CRONVISOR_ATTEMPT", "1"),
        ("CRONVISOR_SHARD_INDEX", "0"),
        ("CRONVISOR_SHARD_TOTAL", "1"),
        ("SHELL", "/bin/sh"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:?}");
    }
    assert!(env
        .get("CRONVISOR_INSTANT")
        .is_some_and(|t| t.ends_with('Z')));
    for k in ["PATH", "HOME", "USER", "LOGNAME", "LANG"] {
        assert!(env.contains_key(k), "{k} missing: {env:?}");
    }
    // Nothing else: not the executor's variables, its notify socket, or cronvisor's secrets.
    let allowed = [
        "TZ",
        "MY_VAR",
        "TOKEN",
        "CV_PASSED",
        "CRONVISOR_JOB",
        "CRONVISOR_RUN_ID",
        "CRONVISOR_ATTEMPT",
        "CRONVISOR_SHARD_INDEX",
        "CRONVISOR_SHARD_TOTAL",
        "CRONVISOR_INSTANT",
        "SHELL",
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
    ];
    let extra: Vec<&String> = env
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    assert!(extra.is_empty(), "the job saw {extra:?}");
    let text = run["stdout"].as_str().unwrap_or("");
    assert!(
        !text.contains("smtp-secret") && !text.contains("NOTIFY_SOCKET"),
        "{text}"
    );
    assert!(!text.contains(&cv.token()), "the API token reached a job");
}

#[test]
fn job_env_values_are_masked_to_people_and_kept_by_the_mask() {
    let cv = Cronvisor::start("security-env-mask");
    cv.add_job(
        "masked",
        "@yearly",
        "echo $API_KEY",
        &["--env", "API_KEY=s3cret"],
    );
    let shown = cv.ok(&["job", "show", "masked"]);
    assert!(shown.contains("env:        API_KEY=***"), "{shown}");
    let json: Value = cv.json(&["job", "show", "masked"]);
    assert_eq!(json["env"]["API_KEY"], "***");
    // `***` keeps the value without anyone seeing it; the job still gets it.
    cv.ok(&[
        "job",
        "edit",
        "masked",
        "--env",
        "API_KEY=***",
        "--timeout",
        "30s",
    ]);
    let id = cv.run_now("masked");
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    assert_eq!(run["stdout"], "s3cret\n");
    cv.ok(&["job", "edit", "masked", "--env", "API_KEY=rotated"]);
    let id = cv.run_now("masked");
    assert_eq!(
        cv.wait_run(&id, "the run", |s| s == "succeeded")["stdout"],
        "rotated\n"
    );
    let audit = cv.ok(&["audit", "--job", "masked", "--json"]);
    assert!(
        !audit.contains("s3cret") && !audit.contains("rotated"),
        "{audit}"
    );
    for (args, message) in [
        (
            vec!["--env", "NOPE=***"],
            "error: env: `NOPE=***` keeps a value, but `NOPE` has none\n",
        ),
        (
            vec!["--env", "CRONVISOR_TOKEN=x"],
            "error: env: `CRONVISOR_TOKEN`: CRONVISOR_* variables are cronvisor's own\n",
        ),
        (
            vec!["--env", "1BAD=x"],
            "error: env: `1BAD` is not a variable name (letters, digits, `_`)\n",
        ),
    ] {
        let mut a = vec!["job", "edit", "masked"];
        a.extend(args);
        let out = cv.cli(&a);
        assert_eq!(String::from_utf8_lossy(&out.stderr), message);
    }
}

/// Open descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn idle_and_slow_clients_cannot_starve_the_servers() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let cv = Cronvisor::start_with(
        "security-slowloris",
        "[http]\nheader_read_timeout = \"2s\"\nmax_connections = 64\n",
    );
    cv.add_job("still", "@yearly", "echo still here", &[]);
    let executor = cv.child_pid("executor").expect("executor pid");
    let before = fds(executor);
    // 200 idle connections to the executor's RPC and 200 to the API: three times the cap.
    let mut idle = Vec::new();
    for addr in [cv.endpoint("rpc"), cv.endpoint("api")] {
        let addr: std::net::SocketAddr = addr.parse().expect("addr");
        for _ in 0..200 {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                idle.push(s);
            }
        }
    }
    // The executor holds at most the cap of them.
    let held = fds(executor);
    assert!(
        held <= before + 64 + 8,
        "executor fds: {before} before, {held} with idle clients"
    );
    // A slow-loris client (headers never finished) is cut off after the header timeout.
    let mut slow = TcpStream::connect(cv.endpoint("rpc")).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let started = std::time::Instant::now();
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the slow client got an answer instead of a close");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "closed only after {:?}",
        started.elapsed()
    );
    // Runs still run, the API still answers, a reload still completes.
    let id = cv.run_now("still");
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    assert_eq!(run["stdout"], "still here\n");
    assert!(cv.cli(&["reload"]).status.success(), "{}", cv.log());
    drop(idle);
    // `/readyz` tells strangers only the state; the details are for token holders.
    let (code, body) = http(&cv.endpoint("api"), "GET", "/readyz", None, None);
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v, serde_json::json!({"status": "ready", "role": "monitor"}));
    let (_, body) = http(
        &cv.endpoint("api"),
        "GET",
        "/readyz",
        Some(&cv.token()),
        None,
    );
    assert!(body.contains("\"store\":\"ok\""), "{body}");
    wait_for(
        Duration::from_secs(10),
        "the executor to let go of the idle clients",
        || (fds(cv.child_pid("executor").unwrap_or(executor)) <= before + 8).then_some(()),
    );
}

#[test]
fn the_data_dir_is_private_and_an_exposed_token_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let cv = Cronvisor::start("security-files");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&cv.data_dir()), 0o700, "data dir");
    for f in ["api.token", "rpc.token", "cronvisor.db"] {
        assert_eq!(mode(&cv.data_dir().join(f)), 0o600, "{f}");
    }
    let token = cv.data_dir().join("api.token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = cv.cli(&["job", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("can be read by others (mode 644)") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    cv.ok(&["job", "list"]);
}

#[test]
fn secret_http_headers_are_masked_to_people_but_sent_as_set() {
    let target = crate::harness::capture::Capture::start(0);
    let cv = Cronvisor::start("security-headers");
    let url = format!("http://{}/hook", target.addr);
    cv.ok(&[
        "job",
        "add",
        "--name",
        "hook",
        "--schedule",
        "@yearly",
        "--http-url",
        &url,
        "--http-header",
        "Authorization: Bearer s3cret",
        "--http-header",
        "X-Team: ops",
    ]);
    let shown: Value = cv.json(&["job", "show", "hook"]);
    assert_eq!(shown["http_headers"]["Authorization"], "***");
    assert_eq!(
        shown["http_headers"]["X-Team"], "ops",
        "plain headers stay readable"
    );
    assert!(!cv.ok(&["job", "show", "hook"]).contains("s3cret"));
    // `***` keeps the value; the request still carries it.
    cv.ok(&[
        "job",
        "edit",
        "hook",
        "--http-header",
        "Authorization: ***",
        "--http-header",
        "X-Team: dev",
    ]);
    let id = cv.run_now("hook");
    cv.wait_run(&id, "the call", |s| s == "succeeded");
    let sent = target.requests();
    let headers = &sent.last().expect("a request").headers;
    assert!(
        headers.iter().any(|h| h == "authorization: Bearer s3cret"),
        "{headers:?}"
    );
    assert!(headers.iter().any(|h| h == "x-team: dev"), "{headers:?}");
}

#[test]
fn the_cli_sends_its_token_only_where_its_user_chose() {
    use std::os::unix::fs::PermissionsExt;
    // A `var` planted in a shared place by another user, naming their server.
    let dir = crate::harness::TempDir::new("security-planted");
    let var = dir.0.join("var");
    std::fs::create_dir_all(&var).expect("var");
    std::fs::write(var.join("endpoints.json"), r#"{"api": "127.0.0.1:9"}"#).expect("endpoints");
    std::fs::write(var.join("api.token"), "planted").expect("token");
    std::fs::set_permissions(
        var.join("api.token"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    nix::unistd::chown(&var, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let run = |extra: &[&str]| {
        std::process::Command::new(crate::harness::BIN)
            .args(extra)
            .args(["job", "list"])
            .current_dir(&dir.0)
            .env_remove("CRONVISOR_CONFIG")
            .env_remove("CRONVISOR_DATA_DIR")
            .env_remove("CRONVISOR_API_URL")
            .env("CRONVISOR_TOKEN", "the-users-own-token")
            .output()
            .expect("cli")
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing the data dir ./var: it belongs to uid 65534"),
        "{err}"
    );
    nix::unistd::chown(&var, Some(nix::unistd::getuid()), None).expect("chown back");
    std::fs::set_permissions(&var, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = String::from_utf8_lossy(&run(&[]).stderr).to_string();
    assert!(err.contains("others can write it (mode 777)"), "{err}");
    // Chosen explicitly, it is used (and then fails to connect, as it names nothing).
    let err = String::from_utf8_lossy(&run(&["--data-dir", "var"]).stderr).to_string();
    assert!(err.contains("is cronvisor up?"), "{err}");
}

#[test]
fn a_full_executor_refuses_runs_and_says_why() {
    let cv = Cronvisor::start_with(
        "security-max-running",
        "[executor]\nmax_running = 1\n[dispatcher]\ndelivery_timeout = \"3s\"\nconnect_timeout = \"1s\"\n",
    );
    cv.add_job("hog", "@yearly", "sleep 30", &[]);
    cv.add_job("next", "@yearly", "echo next", &[]);
    let hog = cv.run_now("hog");
    cv.wait_running_pid(&hog);
    let id = cv.run_now("next");
    let run = cv.wait_run(&id, "the refused run to be recorded", |s| s == "failed");
    let error = run["error"].as_str().unwrap_or("");
    assert!(
        error.contains("no executor took the run") && error.contains("executor.max_running = 1"),
        "{error}"
    );
    cv.ok(&["run", "kill", &hog]);
    cv.wait_run(&hog, "the hog to be killed", |s| s == "killed");
    let id = cv.run_now("next");
    assert_eq!(
        cv.wait_run(&id, "a run with room", |s| s == "succeeded")["stdout"],
        "next\n"
    );
}

#[test]
fn recipients_are_refused_unless_they_look_like_what_they_are() {
    let cv = Cronvisor::start("security-recipients");
    for (flag, value, message) in [
        (
            "--admin-mobile",
            "555&to=evil",
            "error: admin_mobile: `555&to=evil` is not a phone number (+ and 3 to 20 digits)\n",
        ),
        (
            "--admin-email",
            "ops",
            "error: admin_email: `ops` is not an e-mail address\n",
        ),
    ] {
        let out = cv.cli(&[
            "job",
            "add",
            "--name",
            "r",
            "--schedule",
            "@yearly",
            "--command",
            "true",
            flag,
            value,
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stderr), message);
    }
    assert!(cv
        .json(&["job", "list"])
        .as_array()
        .is_some_and(|a| a.is_empty()));
}

/// A root executor runs jobs as `executor.run_as` (default `nobody`): the job's uid, HOME and
/// USER are that user's, and it cannot read the data dir — the tokens, the SQLite store.
#[test]
fn a_root_executors_jobs_run_as_the_unprivileged_user_and_cannot_read_its_secrets() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the executor is not root here, so jobs run as its own user");
        return;
    }
    let cv = Cronvisor::start_with("run-as", "[executor]\nrun_as = \"nobody\"\n");
    let data = cv.data_dir();
    let token = std::fs::read_to_string(data.join("api.token")).expect("token");
    cv.add_job(
        "peek",
        "@yearly",
        &format!(
            "id -un; id -G; echo HOME=$HOME USER=$USER; pwd; \
             for f in api.token rpc.token cronvisor.db; do cat {d}/$f >/dev/null 2>&1 && echo read $f || echo denied $f; done",
            d = data.display()
        ),
        &[],
    );
    let id = cv.run_now("peek");
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    let out = run["stdout"].as_str().unwrap_or("").to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "nobody", "{out}");
    assert!(
        !lines[1].split_whitespace().any(|g| g == "0"),
        "root's group kept: {out}"
    );
    assert_eq!(lines[2], "HOME=/nonexistent USER=nobody", "{out}");
    assert_eq!(lines[3], "/", "{out}");
    assert_eq!(
        &lines[4..],
        [
            "denied api.token",
            "denied rpc.token",
            "denied cronvisor.db"
        ],
        "{out}"
    );
    assert!(!out.contains(token.trim()));
}

/// A job may name its own user, one of the executor's `allowed_users`; any other fails with
/// the reason, and a name that is no user name is refused at once.
#[test]
fn a_job_runs_as_its_own_user_only_from_the_allowed_ones() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the executor is not root here");
        return;
    }
    let cv = Cronvisor::start_with(
        "run-as-job",
        "[executor]\nrun_as = \"nobody\"\nallowed_users = [\"daemon\"]\n",
    );
    cv.add_job("as-daemon", "@yearly", "id -un", &["--run-as", "daemon"]);
    let id = cv.run_now("as-daemon");
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    assert_eq!(run["stdout"], "daemon\n");
    assert!(
        cv.ok(&["job", "show", "as-daemon"])
            .contains("\nruns as:    daemon\n"),
        "job show says whom it runs as"
    );
    cv.add_job("as-bin", "@yearly", "id -un", &["--run-as", "bin"]);
    let id = cv.run_now("as-bin");
    let run = cv.wait_run(&id, "the refusal", |s| s == "failed");
    assert_eq!(
        run["error"], "run_as `bin` is not in this executor's executor.allowed_users",
        "{run}"
    );
    let bad = cv.cli(&[
        "job",
        "add",
        "--name",
        "x",
        "--schedule",
        "@daily",
        "--command",
        "true",
        "--run-as",
        "not a user",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .starts_with("error: run_as: `not a user` is not a user name"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// A job runs with its user's supplementary groups (what `id -G` shows a login of that user),
/// and none of root's.
#[test]
fn a_job_has_its_users_supplementary_groups() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the executor is not root here");
        return;
    }
    // A system user in a group of its own besides its primary one (made once per machine).
    let run = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("run")
    };
    run(&["groupadd", "-f", "cvtest-extra"]);
    if !run(&["id", "cvtest-job"]).status.success() {
        let made = run(&[
            "useradd",
            "--system",
            "--no-create-home",
            "--gid",
            "nogroup",
            "--groups",
            "cvtest-extra",
            "cvtest-job",
        ]);
        assert!(made.status.success(), "{made:?}");
    }
    let expected = String::from_utf8_lossy(&run(&["id", "-G", "cvtest-job"]).stdout)
        .trim()
        .to_string();
    assert!(expected.contains(' '), "two groups at least: {expected}");
    let cv = Cronvisor::start_with("groups", "[executor]\nrun_as = \"cvtest-job\"\n");
    cv.add_job("groups", "@yearly", "id -un; id -G", &[]);
    let id = cv.run_now("groups");
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    assert_eq!(run["stdout"], format!("cvtest-job\n{expected}\n"), "{run}");
}

/// A job's limits (`ulimit` as cron operators know it) are set on its process; a CPU limit
/// stops a job that spins past it; an out-of-range limit is refused naming the field.
#[test]
fn a_jobs_limits_are_set_on_its_process() {
    let cv = Cronvisor::start("limits");
    cv.add_job(
        "limited",
        "@yearly",
        "ulimit -n; ulimit -v; ulimit -t",
        &[
            "--max-open-files",
            "64",
            "--max-address-space-mb",
            "512",
            "--max-cpu",
            "1m",
        ],
    );
    assert!(
        cv.ok(&["job", "show", "limited"])
            .contains("\nlimits:     open files 64, address space 512 MiB, CPU 1m\n"),
        "job show says the limits"
    );
    let id = cv.run_now("limited");
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    assert_eq!(run["stdout"], "64\n524288\n60\n", "{run}");

    cv.add_job(
        "spin",
        "@yearly",
        "while :; do :; done",
        &["--max-cpu", "1s"],
    );
    let id = cv.run_now("spin");
    let run = cv.wait_run(&id, "the CPU limit to stop it", |s| s == "failed");
    assert!(
        run["error"].as_str().unwrap_or("").contains("SIGXCPU"),
        "{run}"
    );

    // 0 unsets a limit.
    cv.ok(&["job", "edit", "limited", "--max-open-files", "0"]);
    assert!(cv
        .ok(&["job", "show", "limited"])
        .contains("\nlimits:     address space 512 MiB, CPU 1m\n"));
    let bad = cv.cli(&["job", "edit", "limited", "--max-open-files", "2"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.starts_with("error: max_open_files: "), "{err}");
}
