//! Alarms: the monitor looks once at every final run, raises an alarm when the outcome is one
//! the job asked for (merging repeats within a window, following a failure with "recovered"),
//! and delivers alarms by webhook and SMS gateway with retries. Delivery runs in the monitor,
//! never on the firing path, so a dead alarm channel cannot slow a fire.

use std::time::Duration;

use serde_json::json;

use crate::config::AlarmConfig;
use crate::http::client::HttpClient;
use crate::http::tls::Trust;
use crate::metrics::{Metric, Metrics};
use crate::model::{now_millis, Alarm, AlarmKind, Channel};
use crate::store::{NewAlarm, Raised, RunEvent, Store, StoreError};

/// A claimed alarm still `sending` after this long is taken again (its monitor died).
const SENDING_STALE_MS: i64 = 60_000;

pub(super) type Smtp = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;

use super::channels::smtp_transport;
pub use super::channels::DeliveryError;
#[cfg(test)]
use super::channels::{fill_template, hmac_base64, robot_request, Escape};

/// An alarm sent directly (not through the store), with how each delivery went.
#[derive(Debug, Clone)]
pub struct Sent {
    pub kind: &'static str,
    pub details: serde_json::Value,
    /// When it was sent.
    pub at: i64,
    /// (channel, recipient, outcome).
    pub deliveries: Vec<(&'static str, String, Result<(), String>)>,
}

pub struct Alarmer {
    pub(super) store: Store,
    pub(super) cfg: AlarmConfig,
    pub(super) client: HttpClient,
    pub(super) smtp: Option<Smtp>,
    pub(super) host: String,
    pub(super) raised: std::sync::Arc<Metric>,
    pub(super) sent: std::sync::Arc<Metric>,
    pub(super) failed: std::sync::Arc<Metric>,
}

impl Alarmer {
    pub fn new(store: Store, cfg: AlarmConfig, trust: &Trust, metrics: &Metrics) -> Alarmer {
        // The host identity (`host` in the config, else the hostname): what the fleet's
        // instance ids and alarms name.
        let host = crate::instance::identity();
        let smtp = smtp_transport(&cfg);
        Alarmer {
            store,
            cfg,
            client: HttpClient::new(Duration::from_secs(10), trust),
            smtp,
            host,
            raised: metrics.counter(
                "cronvisor_alarms_raised_total",
                "",
                "Alarms raised (before merging).",
            ),
            sent: metrics.counter(
                "cronvisor_alarms_sent_total",
                "",
                "Alarm deliveries that succeeded.",
            ),
            failed: metrics.counter(
                "cronvisor_alarm_delivery_failures_total",
                "",
                "Alarm delivery attempts that failed.",
            ),
        }
    }

    /// Looks at the final runs not seen yet and raises their alarms. A failure streak ends
    /// with one `recovered`, at its first success: the later successes of the same scan are
    /// plain ones (the query picked them while the job was still failing).
    pub async fn scan(&self) -> Result<(), StoreError> {
        let mut failing: std::collections::HashMap<i64, bool> = std::collections::HashMap::new();
        for ev in self.store.unchecked_runs(500).await? {
            let was_failing = *failing.entry(ev.job_id).or_insert(true);
            let (kind, now_failing) = match ev.state.as_str() {
                "succeeded" if was_failing => ("recovered", Some(false)),
                "succeeded" => ("", None),
                "failed" | "timed_out" | "lost" => (ev.state.as_str(), Some(true)),
                other => (other, None),
            };
            let alarms = if AlarmKind::parse(kind).is_some_and(|k| ev.alarm_on.contains(&k)) {
                self.run_alarms(&ev, kind)
            } else {
                Vec::new()
            };
            let job_failing = now_failing.map(|f| (ev.job_id, f));
            let Some(raised) = self
                .store
                .check_run(ev.run_id, job_failing, &alarms, self.merge_since())
                .await?
            else {
                continue;
            };
            if let Some(f) = now_failing {
                failing.insert(ev.job_id, f);
            }
            self.raised.add(alarms.len() as u64);
            for r in raised {
                log_raised(r, &ev, kind);
            }
        }
        self.store.check_plain_successes().await?;
        self.scan_flows().await?;
        self.scan_sla().await
    }

    /// One alarm per run that broke its job's SLA (`late`, `overdue`) or was far from its
    /// usual duration (`slow`, `short`), to the job's recipients — unless the job alarms on nothing (`alarm_on = ""`).
    async fn scan_sla(&self) -> Result<(), StoreError> {
        let now = crate::model::now_millis();
        let (overdue, in_time) = self.store.overdue_runs(now).await?;
        self.store.sla_met(&in_time).await?;
        let slow = self.store.slow_runs(now).await?;
        let short = self.store.short_runs().await?;
        let late = self.store.late_runs(now).await?;
        for b in late.into_iter().chain(overdue).chain(slow).chain(short) {
            let alarms = match b.event.alarm_on.is_empty() {
                true => Vec::new(),
                false => self.run_alarms(&b.event, &b.event.state),
            };
            if let Some(raised) = self
                .store
                .check_sla(&b, &alarms, self.merge_since())
                .await?
            {
                self.raised.add(alarms.len() as u64);
                for r in raised {
                    log_raised(r, &b.event, &b.event.state);
                }
            }
        }
        Ok(())
    }

    /// One alarm per flow that ended failed or partial (`flow_failed`, `flow_partial`),
    /// naming the jobs that failed, to its root job's recipients — unless the root alarms on
    /// nothing (`alarm_on = ""`).
    async fn scan_flows(&self) -> Result<(), StoreError> {
        for (id, ev) in self.store.unchecked_flows(100).await? {
            let kind = ev.state.clone();
            let alarms = if ev.alarm_on.is_empty() {
                Vec::new()
            } else {
                self.run_alarms(&ev, &kind)
            };
            if let Some(raised) = self
                .store
                .check_flow(id, &alarms, self.merge_since())
                .await?
            {
                self.raised.add(alarms.len() as u64);
                for r in raised {
                    log_raised(r, &ev, &kind);
                }
            }
        }
        Ok(())
    }

    /// An alarm about the system rather than a job (an executor gone): to the global
    /// recipients of every channel. Stored with job and run 0; a store error is logged (the
    /// next check sees the store outage itself).
    pub async fn raise_system(&self, kind: &str, subject: &str) {
        if let Err(e) = self.record_system(kind, subject).await {
            tracing::warn!(kind, subject, error = %e, "cannot record the system alarm");
        }
    }

    async fn record_system(&self, kind: &str, subject: &str) -> Result<(), StoreError> {
        let alarms = self.system_alarms(kind, subject);
        tracing::warn!(kind, subject, "system alarm raised");
        self.store.raise_alarms(&alarms, self.merge_since()).await?;
        self.raised.add(alarms.len() as u64);
        Ok(())
    }

    /// What a system event's alarm says: no job, no run, this host, the console's link.
    fn system_details(&self, kind: &str, subject: &str) -> serde_json::Value {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        json!({
            "job": "(cronvisor)",
            "run": 0,
            "state": kind,
            "kind": kind,
            "host": self.host,
            "time": time,
            "link": self.cfg.console_url,
            "error": subject,
            "exit_code": null,
        })
    }

    /// The alarms (one per recipient) of a system event, stored with job and run 0 — by
    /// [`Alarmer::raise_system`], or in the transaction that removes a process found gone.
    pub fn system_alarms(&self, kind: &str, subject: &str) -> Vec<NewAlarm> {
        let details = self.system_details(kind, subject);
        new_alarms(0, 0, kind, &details, self.targets(None, None, &[]))
    }

    /// Since when a repeat of an alarm is folded into it.
    pub fn merge_since(&self) -> i64 {
        now_millis() - crate::config::values::ms(self.cfg.merge_window)
    }

    /// Counts the system alarms of `events` stored elsewhere (with a process found gone).
    pub fn count_system_raised(&self, events: usize) {
        let per_event = self.targets(None, None, &[]).len();
        self.raised.add((events * per_event) as u64);
    }

    /// The store itself is unreachable, so this alarm cannot be stored and retried like the
    /// others: it is sent at once, once, to the global recipients of every channel (best
    /// effort). `store_back` follows through the store when it returns, and the deliveries
    /// returned here are written down then ([`Alarmer::record_sent`]).
    pub async fn send_store_down(&self, error: &str) -> Sent {
        tracing::error!(error, "store unreachable: alarming directly (not stored)");
        let subject = format!("the store is unreachable: {error}");
        let at = now_millis();
        let deliveries = self.send_direct("store_down", &subject, &[]).await;
        for (channel, _, result) in &deliveries {
            if let Err(e) = result {
                tracing::warn!(channel, error = %e, "store_down alarm not delivered");
            }
        }
        Sent {
            kind: "store_down",
            details: self.system_details("store_down", &subject),
            at,
            deliveries: deliveries
                .into_iter()
                .map(|(c, r, res)| (c, r, res.map_err(|e| e.to_string())))
                .collect(),
        }
    }

    /// Writes down an alarm sent directly (each delivery `sent` or `failed` with its error;
    /// with no channel, `recorded`), for the history: nothing is sent again.
    pub async fn record_sent(&self, sent: &Sent) -> Result<(), StoreError> {
        let mut rows: Vec<(NewAlarm, Option<String>)> = sent
            .deliveries
            .iter()
            .map(|(channel, recipient, result)| {
                let alarm = NewAlarm {
                    job_id: 0,
                    run_id: 0,
                    kind: sent.kind.to_string(),
                    channel: channel.to_string(),
                    recipient: recipient.clone(),
                    status: if result.is_ok() { "sent" } else { "failed" },
                    details: sent.details.clone(),
                };
                (alarm, result.clone().err())
            })
            .collect();
        if rows.is_empty() {
            let mut alarm = new_alarms(
                0,
                0,
                sent.kind,
                &sent.details,
                vec![("none", String::new())],
            );
            rows.extend(alarm.drain(..).map(|a| (a, None)));
        }
        self.store.record_direct_alarms(&rows, sent.at).await
    }

    /// `alarms test`: a test alarm sent at once to the global recipients of every configured
    /// channel (or of `channels`), not stored; each delivery's outcome.
    pub async fn send_test(
        &self,
        channels: &[Channel],
        by: &str,
    ) -> Vec<(&'static str, String, Result<(), DeliveryError>)> {
        self.send_direct("test", &format!("a test alarm, sent by {by}"), channels)
            .await
    }

    /// Sends an alarm of `kind` to the global recipients now, without storing it.
    async fn send_direct(
        &self,
        kind: &str,
        subject: &str,
        channels: &[Channel],
    ) -> Vec<(&'static str, String, Result<(), DeliveryError>)> {
        let now = now_millis();
        let details = self.system_details(kind, subject);
        let mut out = Vec::new();
        for (channel, recipient) in self.targets(None, None, channels) {
            if channel == "none" {
                continue;
            }
            let alarm = Alarm {
                id: 0,
                job_id: 0,
                run_id: 0,
                kind: kind.to_string(),
                channel: channel.to_string(),
                recipient: recipient.clone(),
                status: "sending".to_string(),
                attempts: 0,
                last_error: None,
                count: 1,
                details: details.clone(),
                created_at: now,
                updated_at: now,
            };
            let result = self.send(&alarm).await;
            match &result {
                Ok(()) => self.sent.inc(),
                Err(_) => self.failed.inc(),
            }
            out.push((channel, recipient, result));
        }
        out
    }

    /// Where an alarm goes: every webhook; the SMS gateway for the job's mobiles and
    /// `alarm.sms.to`; e-mail for the job's addresses and `alarm.email.to` — limited to the
    /// job's `alarm_channels` when it names some. With none left, the alarm is only recorded
    /// (channel `none`).
    fn targets(
        &self,
        mobiles: Option<&str>,
        emails: Option<&str>,
        channels: &[Channel],
    ) -> Vec<(&'static str, String)> {
        let list = |job: Option<&str>, global: &[String]| -> Vec<String> {
            job.into_iter()
                .flat_map(|m| m.split(','))
                .map(str::trim)
                .chain(global.iter().map(String::as_str))
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut t: Vec<(&'static str, String)> = self
            .cfg
            .webhook_urls
            .iter()
            .chain(self.cfg.robots.iter().map(|r| &r.url))
            .map(|u| ("webhook", u.clone()))
            .collect();
        if self.cfg.sms.enabled() {
            t.extend(
                list(mobiles, &self.cfg.sms.to)
                    .into_iter()
                    .map(|m| ("sms", m)),
            );
        }
        if self.cfg.email.smtp_host.is_some() {
            t.extend(
                list(emails, &self.cfg.email.to)
                    .into_iter()
                    .map(|m| ("email", m)),
            );
        }
        if !channels.is_empty() {
            t.retain(|(c, _)| channels.iter().any(|w| w.as_str() == *c));
        }
        if t.is_empty() {
            t.push(("none", String::new()));
        }
        t
    }

    /// The alarms (one per recipient) of a run's outcome.
    fn run_alarms(&self, ev: &RunEvent, kind: &str) -> Vec<NewAlarm> {
        let time = ev
            .ended_at
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let link = format!(
            "{}/api/v1/runs/{}",
            self.cfg.console_url.trim_end_matches('/'),
            ev.run_id
        );
        let details = json!({
            "job": ev.job_name,
            "run": ev.run_id,
            "state": ev.state,
            "kind": kind,
            "host": self.host,
            "time": time,
            "link": link,
            "error": ev.error,
            "exit_code": ev.exit_code,
            "mobiles": ev.admin_mobile,
        });
        let targets = self.targets(
            ev.admin_mobile.as_deref(),
            ev.admin_email.as_deref(),
            &ev.alarm_channels,
        );
        new_alarms(ev.job_id, ev.run_id, kind, &details, targets)
    }

    /// Delivers the alarms that are due.
    pub async fn deliver(&self) -> Result<(), StoreError> {
        let now = now_millis();
        for alarm in self.store.due_alarms(now, now - SENDING_STALE_MS).await? {
            if !self.store.claim_alarm(alarm.id, &alarm.status).await? {
                continue;
            }
            match self.send(&alarm).await {
                Ok(()) => {
                    self.sent.inc();
                    self.store.alarm_attempted(alarm.id, None, None).await?;
                }
                Err(e) => {
                    self.failed.inc();
                    let attempts = alarm.attempts + 1;
                    let next = (attempts < i64::from(self.cfg.max_attempts)).then(|| {
                        let delay = (1000i64 << attempts.clamp(0, 20)).min(300_000);
                        now_millis() + delay
                    });
                    tracing::warn!(alarm = alarm.id, channel = %alarm.channel, attempts, error = %e,
                        "alarm delivery failed");
                    self.store
                        .alarm_attempted(alarm.id, Some(&e.to_string()), next)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// One alarm per target: `none` (no channel) is kept for the record only.
fn new_alarms(
    job_id: i64,
    run_id: i64,
    kind: &str,
    details: &serde_json::Value,
    targets: Vec<(&'static str, String)>,
) -> Vec<NewAlarm> {
    targets
        .into_iter()
        .map(|(channel, recipient)| NewAlarm {
            job_id,
            run_id,
            kind: kind.to_string(),
            channel: channel.to_string(),
            recipient,
            status: if channel == "none" {
                "recorded"
            } else {
                "pending"
            },
            details: details.clone(),
        })
        .collect()
}

fn log_raised(raised: Raised, ev: &RunEvent, kind: &str) {
    match raised {
        Raised::Merged(id) => tracing::debug!(alarm = id, job = %ev.job_name, kind, "alarm merged"),
        Raised::New(id) => {
            tracing::warn!(alarm = id, job = %ev.job_name, run = ev.run_id, kind, "alarm raised")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tls::Trust;
    use crate::metrics::Metrics;
    use crate::model::RunState;
    use crate::store::tests::{spec, temp_store};
    use crate::store::{Recorded, RunOutcome};

    /// Records a finished scheduled run of `job` at `instant` in `state`.
    async fn finished(store: &Store, job: i64, instant: i64, state: RunState) {
        let Recorded::New(id) = store
            .record_fire(
                job,
                instant,
                "",
                crate::model::Trigger::Schedule,
                RunState::Dispatched,
            )
            .await
            .expect("fire")
        else {
            panic!("instant {instant} fired twice")
        };
        let mut outcome = RunOutcome::failed(String::new());
        outcome.state = state;
        outcome.error = None;
        store.finish_run(id, &outcome, None).await.expect("finish");
    }

    #[tokio::test]
    async fn a_failure_streak_ends_with_one_recovered_however_many_successes_a_scan_sees() {
        let t = temp_store("recovered-once").await;
        let alarmer = Alarmer::new(
            t.store.clone(),
            AlarmConfig::default(),
            &Trust::load(None).expect("roots"),
            &Metrics::new("monitor"),
        );
        let job = t.store.insert_job(&spec("flaky")).await.expect("job").id;
        finished(&t.store, job, 1_000, RunState::Failed).await;
        alarmer.scan().await.expect("scan");
        // Nine successes, then one scan: one recovery, not nine.
        for i in 2..=10 {
            finished(&t.store, job, i * 1_000, RunState::Succeeded).await;
        }
        alarmer.scan().await.expect("scan");
        // A failure, then two successes: a new streak and, by the next scan (the successes of
        // a job not failing when a scan starts wait for the following one), one new recovery.
        finished(&t.store, job, 11_000, RunState::Failed).await;
        finished(&t.store, job, 12_000, RunState::Succeeded).await;
        finished(&t.store, job, 13_000, RunState::Succeeded).await;
        alarmer.scan().await.expect("scan");
        alarmer.scan().await.expect("scan");
        let raised: Vec<(String, i64)> = t
            .store
            .alarms(100)
            .await
            .expect("alarms")
            .into_iter()
            .map(|a| (a.kind, a.count))
            .collect();
        let count = |kind: &str| -> i64 {
            raised
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, c)| c)
                .sum()
        };
        assert_eq!(count("recovered"), 2, "{raised:?}");
        assert_eq!(count("failed"), 2, "{raised:?}");
    }

    #[test]
    fn sms_templates_escape_what_they_insert_for_where_it_goes() {
        use super::{fill_template, Escape};
        let values = vec![
            ("job", "a&b=c \"q\"\n{mobile}".to_string()),
            ("mobile", "+15551234".to_string()),
        ];
        assert_eq!(
            fill_template(
                "https://sms/send?to={mobile}&text={job}",
                &values,
                Escape::Url
            ),
            "https://sms/send?to=%2B15551234&text=a%26b%3Dc%20%22q%22%0A%7Bmobile%7D"
        );
        let json = fill_template(
            r#"{"to": "{mobile}", "text": "{job}"}"#,
            &values,
            Escape::Json,
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(parsed["text"], "a&b=c \"q\"\n{mobile}");
        assert_eq!(
            fill_template("X {job}", &values, Escape::Header),
            "X a&b=c \"q\" {mobile}"
        );
        assert_eq!(
            fill_template("{unknown} {", &values, Escape::Text),
            "{unknown} {"
        );
        let headers = std::collections::BTreeMap::new();
        assert_eq!(Escape::for_body(r#"{"a": 1}"#, &headers), Escape::Json);
        assert_eq!(Escape::for_body("job {job}", &headers), Escape::Text);
        // A form-shaped body with no type is read as a form by gateways: percent-encoded, so
        // a job named `x&to=+1555` adds no field (the review's finding).
        assert_eq!(
            Escape::for_body("to={mobile}&text={job}", &headers),
            Escape::Url
        );
        let text: std::collections::BTreeMap<String, String> =
            [("Content-Type".to_string(), "text/plain".to_string())].into();
        assert_eq!(Escape::for_body("a=b {job}", &text), Escape::Text);
    }

    #[test]
    fn robots_get_their_format_and_signature() {
        use crate::config::{Robot, RobotKind};
        let robot = |kind, secret: Option<&str>| Robot {
            kind,
            url: "https://robot.example/send?access_token=t".into(),
            secret: secret.map(str::to_string),
        };
        let (url, body) = super::robot_request(
            &robot(RobotKind::Dingtalk, Some("SEC")),
            "hi",
            &[],
            1_700_000_000_000,
        );
        assert_eq!(
            body,
            serde_json::json!({"msgtype": "text", "text": {"content": "hi"}})
        );
        // DingTalk's documented signature: base64(HMAC-SHA256("timestamp\nsecret")), URL-encoded.
        let expected = super::hmac_base64(b"SEC", b"1700000000000\nSEC");
        assert!(url.starts_with(
            "https://robot.example/send?access_token=t&timestamp=1700000000000&sign="
        ));
        assert!(url.ends_with(&super::Escape::Url.apply(&expected)), "{url}");
        let (_, body) = super::robot_request(
            &robot(RobotKind::Feishu, Some("SEC")),
            "hi",
            &[],
            1_700_000_000_000,
        );
        assert_eq!(body["msg_type"], "text");
        assert_eq!(body["content"]["text"], "hi");
        assert_eq!(body["timestamp"], "1700000000");
        assert_eq!(body["sign"], super::hmac_base64(b"1700000000\nSEC", b""));
        let (_, body) = super::robot_request(&robot(RobotKind::Slack, None), "hi", &[], 0);
        assert_eq!(body, serde_json::json!({"text": "hi"}));
        // @-mentions of the job's mobiles where the service has them.
        let mobiles = vec!["13800000001".to_string()];
        let (_, body) = super::robot_request(&robot(RobotKind::Dingtalk, None), "hi", &mobiles, 0);
        assert_eq!(body["text"]["content"], "hi @13800000001");
        assert_eq!(
            body["at"],
            serde_json::json!({"atMobiles": ["13800000001"], "isAtAll": false})
        );
        let (_, body) = super::robot_request(&robot(RobotKind::Wecom, None), "hi", &mobiles, 0);
        assert_eq!(
            body["text"]["mentioned_mobile_list"],
            serde_json::json!(["13800000001"])
        );
    }
}
