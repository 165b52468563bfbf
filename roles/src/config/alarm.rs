//! Where alarms go: webhooks, an SMS gateway, e-mail. With no channel configured, alarms are
//! still recorded (and listed by `cronvisor alarms`), just not delivered.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{duration, optional};
use super::{invalid, ConfigError};
use crate::http::client::check_url;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmConfig {
    /// Base URL of the console, for the link to the run in every alarm.
    /// Default "http://127.0.0.1:7070".
    pub console_url: String,
    /// Repeated alarms of the same job, kind and recipient within this window are merged into
    /// one with a count. Default "5m".
    #[serde(with = "duration")]
    pub merge_window: Duration,
    /// Delivery attempts before an alarm is recorded `failed`. Default 10; the delay between
    /// attempts doubles from 1 s up to 5 minutes.
    pub max_attempts: u32,
    /// Webhooks: each gets a JSON POST with the run's details and a `text` field. http:// or
    /// https:// URLs. Default none.
    pub webhook_urls: Vec<String>,
    /// Chat robots (`[[alarm.robots]]`): DingTalk, Feishu/Lark, WeCom or Slack incoming
    /// webhooks, each sent the alarm's text in the message format its service expects (and
    /// signed, for DingTalk and Feishu, when a `secret` is given). They count as the `webhook`
    /// channel. Default none.
    pub robots: Vec<Robot>,
    pub sms: SmsConfig,
    pub email: EmailConfig,
}

named! {
    /// The chat services a robot can be.
    pub enum RobotKind {
        Dingtalk = "dingtalk",
        Feishu = "feishu",
        Wecom = "wecom",
        Slack = "slack",
    }
}

/// One chat robot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Robot {
    pub kind: RobotKind,
    /// The robot's webhook URL (it usually holds the robot's token: shown masked).
    pub url: String,
    /// The signing secret (DingTalk "加签", Feishu signature verification); none: unsigned.
    #[serde(default, with = "optional", skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            console_url: "http://127.0.0.1:7070".to_string(),
            merge_window: Duration::from_secs(300),
            max_attempts: 10,
            webhook_urls: Vec::new(),
            robots: Vec::new(),
            sms: SmsConfig::default(),
            email: EmailConfig::default(),
        }
    }
}

impl AlarmConfig {
    /// Whether any channel can deliver.
    pub fn any_channel(&self) -> bool {
        !self.webhook_urls.is_empty()
            || !self.robots.is_empty()
            || self.sms.url.is_some()
            || self.email.smtp_host.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (i, url) in self.webhook_urls.iter().enumerate() {
            check_url(url)
                .map_err(|reason| invalid(&format!("alarm.webhook_urls[{i}]"), reason))?;
        }
        for (i, r) in self.robots.iter().enumerate() {
            check_url(&r.url)
                .map_err(|reason| invalid(&format!("alarm.robots[{i}].url"), reason))?;
            if r.secret.is_some() && matches!(r.kind, RobotKind::Wecom | RobotKind::Slack) {
                return Err(invalid(
                    &format!("alarm.robots[{i}].secret"),
                    format!("{} robots are not signed", r.kind.as_str()),
                ));
            }
        }
        if let Some(url) = &self.sms.url {
            check_url(url).map_err(|reason| invalid("alarm.sms.url", reason))?;
        }
        if self.sms.method.parse::<hyper::Method>().is_err() {
            return Err(invalid("alarm.sms.method", "not an HTTP method"));
        }
        for (i, n) in self.sms.to.iter().enumerate() {
            crate::model::check_mobiles("mobile", n)
                .map_err(|e| invalid(&format!("alarm.sms.to[{i}]"), e.message))?;
        }
        if self.email.smtp_host.is_some()
            && self.email.from.parse::<lettre::message::Mailbox>().is_err()
        {
            return Err(invalid("alarm.email.from", "not an e-mail address"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("alarm.max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}

/// An HTTP SMS gateway. `body` and `url` may contain {job} {run} {state} {kind} {host} {time}
/// {link} {count} {mobile}; one request per recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// Gateway URL (http:// or https://). None disables SMS. Default none.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Default "POST".
    pub method: String,
    /// Extra request headers. Default none.
    pub headers: BTreeMap<String, String>,
    /// Request body template. Default "{job}: {kind} ({state}) at {time} {link}".
    pub body: String,
    /// Numbers alarmed for every job, besides each job's `admin_mobile`. Default none.
    pub to: Vec<String>,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            url: None,
            method: "POST".to_string(),
            headers: BTreeMap::new(),
            body: "{job}: {kind} ({state}) at {time} {link}".to_string(),
            to: Vec::new(),
        }
    }
}

named! {
    /// How the SMTP connection is secured.
    #[derive(Default)]
    pub enum SmtpSecurity {
        /// Plain connection upgraded with STARTTLS (the default; usually port 587).
        #[default]
        Starttls = "starttls",
        /// Implicit TLS (usually port 465).
        Tls = "tls",
        /// No encryption (a relay on localhost).
        Plain = "none",
    }
}

/// E-mail through SMTP (the original's `[alarm_mail_list]` maps onto `to`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// SMTP server; none disables e-mail. Default none.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// Default 587.
    pub smtp_port: u16,
    /// "starttls" (default), "tls" (implicit TLS, usually port 465) or "none".
    pub security: SmtpSecurity,
    /// SMTP login; none for no login. Default none.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SMTP password. Environment override: CRONVISOR_SMTP_PASSWORD. Never logged.
    pub password: String,
    /// Default "cronvisor@localhost".
    pub from: String,
    /// Addresses alarmed for every job, besides each job's `admin_email`. Default none.
    pub to: Vec<String>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_host: None,
            smtp_port: 587,
            security: SmtpSecurity::default(),
            username: None,
            password: String::new(),
            from: "cronvisor@localhost".to_string(),
            to: Vec::new(),
        }
    }
}
