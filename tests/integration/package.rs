//! The Debian package (issue 29): built by `scripts/package/deb.sh` from the binary under
//! test, installed with `dpkg -i` on this machine (twice: the maintainer scripts are
//! idempotent), its units verified by systemd, its binary and config run from the installed
//! paths, then removed and purged — the config goes with the purge, the data stays.
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{is_root, TempDir, BIN};

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Builds the package from the binary under test into `dir`; its path.
fn build_deb(dir: &TempDir) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package/deb.sh");
    let out_dir = dir.0.display().to_string();
    let built = run(
        "bash",
        &[
            &script.display().to_string(),
            "--bin",
            BIN,
            "--out",
            &out_dir,
            "--compress",
            "none",
        ],
    );
    let deb = text(&built).trim().to_string();
    assert!(deb.ends_with(".deb"), "{deb}");
    deb
}

/// What it holds, owned by root, with the modes an install needs.
fn assert_contents(deb: &str) {
    let contents = text(&run("dpkg-deb", &["--contents", deb]));
    for (mode, path) in [
        ("-rwxr-xr-x root/root", "./usr/bin/cronvisor"),
        (
            "-rw-r--r-- root/root",
            "./usr/lib/systemd/system/cronvisor.service",
        ),
        (
            "-rw-r--r-- root/root",
            "./usr/lib/systemd/system/cronvisor.socket",
        ),
        (
            "-rw-r--r-- root/root",
            "./usr/lib/systemd/system/cronvisor-rpc.socket",
        ),
        ("-rw-r--r-- root/root", "./etc/cronvisor/cronvisor.toml"),
        (
            "-rw-r--r-- root/root",
            "./usr/share/man/man1/cronvisor.1.gz",
        ),
        (
            "-rw-r--r-- root/root",
            "./usr/share/bash-completion/completions/cronvisor",
        ),
    ] {
        assert!(
            contents
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path)),
            "{mode} {path} in:\n{contents}"
        );
    }
}

#[test]
fn the_debian_package_installs_verifies_and_removes_cleanly() {
    if !is_root() {
        eprintln!("skipped: installing a package needs root");
        return;
    }
    let dir = TempDir::new("deb");
    let deb = build_deb(&dir);
    assert_contents(&deb);
    // A leftover of an interrupted run goes first.
    let _ = Command::new("dpkg").args(["--purge", "cronvisor"]).output();
    run("dpkg", &["-i", &deb]);
    // The maintainer scripts run again on a reinstall and find everything in place.
    run("dpkg", &["-i", &deb]);
    let version = text(&run("/usr/bin/cronvisor", &["--version"]));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let check = text(&run(
        "/usr/bin/cronvisor",
        &[
            "--config",
            "/etc/cronvisor/cronvisor.toml",
            "config",
            "check",
        ],
    ));
    assert!(check.contains("/var/lib/cronvisor"), "{check}");
    assert_installed_paths();
    // systemd accepts the installed units as they are (the binary at /usr/bin).
    let verify = Command::new("systemd-analyze")
        .args(["verify", "/usr/lib/systemd/system/cronvisor.service"])
        .output()
        .expect("systemd-analyze");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let man = text(&run("gzip", &["-dc", "/usr/share/man/man1/cronvisor.1.gz"]));
    assert!(man.contains(".TH cronvisor"), "{man}");
    // Removed: the program goes, the edited config stays until the purge; the data stays.
    run("dpkg", &["-r", "cronvisor"]);
    assert!(!Path::new("/usr/bin/cronvisor").exists());
    assert!(Path::new("/etc/cronvisor/cronvisor.toml").exists());
    run("dpkg", &["--purge", "cronvisor"]);
    assert!(!Path::new("/etc/cronvisor/cronvisor.toml").exists());
    assert!(Path::new("/var/lib/cronvisor").exists());
}

/// The container image's tree (`scripts/package/image.sh`, built FROM scratch by
/// `deploy/container/Containerfile`): what the Containerfile copies is there, the binary runs
/// from it with only the libraries it holds, and as the image's non-root user its `/bin/sh`
/// runs a job's command and `config check` accepts its config.
#[test]
fn the_container_images_tree_runs_the_binary_and_jobs_as_its_non_root_user() {
    if !is_root() {
        eprintln!("skipped: chroot needs root");
        return;
    }
    let dir = TempDir::new("image");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package/image.sh");
    let out = dir.0.join("image").display().to_string();
    run(
        "bash",
        &[&script.display().to_string(), "--bin", BIN, "--out", &out],
    );
    let rootfs = format!("{out}/rootfs");
    let containerfile = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/container/Containerfile"),
    )
    .expect("Containerfile");
    for line in containerfile.lines().filter(|l| l.starts_with("COPY")) {
        let source = line
            .split_whitespace()
            .find(|w| !w.starts_with("COPY") && !w.starts_with("--"))
            .expect("a source");
        assert!(
            Path::new(&out).join(source).exists(),
            "{line}: {source} not in the tree"
        );
    }
    assert!(
        containerfile.contains("USER 10001:10001"),
        "non-root by default"
    );
    assert!(containerfile.lines().any(|l| l == "FROM scratch"));
    let version = text(&run(
        "chroot",
        &[&rootfs, "/usr/bin/cronvisor", "--version"],
    ));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let job = text(&run(
        "chroot",
        &[
            "--userspec=10001:10001",
            &rootfs,
            "/bin/sh",
            "-c",
            "sleep 0 && echo job ran && date -u +%Y",
        ],
    ));
    assert!(job.starts_with("job ran\n"), "{job}");
    let check = text(&run(
        "chroot",
        &[
            "--userspec=10001:10001",
            &rootfs,
            "/usr/bin/cronvisor",
            "--config",
            "/etc/cronvisor/cronvisor.toml",
            "config",
            "check",
        ],
    ));
    assert!(check.contains("/var/lib/cronvisor"), "{check}");
    let passwd = std::fs::read_to_string(format!("{rootfs}/etc/passwd")).expect("passwd");
    assert!(
        passwd.contains("nobody:x:65534"),
        "executor.run_as's user: {passwd}"
    );
}

/// The user, the data directory and the config as the maintainer scripts leave them.
fn assert_installed_paths() {
    let user = text(&run("getent", &["passwd", "cronvisor"]));
    assert!(user.starts_with("cronvisor:"), "{user}");
    let data = std::fs::metadata("/var/lib/cronvisor").expect("data dir");
    assert_eq!(data.permissions().mode() & 0o7777, 0o700);
    let uid: u32 = user
        .split(':')
        .nth(2)
        .and_then(|u| u.parse().ok())
        .expect("uid");
    assert_eq!(data.uid(), uid);
    let config = std::fs::metadata("/etc/cronvisor/cronvisor.toml").expect("config");
    assert_eq!(config.permissions().mode() & 0o7777, 0o640);
    let conffiles = text(&run(
        "dpkg-query",
        &["-W", "-f", "${Conffiles}", "cronvisor"],
    ));
    assert!(
        conffiles.contains("/etc/cronvisor/cronvisor.toml"),
        "{conffiles}"
    );
}
