//! A cluster whose every connection is TLS: its dependencies over TLS with their users, and
//! executors that prove their host identity with their certificate before they get a run.

use std::time::Duration;

use crate::harness::cluster::{let_time_pass, Cluster};
use crate::harness::mariadb::MariaDb;
use crate::harness::services::{Etcd, Redis};
use crate::harness::{now_ms, wait_for};

/// Every dependency over TLS, each with its user: etcd over https with its auth on, Redis over
/// TLS with an ACL user (the default user off), MariaDB taking TLS only. A cluster whose hosts
/// trust the CA (`tls.ca_file`, and `ssl-ca` in the store URL) and log in (`cluster.etcd_user`
/// and its password, the user and password in `rediss://` and `mysql://`) registers, locks,
/// records and fires as any other.
#[test]
fn a_cluster_reaches_etcd_redis_and_mariadb_over_tls_with_their_users() {
    let certs = crate::harness::TempDir::new("cluster-tls");
    crate::harness::tls::make_certificates(&certs.0, "server");
    let secured = crate::harness::services::Secured {
        certs: certs.0.clone(),
        user: "cv",
        password: "s3cret-pass",
    };
    let etcd = Etcd::start_secure(&secured);
    let redis = Redis::start_secure(&secured);
    assert!(redis.url().starts_with("rediss://cv:"));
    let db = MariaDb::start_secure(&certs.0);
    assert!(db.url().contains("ssl-mode=verify_identity"));
    // The server refuses a client without TLS.
    let plain = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "-P",
            &db.port.to_string(),
        ])
        .args([
            "-u",
            "app",
            "-papp-pw",
            "--skip-ssl",
            "-e",
            "SELECT 1",
            "cron",
        ])
        .output()
        .expect("mariadb client");
    assert!(
        !plain.status.success(),
        "MariaDB took a connection without TLS"
    );
    let mut c = Cluster::start_on(
        etcd,
        redis,
        db,
        format!(
            "etcd_user = \"cv\"\netcd_password = \"{}\"\n",
            secured.password
        ),
        format!(
            "[tls]\nca_file = \"{}\"\n",
            certs.0.join("ca.pem").display()
        ),
    );
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("e1", &["executor"]);
    wait_for(
        Duration::from_secs(20),
        "the executor registered in etcd",
        || (!c.etcd.keys("/cronvisor/executors/").is_empty()).then_some(()),
    );
    let jobs = c.every_second_jobs("tls", 3, &["d1"]);
    let from = now_ms();
    let_time_pass(Duration::from_secs(6));
    let to = now_ms() - 1000;
    c.assert_all_succeeded_once(&jobs, from, to);
    // The fire locks went through the TLS Redis, as that user.
    let locks = c
        .redis
        .cli(&["--scan", "--pattern", "cronvisor:fire:*"])
        .unwrap_or_default();
    assert!(!locks.trim().is_empty(), "no fire lock in Redis");
    // And nothing is degraded: the dispatcher's registry and lock, the monitor's probes.
    for listener in ["dispatch", "api"] {
        wait_for(Duration::from_secs(10), "ready, not degraded", || {
            (c.readyz("d1", listener)["status"] == "ready").then_some(())
        });
    }
}

/// The review's "the registry decides where the RPC token goes": under TLS an executor proves
/// its host identity with its certificate before it gets a run or the token. An entry written
/// into etcd for e1 at another address — its server holding a certificate of the same CA, but
/// not one naming e1 — gets no request at all (the handshake fails before the token is sent);
/// e1's runs all go to e1. An entry borrowing another host's id is refused outright.
#[test]
fn under_tls_an_executor_gets_runs_only_with_a_certificate_naming_its_host() {
    let certs = crate::harness::TempDir::new("cluster-names");
    crate::harness::tls::make_certificate(&certs.0, "host", "DNS:e1,DNS:d1,IP:127.0.0.1");
    crate::harness::tls::make_certificate(&certs.0, "impostor", "DNS:impostor,IP:127.0.0.1");
    let path = |f: &str| certs.0.join(f).display().to_string();
    let mut c = Cluster::start_on(
        Etcd::start(),
        Redis::start(),
        MariaDb::start(),
        String::new(),
        format!(
            "[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            path("ca.pem"),
            path("host.pem"),
            path("host.key")
        ),
    );
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("e1", &["executor"]);
    wait_for(Duration::from_secs(20), "e1 registered", || {
        (c.etcd.keys("/cronvisor/executors/").len() == 1).then_some(())
    });
    // The impostor: an https server of the same CA at another address, registered for e1's
    // runs (its own id, e1 as its host), and one borrowing e1's id for another host.
    let impostor = crate::harness::tls::TlsServer::serving(
        &certs.0,
        "impostor",
        crate::harness::TempDir::new("impostor"),
    );
    let addr = format!("127.0.0.1:{}", impostor.port);
    for (id, host) in [(format!("e1@{addr}"), "e1"), (format!("e1@{addr}x"), "e7")] {
        let info = serde_json::json!({
            "id": id, "url": format!("https://{addr}"), "host": host,
            "groups": ["g1", "both"], "version": "test", "capacity": 8,
        });
        c.etcd
            .ctl(&[
                "put",
                &format!("/cronvisor/executors/{id}/1"),
                &info.to_string(),
            ])
            .expect("register the impostor");
    }
    let d1 = c.get("d1");
    d1.ok(&[
        "job",
        "add",
        "--name",
        "pinned",
        "--schedule",
        "* * * * * *",
        "--command",
        "true",
        "--run-at",
        "e1",
    ]);
    let job: i64 = c.sql("SELECT id FROM cron.jobs WHERE name = 'pinned'")[0][0]
        .parse()
        .expect("job id");
    let from = now_ms();
    let_time_pass(Duration::from_secs(6));
    let until = now_ms();
    c.assert_window_succeeded_on(job, from, until, 4, "e1");
    assert!(
        impostor.requests().is_empty(),
        "the impostor got requests (and the RPC token): {:?}",
        impostor.requests()
    );
}
