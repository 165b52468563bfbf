//! Privilege separation (issue 23): whether cronvisor runs as root, as its own user with the
//! shipped systemd unit's capabilities, or as a person's own user, no job an operator adds
//! reads the tokens, the store, a role's environment or the control socket. Where jobs cannot
//! run apart (a person's own `up`), the install keeps to admin-only mode.
//!
//! CI runs as root: the unprivileged paths run `up` as a system user (`setpriv`, `runuser`).

use std::process::Command;

use crate::harness::{is_root, Cronvisor};

/// A job that tries every secret of the install: each token file and the SQLite store (read,
/// and written through sqlite3), every role's and the supervisor's `/proc/PID/environ`, and
/// the control socket. One line per attempt: `read WHAT` (followed by what it read) or
/// `denied WHAT`.
fn peek_command(cv: &Cronvisor) -> String {
    let d = cv.data_dir().display().to_string();
    let mut pids = cv.role_pids();
    pids.push(cv.child.as_ref().expect("running").id());
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!(
        "id -un; \
         for f in api.token rpc.token cronvisor.db; do \
           if cat {d}/$f 2>/dev/null; then echo; echo read $f; else echo denied $f; fi; done; \
         if sqlite3 {d}/cronvisor.db \"UPDATE users SET role='admin'\" 2>/dev/null; \
           then echo read store-write; else echo denied store-write; fi; \
         for p in $PPID {pids}; do \
           if tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null; then echo read environ-$p; \
           else echo denied environ; fi; done; \
         if python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); \
           s.connect('{d}/run/control.sock')\" 2>/dev/null; \
           then echo read control-socket; else echo denied control-socket; fi",
        pids = pids.join(" ")
    )
}

/// Asserts the peek job reached nothing: every attempt denied, no token in its output.
fn assert_nothing_reached(cv: &Cronvisor, out: &str) {
    let reached: Vec<&str> = out.lines().filter(|l| l.starts_with("read ")).collect();
    assert!(reached.is_empty(), "the job reached {reached:?}:\n{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("denied ")).count(),
        3 + 1 + (cv.role_pids().len() + 2) + 1,
        "{out}"
    );
    for name in ["api.token", "rpc.token"] {
        let secret = std::fs::read_to_string(cv.data_dir().join(name)).expect("token");
        assert!(!out.contains(secret.trim()), "{name} in the output");
    }
}

/// An operator token of group `g` adds the peek job, runs it and reads its output.
fn operator_peeks(cv: &Cronvisor) -> String {
    let out = cv.cli(&[
        "token", "create", "--name", "ops", "--role", "operator", "--groups", "g",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let as_operator = |args: &[&str]| {
        let out = cv
            .cli_command_with_token(args, &token)
            .output()
            .expect("cli");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let command = peek_command(cv);
    as_operator(&[
        "job",
        "add",
        "--name",
        "peek",
        "--schedule",
        "@yearly",
        "--group",
        "g",
        "--command",
        &command,
    ]);
    let started: serde_json::Value =
        serde_json::from_str(&as_operator(&["job", "run", "peek", "--json"])).expect("json");
    let id = started["run_id"].to_string();
    cv.wait_run(&id, "the peek run", |s| s == "succeeded");
    // What the operator sees, through the API with its own token.
    as_operator(&["run", "show", &id, "--json"])
}

fn stdout_of(run_json: &str) -> String {
    let run: serde_json::Value = serde_json::from_str(run_json).expect("run json");
    run["stdout"].as_str().unwrap_or("").to_string()
}

/// As root: jobs run as `executor.run_as` (nobody) and reach none of the install's secrets.
#[test]
fn under_root_an_operators_job_reaches_no_secret() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let cv = Cronvisor::start_with("priv-root", "[executor]\nrun_as = \"nobody\"\n");
    let out = stdout_of(&operator_peeks(&cv));
    assert!(out.starts_with("nobody\n"), "{out}");
    assert_nothing_reached(&cv, &out);
}

/// As the shipped systemd unit runs it: a dedicated user holding CAP_SETUID, CAP_SETGID and
/// CAP_KILL as ambient capabilities. Jobs run as nobody, with no capability left, and reach
/// none of the install's secrets; their timeouts still stop them.
#[test]
fn under_a_service_user_with_the_units_capabilities_an_operators_job_reaches_no_secret() {
    if !is_root() {
        eprintln!("skipped: needs root to start cronvisor as another user");
        return;
    }
    let caps = "+setuid,+setgid,+kill";
    let cv = Cronvisor::start_as(
        "priv-caps",
        "[executor]\nrun_as = \"nobody\"\n",
        "cvsvc",
        &[
            "setpriv",
            "--reuid=cvsvc",
            "--regid=cvsvc",
            "--init-groups",
            // As the unit: no privilege is gained by exec, and setuid(2) still works.
            "--no-new-privs",
            &format!("--inh-caps={caps}"),
            &format!("--ambient-caps={caps}"),
            "--",
        ],
    );
    let out = stdout_of(&operator_peeks(&cv));
    assert!(out.starts_with("nobody\n"), "{out}");
    assert_nothing_reached(&cv, &out);

    // The job holds no capability (it could otherwise switch back to any user).
    cv.add_job("caps", "@yearly", "grep ^Cap /proc/self/status", &[]);
    let id = cv.run_now("caps");
    let run = cv.wait_run(&id, "the caps run", |s| s == "succeeded");
    let caps = run["stdout"].as_str().unwrap_or("");
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert!(
            caps.contains(&format!("{set}:\t0000000000000000")),
            "{set} not empty:\n{caps}"
        );
    }
    // A job of another user is still stopped at its timeout (CAP_KILL).
    cv.add_job("slow", "@yearly", "sleep 60", &["--timeout", "1s"]);
    let id = cv.run_now("slow");
    cv.wait_run(&id, "the timeout", |s| s == "timed_out");
}

/// As a person's own user, with no privilege: jobs cannot run apart, so the install says so
/// and keeps to admin-only mode — no operator, viewer or scoped token is made, none let in. A
/// job still cannot read a role's environment or memory (the roles are non-dumpable).
#[test]
fn under_a_persons_own_user_the_install_is_admin_only_and_says_so() {
    if !is_root() {
        eprintln!("skipped: needs root to start cronvisor as another user");
        return;
    }
    let cv = Cronvisor::start_as("priv-self", "", "cvsvc", &["runuser", "-u", "cvsvc", "--"]);
    let log = cv.log();
    assert!(
        log.contains("admin-only mode") && log.contains("start cronvisor as root"),
        "said loudly at start:\n{log}"
    );
    for args in [
        &["token", "create", "--name", "ops", "--role", "operator"][..],
        &[
            "token", "create", "--name", "scoped", "--role", "admin", "--groups", "g",
        ],
    ] {
        let out = cv.cli(args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("admin-only mode") && err.contains("start cronvisor as root"),
            "{args:?}: {err}"
        );
    }
    let out = cv.cli_input(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "a long enough password\n",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: role: only admins"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The admin's own job runs as the same user, yet reads no role's environment.
    let pids: Vec<String> = cv.role_pids().iter().map(u32::to_string).collect();
    cv.add_job(
        "environ",
        "@yearly",
        &format!(
            "id -un; for p in $PPID {}; do cat /proc/$p/environ >/dev/null 2>&1 \
             && echo read $p || echo denied; done",
            pids.join(" ")
        ),
        &[],
    );
    let id = cv.run_now("environ");
    let run = cv.wait_run(&id, "the run", |s| s == "succeeded");
    let out = run["stdout"].as_str().unwrap_or("");
    assert!(out.starts_with("cvsvc\n"), "{out}");
    assert!(!out.contains("read"), "{out}");
}

/// The shipped unit passes systemd's own checks, and its exposure (systemd-analyze security)
/// stays at the level docs/SECURITY.md reports.
#[test]
fn the_shipped_unit_verifies_and_keeps_its_hardening() {
    let dir = crate::harness::TempDir::new("unit");
    for name in [
        "cronvisor.service",
        "cronvisor.socket",
        "cronvisor-rpc.socket",
    ] {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("conf/systemd")
                .join(name),
        )
        .expect("unit");
        let text = text.replace("/usr/local/bin/cronvisor", crate::harness::BIN);
        std::fs::write(dir.0.join(name), text).expect("write unit");
    }
    let unit = dir.0.join("cronvisor.service");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (installed by scripts/install-deps.sh)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&security.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for cronvisor.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level:\n{text}"));
    assert!(
        level <= 2.4,
        "exposure {level} (docs/SECURITY.md says 2.4):\n{text}"
    );
    for line in [
        "AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL",
        "CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_KILL",
        "NoNewPrivileges=yes",
    ] {
        assert!(
            std::fs::read_to_string(&unit)
                .expect("unit")
                .lines()
                .any(|l| l == line),
            "{line}"
        );
    }
}

/// A user named for one group (`executor.allowed_users_by_group`) is that group's jobs' only:
/// an operator of another group cannot borrow it.
#[test]
fn a_groups_own_run_as_user_is_refused_to_other_groups() {
    if !is_root() {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let cv = Cronvisor::start_with(
        "priv-by-group",
        "[executor]\nrun_as = \"nobody\"\n[executor.allowed_users_by_group]\nbilling = [\"daemon\"]\n",
    );
    cv.add_job(
        "mine",
        "@yearly",
        "id -un",
        &["--group", "billing", "--run-as", "daemon"],
    );
    let id = cv.run_now("mine");
    let run = cv.wait_run(&id, "the billing run", |s| s == "succeeded");
    assert_eq!(run["stdout"], "daemon\n");
    cv.add_job(
        "borrowed",
        "@yearly",
        "id -un",
        &["--group", "web", "--run-as", "daemon"],
    );
    let id = cv.run_now("borrowed");
    let run = cv.wait_run(&id, "the refusal", |s| s == "failed");
    assert_eq!(
        run["error"],
        "run_as `daemon` is not in this executor's executor.allowed_users nor in \
         executor.allowed_users_by_group.web",
        "{run}"
    );
}

/// An executor of some job groups (`executor.job_groups`) runs their jobs only: an operator
/// of another group naming its host fails with the reason.
#[test]
fn an_executor_of_some_groups_runs_their_jobs_only() {
    let cv = Cronvisor::start_with(
        "priv-job-groups",
        "[executor]\njob_groups = [\"billing\"]\n",
    );
    cv.add_job("ours", "@yearly", "echo ours", &["--group", "billing"]);
    let id = cv.run_now("ours");
    assert_eq!(
        cv.wait_run(&id, "the billing run", |s| s == "succeeded")["stdout"],
        "ours\n"
    );
    cv.add_job("theirs", "@yearly", "echo theirs", &["--group", "web"]);
    let id = cv.run_now("theirs");
    let run = cv.wait_run(&id, "the refusal", |s| s == "failed");
    assert_eq!(
        run["error"],
        "this executor takes runs of the job groups billing only (executor.job_groups), not `web`",
        "{run}"
    );
    assert_eq!(run["stdout"], "");
}
