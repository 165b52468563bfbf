//! SMS providers: for each, the request its public API documents — signed as it specifies —
//! and its answer read as it documents, so that a service's own error (an error code in a 200
//! answer) is a failed delivery with the service's message, retried like any other.
//!
//! - Aliyun `SendSms` (API 2017-05-25): a GET whose query is signed with the RPC signature
//!   (HMAC-SHA1 of `GET&%2F&<encoded sorted query>` under `<secret>&`).
//! - Tencent Cloud `SendSms` (API 2021-01-11): a JSON POST signed with TC3-HMAC-SHA256.
//! - Twilio `Messages` (API 2010-04-01): a form POST with HTTP Basic authentication.

use base64::Engine;
use chrono::{DateTime, Utc};
use hyper::Method;
use serde_json::json;

use crate::config::{SmsConfig, SmsParams, SmsProvider};
use crate::http::percent_encode;

const ALIYUN_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com/";
const TENCENT_ENDPOINT: &str = "https://sms.tencentcloudapi.com/";
const TWILIO_ENDPOINT: &str = "https://api.twilio.com";

/// One request to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A provider's refusal, in its own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{provider} refused the message: {code} {message}")]
pub struct Refused {
    pub provider: &'static str,
    pub code: String,
    pub message: String,
}

/// The request that sends one alarm to `mobile` through `cfg`'s provider (not `http`, which is
/// the templated gateway of `alarms.rs`). `fill` expands an alarm template; `text` is the
/// alarm's text (Twilio sends it as is); `now` and `nonce` make the signature.
pub fn request(
    cfg: &SmsConfig,
    mobile: &str,
    text: &str,
    fill: &(dyn Fn(&str) -> String + Sync),
    now: DateTime<Utc>,
    nonce: &str,
) -> Option<SmsRequest> {
    match cfg.provider {
        SmsProvider::Http => None,
        SmsProvider::Aliyun => Some(aliyun(cfg, mobile, fill, now, nonce)),
        SmsProvider::Tencent => Some(tencent(cfg, mobile, fill, now)),
        SmsProvider::Twilio => Some(twilio(cfg, mobile, text)),
    }
}

/// Aliyun `SendSms`: a signed GET (RPC signature, HMAC-SHA1), the template's named params.
fn aliyun(
    cfg: &SmsConfig,
    mobile: &str,
    fill: &(dyn Fn(&str) -> String + Sync),
    now: DateTime<Utc>,
    nonce: &str,
) -> SmsRequest {
    let key_id = cfg.key_id.as_deref().unwrap_or_default();
    let params = match &cfg.params {
        Some(SmsParams::Named(p)) => p
            .iter()
            .map(|(k, v)| (k.clone(), json!(fill(v))))
            .collect::<serde_json::Map<_, _>>(),
        _ => ["job", "kind", "time"]
            .iter()
            .map(|k| (k.to_string(), json!(fill(&format!("{{{k}}}")))))
            .collect(),
    };
    let query = aliyun_query(
        key_id,
        &cfg.key_secret,
        &[
            ("PhoneNumbers", mobile.to_string()),
            (
                "RegionId",
                cfg.region.clone().unwrap_or("cn-hangzhou".into()),
            ),
            ("SignName", cfg.sign_name.clone().unwrap_or_default()),
            ("TemplateCode", cfg.template.clone().unwrap_or_default()),
            (
                "TemplateParam",
                serde_json::Value::Object(params).to_string(),
            ),
        ],
        now,
        nonce,
    );
    let base = cfg.url.as_deref().unwrap_or(ALIYUN_ENDPOINT);
    let sep = if base.contains('?') { '&' } else { '?' };
    SmsRequest {
        method: Method::GET,
        url: format!("{base}{sep}{query}"),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// Tencent Cloud `SendSms`: a JSON POST signed with TC3-HMAC-SHA256, the template's ordered
/// params.
fn tencent(
    cfg: &SmsConfig,
    mobile: &str,
    fill: &(dyn Fn(&str) -> String + Sync),
    now: DateTime<Utc>,
) -> SmsRequest {
    let key_id = cfg.key_id.as_deref().unwrap_or_default();
    let params: Vec<String> = match &cfg.params {
        Some(SmsParams::Ordered(p)) => p.iter().map(|v| fill(v)).collect(),
        _ => ["{job}", "{kind}", "{time}"]
            .iter()
            .map(|v| fill(v))
            .collect(),
    };
    let payload = json!({
        "PhoneNumberSet": [mobile],
        "SmsSdkAppId": cfg.app_id.clone().unwrap_or_default(),
        "SignName": cfg.sign_name.clone().unwrap_or_default(),
        "TemplateId": cfg.template.clone().unwrap_or_default(),
        "TemplateParamSet": params,
    })
    .to_string();
    let url = cfg.url.clone().unwrap_or(TENCENT_ENDPOINT.to_string());
    let host = url
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let region = cfg.region.clone().unwrap_or("ap-guangzhou".into());
    let headers = tencent_headers(
        key_id,
        &cfg.key_secret,
        &host,
        "SendSms",
        "2021-01-11",
        &region,
        &payload,
        now.timestamp(),
    );
    SmsRequest {
        method: Method::POST,
        url,
        headers,
        body: payload.into_bytes(),
    }
}

/// Twilio `Messages`: a form POST with basic authentication, the alarm's text as is.
fn twilio(cfg: &SmsConfig, mobile: &str, text: &str) -> SmsRequest {
    let key_id = cfg.key_id.as_deref().unwrap_or_default();
    let base = cfg.url.as_deref().unwrap_or(TWILIO_ENDPOINT);
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        base.trim_end_matches('/'),
        percent_encode(key_id)
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{key_id}:{}", cfg.key_secret));
    let body = format!(
        "To={}&From={}&Body={}",
        percent_encode(mobile),
        percent_encode(cfg.from.as_deref().unwrap_or_default()),
        percent_encode(text)
    );
    SmsRequest {
        method: Method::POST,
        url,
        headers: vec![
            ("Authorization".into(), format!("Basic {basic}")),
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
        ],
        body: body.into_bytes(),
    }
}

/// Whether the provider took the message, from its answer: Aliyun `Code` "OK", Tencent no
/// `Response.Error` and every `SendStatusSet[].Code` "Ok", Twilio a 2xx whose `status` is not
/// `failed` / `undelivered`. `Ok(false)`: not an answer of the provider (its HTTP status
/// decides).
pub fn read_answer(
    provider: SmsProvider,
    status: hyper::StatusCode,
    body: &[u8],
) -> Result<bool, Refused> {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        v => v.to_string(),
    };
    match provider {
        SmsProvider::Http => Ok(false),
        SmsProvider::Aliyun => match answer.get("Code").map(text) {
            Some(code) if code == "OK" => Ok(true),
            Some(code) => Err(Refused {
                provider: "aliyun",
                code,
                message: text(&answer["Message"]),
            }),
            None => Ok(false),
        },
        SmsProvider::Tencent => {
            let response = &answer["Response"];
            if let Some(error) = response.get("Error") {
                return Err(Refused {
                    provider: "tencent",
                    code: text(&error["Code"]),
                    message: text(&error["Message"]),
                });
            }
            let Some(set) = response["SendStatusSet"].as_array() else {
                return Ok(false);
            };
            for s in set {
                if text(&s["Code"]) != "Ok" {
                    return Err(Refused {
                        provider: "tencent",
                        code: text(&s["Code"]),
                        message: text(&s["Message"]),
                    });
                }
            }
            Ok(true)
        }
        SmsProvider::Twilio => {
            let delivery = text(&answer["status"]);
            if status.is_success() && !matches!(delivery.as_str(), "failed" | "undelivered") {
                return Ok(answer.get("sid").is_some());
            }
            if answer.get("code").is_some() || answer.get("error_code").is_some() {
                let code = answer.get("code").unwrap_or(&answer["error_code"]);
                let message = answer.get("message").unwrap_or(&answer["error_message"]);
                return Err(Refused {
                    provider: "twilio",
                    code: text(code),
                    message: text(message),
                });
            }
            Ok(false)
        }
    }
}

/// Aliyun's signed query: the common parameters and `business` ones, sorted, encoded, with
/// `Signature` first (as the documentation's example URL has it).
fn aliyun_query(
    key_id: &str,
    secret: &str,
    business: &[(&str, String)],
    now: DateTime<Utc>,
    nonce: &str,
) -> String {
    let mut params: std::collections::BTreeMap<&str, String> = business.iter().cloned().collect();
    for (k, v) in [
        ("AccessKeyId", key_id.to_string()),
        ("Action", "SendSms".to_string()),
        ("Format", "JSON".to_string()),
        ("SignatureMethod", "HMAC-SHA1".to_string()),
        ("SignatureNonce", nonce.to_string()),
        ("SignatureVersion", "1.0".to_string()),
        ("Timestamp", now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ("Version", "2017-05-25".to_string()),
    ] {
        params.insert(k, v);
    }
    let signature = aliyun_signature(&params, secret);
    let query = canonical_query(&params);
    format!("Signature={}&{query}", percent_encode(&signature))
}

fn canonical_query(params: &std::collections::BTreeMap<&str, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The RPC signature: base64(HMAC-SHA1(`secret&`, `GET&%2F&` + encode(sorted query))).
pub fn aliyun_signature(params: &std::collections::BTreeMap<&str, String>, secret: &str) -> String {
    let to_sign = format!(
        "GET&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    );
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{secret}&").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()))
}

fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, msg).as_ref().to_vec()
}

const TC3_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// TC3-HMAC-SHA256's canonical request of a JSON POST to `/`, signing `content-type` and
/// `host`.
pub fn tc3_canonical_request(host: &str, payload: &str) -> String {
    format!(
        "POST\n/\n\ncontent-type:{TC3_CONTENT_TYPE}\nhost:{host}\n\ncontent-type;host\n{}",
        sha256_hex(payload.as_bytes())
    )
}

/// The signature of `string_to_sign`: the key derived from `TC3<secret>` through the date,
/// the service and `tc3_request`, hex.
pub fn tc3_signature(secret: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    let k_date = hmac_sha256(format!("TC3{secret}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"tc3_request");
    hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

/// The headers of a Tencent Cloud API 3.0 call, `Authorization` included.
#[allow(clippy::too_many_arguments)]
fn tencent_headers(
    secret_id: &str,
    secret_key: &str,
    host: &str,
    action: &str,
    version: &str,
    region: &str,
    payload: &str,
    timestamp: i64,
) -> Vec<(String, String)> {
    let service = "sms";
    let date = DateTime::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let scope = format!("{date}/{service}/tc3_request");
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        sha256_hex(tc3_canonical_request(host, payload).as_bytes())
    );
    let signature = tc3_signature(secret_key, &date, service, &to_sign);
    vec![
        (
            "Authorization".into(),
            format!(
                "TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, \
                 Signature={signature}"
            ),
        ),
        ("Content-Type".into(), TC3_CONTENT_TYPE.into()),
        ("Host".into(), host.into()),
        ("X-TC-Action".into(), action.into()),
        ("X-TC-Timestamp".into(), timestamp.to_string()),
        ("X-TC-Version".into(), version.into()),
        ("X-TC-Region".into(), region.into()),
    ]
}

/// A fresh nonce for Aliyun's `SignatureNonce`: 16 random bytes, hex.
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Aliyun's documentation's own worked example (短信服务 签名机制).
    #[test]
    fn the_aliyun_signature_of_the_documented_example() {
        let params: std::collections::BTreeMap<&str, String> = [
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        assert_eq!(
            aliyun_signature(&params, "testSecret"),
            "zJDF+Lrzhj/ThnlvIToysFRq6t4="
        );
        assert_eq!(percent_encode("a b*~"), "a%20b%2A~");
    }

    /// Tencent Cloud's documentation's own worked example (API 3.0, 签名方法 v3:
    /// DescribeInstances of CVM at 1551113065).
    #[test]
    fn the_tc3_signature_of_the_documented_example() {
        let payload = r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        assert_eq!(
            sha256_hex(payload.as_bytes()),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let canonical = tc3_canonical_request("cvm.tencentcloudapi.com", payload);
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let to_sign = format!(
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n{}",
            sha256_hex(canonical.as_bytes())
        );
        assert_eq!(
            tc3_signature(
                "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
                "2019-02-25",
                "cvm",
                &to_sign
            ),
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn the_key_secret_never_shows_in_logs() {
        let cfg = SmsConfig {
            provider: SmsProvider::Tencent,
            key_id: Some("AKID-x".into()),
            key_secret: "the-secret-itself".into(),
            ..SmsConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("the-secret-itself"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn provider_errors_in_a_200_are_refusals_with_their_message() {
        let ok = hyper::StatusCode::OK;
        assert_eq!(
            read_answer(SmsProvider::Aliyun, ok, br#"{"Code":"OK","Message":"OK"}"#),
            Ok(true)
        );
        let refused = read_answer(
            SmsProvider::Aliyun,
            ok,
            br#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"limit"}"#,
        )
        .expect_err("refused");
        assert_eq!(refused.code, "isv.BUSINESS_LIMIT_CONTROL");
        let t = read_answer(
            SmsProvider::Tencent,
            ok,
            br#"{"Response":{"SendStatusSet":[{"Code":"LimitExceeded.PhoneNumberDailyLimit","Message":"daily"}]}}"#,
        )
        .expect_err("refused");
        assert_eq!(t.message, "daily");
        let w = read_answer(
            SmsProvider::Twilio,
            hyper::StatusCode::BAD_REQUEST,
            br#"{"code":21211,"message":"Invalid 'To' Phone Number","status":400}"#,
        )
        .expect_err("refused");
        assert_eq!((w.code.as_str(), w.provider), ("21211", "twilio"));
    }
}
