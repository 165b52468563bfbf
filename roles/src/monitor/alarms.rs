//! Alarms: the monitor looks once at every final run, raises an alarm when the outcome is one
//! the job asked for (merging repeats within a window, following a failure with "recovered"),
//! and delivers alarms by webhook and SMS gateway with retries. Delivery runs in the monitor,
//! never on the firing path, so a dead alarm channel cannot slow a fire.

use std::time::Duration;

use hyper::Method;
use serde_json::json;

use crate::config::{AlarmConfig, SmtpSecurity};
use crate::http::client::HttpClient;
use crate::http::tls::Trust;
use crate::metrics::{Metric, Metrics};
use crate::model::{now_millis, Alarm, AlarmKind, Channel};
use crate::store::{NewAlarm, Raised, RunEvent, Store, StoreError};

/// A claimed alarm still `sending` after this long is taken again (its monitor died).
const SENDING_STALE_MS: i64 = 60_000;

type Smtp = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;

pub struct Alarmer {
    store: Store,
    cfg: AlarmConfig,
    client: HttpClient,
    smtp: Option<Smtp>,
    host: String,
    raised: std::sync::Arc<Metric>,
    sent: std::sync::Arc<Metric>,
    failed: std::sync::Arc<Metric>,
}

impl Alarmer {
    pub fn new(store: Store, cfg: AlarmConfig, trust: &Trust, metrics: &Metrics) -> Alarmer {
        let host = crate::instance::hostname();
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

    /// The alarms (one per recipient) of a system event, stored with job and run 0 — by
    /// [`Alarmer::raise_system`], or in the transaction that removes a process found gone.
    pub fn system_alarms(&self, kind: &str, subject: &str) -> Vec<NewAlarm> {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let details = json!({
            "job": "(cronvisor)",
            "run": 0,
            "state": kind,
            "kind": kind,
            "host": self.host,
            "time": time,
            "link": self.cfg.console_url,
            "error": subject,
            "exit_code": null,
        });
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
    /// effort; each monitor sends its own). `store_back` follows through the store when it
    /// returns. Returns how many deliveries succeeded.
    pub async fn send_store_down(&self, error: &str) -> usize {
        tracing::error!(error, "store unreachable: alarming directly (not stored)");
        let sent = self
            .send_direct(
                "store_down",
                &format!("the store is unreachable: {error}"),
                &[],
            )
            .await;
        for (channel, _, result) in &sent {
            if let Err(e) = result {
                tracing::warn!(channel, error = %e, "store_down alarm not delivered");
            }
        }
        sent.iter().filter(|(_, _, r)| r.is_ok()).count()
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
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let details = json!({
            "job": "(cronvisor)",
            "run": 0,
            "state": kind,
            "kind": kind,
            "host": self.host,
            "time": time,
            "link": self.cfg.console_url,
            "error": subject,
            "exit_code": null,
        });
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

    async fn send_email(
        &self,
        alarm: &Alarm,
        subject: &str,
        text: &str,
    ) -> Result<(), DeliveryError> {
        use lettre::AsyncTransport;
        let smtp = self.smtp.as_ref().ok_or(DeliveryError::NoSmtp)?;
        let message = lettre::Message::builder()
            .from(
                self.cfg
                    .email
                    .from
                    .parse()
                    .map_err(|source| DeliveryError::Address {
                        what: "alarm.email.from",
                        value: self.cfg.email.from.clone(),
                        source,
                    })?,
            )
            .to(alarm
                .recipient
                .parse()
                .map_err(|source| DeliveryError::Address {
                    what: "recipient",
                    value: alarm.recipient.clone(),
                    source,
                })?)
            .subject(subject)
            .body(text.to_string())
            .map_err(DeliveryError::Message)?;
        smtp.send(message)
            .await
            .map(|_| ())
            .map_err(DeliveryError::Smtp)
    }

    /// A chat robot: the message in its service's format, signed when it has a secret; the
    /// service's own error code (it answers 200 with one) counts as a failed delivery.
    async fn send_robot(
        &self,
        robot: &crate::config::Robot,
        text: &str,
        mobiles: &[String],
    ) -> Result<(), DeliveryError> {
        let (url, body) = robot_request(robot, text, mobiles, now_millis());
        let reply = self
            .client
            .send(
                Method::POST,
                &url,
                None,
                Some(body.to_string().into_bytes()),
            )
            .await
            .map_err(DeliveryError::Http)?;
        if !reply.status.is_success() {
            return Err(DeliveryError::Status(reply.status));
        }
        let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let code = answer
            .get("errcode")
            .or_else(|| answer.get("code"))
            .and_then(|c| c.as_i64())
            .unwrap_or(0);
        if code != 0 {
            let message = answer
                .get("errmsg")
                .or_else(|| answer.get("msg"))
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string();
            return Err(DeliveryError::Robot { code, message });
        }
        Ok(())
    }

    async fn send(&self, alarm: &Alarm) -> Result<(), DeliveryError> {
        let d = &alarm.details;
        let field = |k: &str| match &d[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
        let error = field("error");
        let values: Vec<(&str, String)> = ["job", "run", "state", "kind", "host", "time", "link"]
            .iter()
            .map(|k| (*k, field(k)))
            .chain([
                ("count", alarm.count.to_string()),
                (
                    "times",
                    if alarm.count > 1 {
                        format!(" x{}", alarm.count)
                    } else {
                        String::new()
                    },
                ),
                (
                    "because",
                    if error.is_empty() {
                        String::new()
                    } else {
                        format!(": {error}")
                    },
                ),
                ("error", error.clone()),
                ("mobile", alarm.recipient.clone()),
            ])
            .collect();
        let fill = |t: &str, how: Escape| fill_template(t, &values, how);
        let text = fill(&self.cfg.text, Escape::Text);
        let reply = match alarm.channel.as_str() {
            "webhook" => {
                if let Some(robot) = self.cfg.robots.iter().find(|r| r.url == alarm.recipient) {
                    let mobiles = mobiles_of(d);
                    return self.send_robot(robot, &text, &mobiles).await;
                }
                let mut body = d.clone();
                body["text"] = json!(text);
                body["count"] = json!(alarm.count);
                self.client
                    .send(
                        Method::POST,
                        &alarm.recipient,
                        None,
                        Some(body.to_string().into_bytes()),
                    )
                    .await
            }
            "sms" if self.cfg.sms.provider != crate::config::SmsProvider::Http => {
                return self
                    .send_sms_provider(alarm, &text, &|t| fill(t, Escape::Text))
                    .await;
            }
            "sms" => {
                let sms = &self.cfg.sms;
                let body_kind = Escape::for_body(&sms.body, &sms.headers);
                let url = sms
                    .url
                    .as_deref()
                    .ok_or(DeliveryError::NoChannel("sms".into()))?;
                let method = sms
                    .method
                    .parse::<Method>()
                    .map_err(|_| DeliveryError::Method(sms.method.clone()))?;
                let headers: Vec<(String, String)> = sms
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), fill(v, Escape::Header)))
                    .collect();
                self.client
                    .request(
                        method,
                        &fill(url, Escape::Url),
                        &headers,
                        fill(&sms.body, body_kind).into_bytes(),
                    )
                    .await
            }
            "email" => {
                let subject = fill(&self.cfg.email.subject, Escape::Header);
                return self.send_email(alarm, &subject, &text).await;
            }
            other => return Err(DeliveryError::NoChannel(other.to_string())),
        };
        match reply {
            Ok(r) if r.status.is_success() => Ok(()),
            Ok(r) => Err(DeliveryError::Status(r.status)),
            Err(e) => Err(DeliveryError::Http(e)),
        }
    }

    /// An SMS through Aliyun, Tencent Cloud or Twilio: the provider's own request, and its
    /// answer read as it documents (an error code in a 200 is a failed delivery).
    async fn send_sms_provider(
        &self,
        alarm: &Alarm,
        text: &str,
        fill: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<(), DeliveryError> {
        let cfg = &self.cfg.sms;
        let request = super::sms::request(
            cfg,
            &alarm.recipient,
            text,
            fill,
            chrono::Utc::now(),
            &super::sms::nonce(),
        )
        .ok_or(DeliveryError::NoChannel("sms".into()))?;
        let reply = self
            .client
            .request(request.method, &request.url, &request.headers, request.body)
            .await
            .map_err(DeliveryError::Http)?;
        match super::sms::read_answer(cfg.provider, reply.status, &reply.body) {
            Err(refused) => Err(DeliveryError::Provider(refused)),
            Ok(true) => Ok(()),
            Ok(false) if reply.status.is_success() => Ok(()),
            Ok(false) => Err(DeliveryError::Status(reply.status)),
        }
    }
}

/// The job's mobiles an alarm carries (for a robot's @-mentions).
fn mobiles_of(details: &serde_json::Value) -> Vec<String> {
    details["mobiles"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

/// HMAC-SHA256 of `message` under `key`, base64.
fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    use base64::Engine;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, message).as_ref())
}

/// The URL and body a robot is sent `text` with at `now` (ms), in its service's format:
/// DingTalk and WeCom `{"msgtype":"text","text":{"content"}}`, Feishu/Lark
/// `{"msg_type":"text","content":{"text"}}`, Slack `{"text"}`. Signed when the robot has a
/// secret: DingTalk in the URL (`timestamp`, `sign` = HMAC of "timestamp\nsecret" under the
/// secret), Feishu in the body (`timestamp` in seconds, `sign` = HMAC of "" under
/// "timestamp\nsecret").
fn robot_request(
    robot: &crate::config::Robot,
    text: &str,
    mobiles: &[String],
    now: i64,
) -> (String, serde_json::Value) {
    use crate::config::RobotKind;
    // DingTalk highlights a mention only when the text names the number too.
    let dingtalk_text = if mobiles.is_empty() {
        text.to_string()
    } else {
        let at: Vec<String> = mobiles.iter().map(|m| format!("@{m}")).collect();
        format!("{text} {}", at.join(" "))
    };
    match robot.kind {
        RobotKind::Dingtalk => {
            let mut url = robot.url.clone();
            if let Some(secret) = &robot.secret {
                let sign = hmac_base64(secret.as_bytes(), format!("{now}\n{secret}").as_bytes());
                let sep = if url.contains('?') { '&' } else { '?' };
                url = format!(
                    "{url}{sep}timestamp={now}&sign={}",
                    Escape::Url.apply(&sign)
                );
            }
            let mut body = json!({"msgtype": "text", "text": {"content": dingtalk_text}});
            if !mobiles.is_empty() {
                body["at"] = json!({"atMobiles": mobiles, "isAtAll": false});
            }
            (url, body)
        }
        RobotKind::Feishu => {
            let mut body = json!({"msg_type": "text", "content": {"text": text}});
            if let Some(secret) = &robot.secret {
                let secs = now / 1000;
                body["timestamp"] = json!(secs.to_string());
                body["sign"] = json!(hmac_base64(format!("{secs}\n{secret}").as_bytes(), b""));
            }
            (robot.url.clone(), body)
        }
        RobotKind::Wecom => {
            let mut body = json!({"msgtype": "text", "text": {"content": text}});
            if !mobiles.is_empty() {
                body["text"]["mentioned_mobile_list"] = json!(mobiles);
            }
            (robot.url.clone(), body)
        }
        RobotKind::Slack => (robot.url.clone(), json!({"text": text})),
    }
}

/// How a value is written where an SMS gateway's template puts it: a job's name or an error
/// text must not break out of a URL, a JSON string or a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Percent-encoded (the URL, a form body).
    Url,
    /// Inside a JSON string (a JSON body).
    Json,
    /// A header value: no line breaks.
    Header,
    /// A plain-text body: as is.
    Text,
}

impl Escape {
    /// A JSON body (by its `Content-Type`, or its shape), a form body, or text.
    fn for_body(body: &str, headers: &std::collections::BTreeMap<String, String>) -> Escape {
        let kind = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        let t = body.trim_start();
        if kind.contains("json") || t.starts_with('{') || t.starts_with('[') {
            Escape::Json
        } else if kind.contains("x-www-form-urlencoded") {
            Escape::Url
        } else {
            Escape::Text
        }
    }

    fn apply(self, v: &str) -> String {
        match self {
            Escape::Url => crate::http::percent_encode(v),
            Escape::Json => {
                let quoted = serde_json::to_string(v).unwrap_or_default();
                quoted[1..quoted.len().saturating_sub(1).max(1)].to_string()
            }
            Escape::Header => v.replace(['\r', '\n'], " "),
            Escape::Text => v.to_string(),
        }
    }
}

/// `template` with each `{name}` replaced by its value, escaped `how`. One pass: a value that
/// contains `{job}` is not expanded again.
fn fill_template(template: &str, values: &[(&str, String)], how: Escape) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| {
            values
                .iter()
                .find(|(k, _)| *k == &after[..close])
                .map(|v| (close, v))
        }) {
            Some((close, (_, v))) => {
                out.push_str(&how.apply(v));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Why an alarm was not delivered: recorded with the alarm (`last_error`) and retried.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("SMTP is not configured")]
    NoSmtp,
    #[error("{what} `{value}`: {source}")]
    Address {
        what: &'static str,
        value: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("building the e-mail: {0}")]
    Message(#[source] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[source] lettre::transport::smtp::Error),
    #[error("`{0}` is not an HTTP method")]
    Method(String),
    #[error("the robot refused the message: code {code} {message}")]
    Robot { code: i64, message: String },
    #[error("{0}")]
    Provider(#[source] super::sms::Refused),
    #[error("no channel `{0}`")]
    NoChannel(String),
    #[error("answered {0}")]
    Status(hyper::StatusCode),
    #[error("{0}")]
    Http(#[source] crate::http::client::ClientError),
}

/// The SMTP transport of the config, if e-mail is configured (and valid: `Config::validate`
/// checked the security mode and the sender).
fn smtp_transport(cfg: &AlarmConfig) -> Option<Smtp> {
    let e = &cfg.email;
    let host = e.smtp_host.as_deref()?;
    let builder = match e.security {
        SmtpSecurity::Tls => Smtp::relay(host),
        SmtpSecurity::Starttls => Smtp::starttls_relay(host),
        SmtpSecurity::Plain => Ok(Smtp::builder_dangerous(host)),
    };
    let mut builder = match builder {
        Ok(b) => b.port(e.smtp_port).timeout(Some(Duration::from_secs(10))),
        Err(err) => {
            tracing::error!(error = %err, host, "SMTP settings unusable; e-mail alarms will fail");
            return None;
        }
    };
    if let Some(user) = &e.username {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            e.password.clone(),
        ));
    }
    Some(builder.build())
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
