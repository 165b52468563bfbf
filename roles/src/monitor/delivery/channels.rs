//! How an alarm reaches people, one channel each: e-mail (SMTP), chat robots (DingTalk,
//! Feishu, WeCom, Slack: their formats and signatures), webhooks and SMS gateways (a template,
//! or a provider's own API). Each failure is a [`DeliveryError`] recorded with the alarm and
//! retried by `alarms::Alarmer::deliver`.

use std::time::Duration;

use hyper::Method;
use serde_json::json;

use super::alarms::{Alarmer, Smtp};
use crate::config::{AlarmConfig, SmtpSecurity};
use crate::model::{now_millis, Alarm};

impl Alarmer {
    pub(super) async fn send_email(
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
    pub(super) async fn send_robot(
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

    pub(super) async fn send(&self, alarm: &Alarm) -> Result<(), DeliveryError> {
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
    pub(super) async fn send_sms_provider(
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
pub(super) fn mobiles_of(details: &serde_json::Value) -> Vec<String> {
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
pub(super) fn hmac_base64(key: &[u8], message: &[u8]) -> String {
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
pub(super) fn robot_request(
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
pub(super) enum Escape {
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
    /// A JSON body (by its `Content-Type`, or its shape), a form (by its type, or — with no
    /// type — by its shape: it starts with `name=`, as gateways read such a body as a form, so
    /// a job named `x&to=+1555` must not add a field), or text.
    pub(super) fn for_body(
        body: &str,
        headers: &std::collections::BTreeMap<String, String>,
    ) -> Escape {
        let kind = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        let t = body.trim_start();
        let form_shaped = t
            .split_once('=')
            .is_some_and(|(name, _)| !name.is_empty() && !name.contains([' ', '{', '\n']));
        if kind.contains("json") || t.starts_with('{') || t.starts_with('[') {
            Escape::Json
        } else if kind.contains("x-www-form-urlencoded") || (kind.is_empty() && form_shaped) {
            Escape::Url
        } else {
            Escape::Text
        }
    }

    pub(super) fn apply(self, v: &str) -> String {
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
pub(super) fn fill_template(template: &str, values: &[(&str, String)], how: Escape) -> String {
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
pub(super) fn smtp_transport(cfg: &AlarmConfig) -> Option<Smtp> {
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
