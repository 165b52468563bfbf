//! The Kubernetes manifests (`deploy/kubernetes/`), checked offline as `scripts/test.sh` runs
//! them: valid against the Kubernetes schemas, their configs accepted by this binary's
//! `config check`, and the design's needs (drain within the grace, PDBs, probes) met.

#[test]
fn the_kubernetes_manifests_are_valid_and_their_configs_pass_config_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/check-kubernetes.py"))
        .args(["--bin", crate::harness::BIN, "--dir"])
        .arg(root.join("deploy/kubernetes"))
        .output()
        .expect("python3 (scripts/install-deps.sh installs kubernetes-validate)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("all Kubernetes checks passed"), "{text}");
}
