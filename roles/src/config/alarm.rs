//! Where alarms go: webhooks, an SMS gateway, e-mail. With no channel configured, alarms are
//! still recorded (and listed by `cronvisor alarms`), just not delivered.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{duration, optional};
use super::{invalid, ConfigError};
use crate::model::check_url;

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
    /// The text of an alarm on every channel (the webhook's `text`, robots, e-mail, Twilio),
    /// with {job} {run} {state} {kind} {host} {time} {link} {count} {error}, and {times}
    /// (" x3" when merged, else empty) and {because} (": <error>" when there is one), so it
    /// can be written in the operators' own language. Default
    /// "cronvisor: job `{job}` {kind}{times} (run {run}, state {state}) on {host} at {time}{because} {link}".
    pub text: String,
    pub sms: SmsConfig,
    pub email: EmailConfig,
}

/// The default alarm text (what every channel said before texts were templates).
pub const DEFAULT_TEXT: &str =
    "cronvisor: job `{job}` {kind}{times} (run {run}, state {state}) on {host} at {time}{because} {link}";

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
            text: DEFAULT_TEXT.to_string(),
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
            || self.sms.enabled()
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
        self.sms.validate()?;
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

named! {
    /// Which service sends the SMS alarms.
    #[derive(Default)]
    pub enum SmsProvider {
        /// A templated HTTP request to any gateway (`url`, `method`, `headers`, `body`).
        #[default]
        Http = "http",
        /// Aliyun SMS (`SendSms`, RPC signature): `key_id`, `key_secret`, `sign_name`,
        /// `template` (the template code) and `params` (a table of template variables).
        Aliyun = "aliyun",
        /// Tencent Cloud SMS (`SendSms` 2021-01-11, TC3-HMAC-SHA256): `key_id` (SecretId),
        /// `key_secret` (SecretKey), `app_id` (SmsSdkAppId), `sign_name`, `template` (the
        /// template id), `region` and `params` (a list).
        Tencent = "tencent",
        /// Twilio Messaging: `key_id` (Account SID), `key_secret` (Auth Token), `from`.
        Twilio = "twilio",
    }
}

/// The template variables a provider's registered template gets: named (Aliyun's
/// `TemplateParam`) or in order (Tencent's `TemplateParamSet`). Values are alarm templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SmsParams {
    Named(BTreeMap<String, String>),
    Ordered(Vec<String>),
}

/// SMS alarms, one message per recipient. The `http` provider's `body`, `url` and header
/// values may contain {job} {run} {state} {kind} {host} {time} {link} {count} {error}
/// {mobile}; so may the `params` of the others.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// "http" (default), "aliyun", "tencent" or "twilio".
    pub provider: SmsProvider,
    /// `http`: the gateway URL (http:// or https://); none disables SMS. The others: their
    /// service's endpoint, only to reach another one (a private region, a test server).
    /// Default none.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `http`: default "POST".
    pub method: String,
    /// `http`: extra request headers. Default none.
    pub headers: BTreeMap<String, String>,
    /// `http`: the request body template. Default "{job}: {kind} ({state}) at {time} {link}".
    pub body: String,
    /// Numbers alarmed for every job, besides each job's `admin_mobile`. Default none.
    pub to: Vec<String>,
    /// The access key id (Aliyun AccessKeyId, Tencent SecretId, Twilio Account SID).
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Its secret (AccessKeySecret, SecretKey, Auth Token). Environment override:
    /// CRONVISOR_SMS_KEY_SECRET. Never logged nor shown.
    pub key_secret: String,
    /// Aliyun and Tencent: the registered signature name.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub sign_name: Option<String>,
    /// Aliyun: the template code (`SMS_...`); Tencent: the template id.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Tencent: the SMS application's SdkAppId.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Aliyun RegionId (default "cn-hangzhou"), Tencent region (default "ap-guangzhou").
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Twilio: the sending number (E.164) or messaging service.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The registered template's variables. Default for Aliyun
    /// `{job = "{job}", kind = "{kind}", time = "{time}"}`, for Tencent
    /// `["{job}", "{kind}", "{time}"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<SmsParams>,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("provider", &self.provider)
            .field("url", &self.url.as_deref().map(crate::model::masked_url))
            .field("to", &self.to)
            .field("key_id", &self.key_id)
            .field(
                "key_secret",
                &if self.key_secret.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("sign_name", &self.sign_name)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            provider: SmsProvider::Http,
            url: None,
            method: "POST".to_string(),
            headers: BTreeMap::new(),
            body: "{job}: {kind} ({state}) at {time} {link}".to_string(),
            to: Vec::new(),
            key_id: None,
            key_secret: String::new(),
            sign_name: None,
            template: None,
            app_id: None,
            region: None,
            from: None,
            params: None,
        }
    }
}

impl SmsConfig {
    /// Whether SMS alarms can be sent at all.
    pub fn enabled(&self) -> bool {
        match self.provider {
            SmsProvider::Http => self.url.is_some(),
            _ => self.key_id.is_some(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            check_url(url).map_err(|reason| invalid("alarm.sms.url", reason))?;
        }
        if self.method.parse::<hyper::Method>().is_err() {
            return Err(invalid("alarm.sms.method", "not an HTTP method"));
        }
        for (i, n) in self.to.iter().enumerate() {
            crate::model::check_mobiles("mobile", n)
                .map_err(|e| invalid(&format!("alarm.sms.to[{i}]"), e.message))?;
        }
        let provider = self.provider.as_str();
        let need = |field: &str, v: bool| -> Result<(), ConfigError> {
            if v {
                Ok(())
            } else {
                Err(invalid(
                    &format!("alarm.sms.{field}"),
                    format!("required with provider = \"{provider}\""),
                ))
            }
        };
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        match self.provider {
            SmsProvider::Http => return Ok(()),
            SmsProvider::Aliyun => {
                need("sign_name", has(&self.sign_name))?;
                need("template", has(&self.template))?;
                if matches!(self.params, Some(SmsParams::Ordered(_))) {
                    return Err(invalid(
                        "alarm.sms.params",
                        "Aliyun templates take named variables: a table, e.g. {job = \"{job}\"}",
                    ));
                }
            }
            SmsProvider::Tencent => {
                need("app_id", has(&self.app_id))?;
                need("sign_name", has(&self.sign_name))?;
                need("template", has(&self.template))?;
                if matches!(self.params, Some(SmsParams::Named(_))) {
                    return Err(invalid(
                        "alarm.sms.params",
                        "Tencent templates take variables in order: a list, e.g. [\"{job}\"]",
                    ));
                }
            }
            SmsProvider::Twilio => need("from", has(&self.from))?,
        }
        need("key_id", has(&self.key_id))?;
        need("key_secret", !self.key_secret.is_empty())
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
    /// The subject template (the placeholders of `alarm.text`). Default
    /// "[cronvisor] {job}: {kind}".
    pub subject: String,
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
            .field("subject", &self.subject)
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
            subject: "[cronvisor] {job}: {kind}".to_string(),
        }
    }
}
