//! The Kubernetes manifests (`deploy/kubernetes/`), checked offline as `scripts/test.sh` runs
//! them: valid against the Kubernetes schemas, their configs accepted by this binary's
//! `config check`, and the design's needs (drain within the grace, PDBs, probes) met.

#[test]
fn the_kubernetes_manifests_are_valid_and_their_configs_pass_config_check() {
    let args = [
        "scripts/check-kubernetes.py",
        "--bin",
        crate::harness::BIN,
        "--dir",
        "deploy/kubernetes",
    ];
    crate::harness::run_tool(
        "python3",
        &args.map(std::ffi::OsStr::new),
        "scripts/install-deps.sh installs kubernetes-validate",
        "all Kubernetes checks passed",
    );
}
