//! SMS providers end to end: `alarms test` and a failing job's alarm go to stand-ins of
//! Aliyun, Tencent Cloud and Twilio over HTTPS (`providers/sms_services.py`), which check each
//! request as the service documents it and recompute its signature independently of
//! cronvisor's code; a wrong secret and a refused number show up as failed deliveries with the
//! service's own message.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{wait_for, Cronvisor, TempDir};

struct Services {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    dir: TempDir,
}

impl Services {
    fn start() -> Services {
        let dir = TempDir::new("sms-services");
        crate::harness::tls::make_certificates(&dir.0, "server");
        let log = dir.0.join("verdicts.jsonl");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/integration/providers/sms_services.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--cert")
            .arg(dir.0.join("server.pem"))
            .arg("--key")
            .arg(dir.0.join("server.key"))
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let port = line.trim().parse().expect("a port");
        Services {
            child,
            port,
            log,
            dir,
        }
    }

    fn verdicts(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// A cronvisor whose SMS goes to `provider` with the given extra `[alarm.sms]` lines.
    fn cronvisor(&self, tag: &str, provider: &str, lines: &str) -> Cronvisor {
        let cfg = format!(
            "[monitor]\ncheck_interval_ms = 100\n[tls]\nca_file = \"{ca}\"\n\
             [alarm.sms]\nprovider = \"{provider}\"\nurl = \"https://127.0.0.1:{port}/{path}\"\n\
             to = [\"+8613800000001\", \"+8613800000009\"]\n{lines}",
            ca = self.dir.0.join("ca.pem").display(),
            port = self.port,
            path = if provider == "twilio" {
                "twilio".to_string()
            } else {
                format!("{provider}/")
            },
        );
        Cronvisor::start_with(tag, &cfg)
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `alarms test` through the provider: the first number delivered, the second refused by the
/// service with its message; exit status non-zero.
fn alarms_test(cv: &Cronvisor) -> Vec<String> {
    let out = cv.cli(&["alarms", "test"]);
    assert!(!out.status.success(), "one number is refused");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines().map(str::to_string).collect()
}

#[test]
fn aliyun_gets_a_signed_send_sms_and_its_refusals_are_failed_deliveries() {
    let s = Services::start();
    let cv = s.cronvisor(
        "sms-aliyun",
        "aliyun",
        "key_id = \"LTAI-test\"\nkey_secret = \"aliyun-secret\"\nsign_name = \"定时任务\"\n\
         template = \"SMS_71390007\"\nparams = { job = \"{job}\", what = \"{kind} ({state})\" }\n",
    );
    let lines = alarms_test(&cv);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "sms +8613800000001 delivered");
    assert_eq!(
        lines[1],
        "sms +8613800000009 failed: aliyun refused the message: isv.MOBILE_NUMBER_ILLEGAL 非法手机号"
    );
    let v = s.verdicts();
    assert!(v.iter().all(|v| v["ok"] == true), "{v:?}");
    assert_eq!(v[0]["sign"], "定时任务");
    assert_eq!(v[0]["template"], "SMS_71390007");
    assert_eq!(v[0]["params"]["job"], "(cronvisor)");
    // A wrong secret: the service's signature check refuses it, and says so.
    drop(cv);
    let cv = s.cronvisor(
        "sms-aliyun-bad",
        "aliyun",
        "key_id = \"LTAI-test\"\nkey_secret = \"not-the-secret\"\nsign_name = \"cron\"\n\
         template = \"SMS_1\"\n",
    );
    let lines = alarms_test(&cv);
    assert!(
        lines[0].ends_with(
            "failed: aliyun refused the message: SignatureDoesNotMatch Specified signature is \
             not matched with our calculation."
        ),
        "{lines:?}"
    );
}

#[test]
fn tencent_gets_a_tc3_signed_send_sms_and_a_failed_job_alarms_through_it() {
    let s = Services::start();
    let cv = s.cronvisor(
        "sms-tencent",
        "tencent",
        "key_id = \"AKID-test\"\nkey_secret = \"tencent-secret\"\napp_id = \"1400006666\"\n\
         sign_name = \"cron\"\ntemplate = \"1234\"\nparams = [\"{job}\", \"{kind}\"]\n",
    );
    let lines = alarms_test(&cv);
    assert_eq!(lines[0], "sms +8613800000001 delivered", "{lines:?}");
    assert_eq!(
        lines[1],
        "sms +8613800000009 failed: tencent refused the message: \
         InvalidParameterValue.IncorrectPhoneNumber 手机号格式错误"
    );
    // A failing job's alarm goes the same way, its refusal recorded on the alarm and retried.
    cv.add_job("payroll", "@yearly", "exit 3", &[]);
    cv.run_now("payroll");
    let alarms = wait_for(Duration::from_secs(20), "both deliveries tried", || {
        let a = cv.json(&["alarms"]);
        let list = a.as_array()?.clone();
        (list.len() == 2 && list.iter().all(|x| x["attempts"].as_i64() >= Some(1))).then_some(list)
    });
    let refused = alarms
        .iter()
        .find(|a| a["recipient"] == "+8613800000009")
        .expect("the refused number's alarm");
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("IncorrectPhoneNumber"),
        "{refused}"
    );
    let sent = s
        .verdicts()
        .into_iter()
        .filter(|v| v["ok"] == true && v["params"][0] == "payroll")
        .count();
    assert!(sent >= 2, "{:?}", s.verdicts());
    assert_eq!(
        s.verdicts().last().map(|v| v["params"][1].clone()),
        Some(Value::from("failed"))
    );
    drop(cv);
    let cv = s.cronvisor(
        "sms-tencent-bad",
        "tencent",
        "key_id = \"AKID-test\"\nkey_secret = \"wrong\"\napp_id = \"1\"\nsign_name = \"c\"\n\
         template = \"1\"\n",
    );
    let lines = alarms_test(&cv);
    assert!(
        lines[0].ends_with(
            "failed: tencent refused the message: AuthFailure.SignatureFailure The provided \
             credentials could not be validated."
        ),
        "{lines:?}"
    );
}

#[test]
fn twilio_gets_an_authenticated_message_with_the_templated_text() {
    let s = Services::start();
    let cv = s.cronvisor(
        "sms-twilio",
        "twilio",
        "key_id = \"AC-test\"\nkey_secret = \"twilio-token\"\nfrom = \"+15005550006\"\n",
    );
    let lines = alarms_test(&cv);
    assert_eq!(lines[0], "sms +8613800000001 delivered", "{lines:?}");
    assert_eq!(
        lines[1],
        "sms +8613800000009 failed: twilio refused the message: 21211 The 'To' number \
         +8613800000009 is not a valid phone number."
    );
    let v = s.verdicts();
    assert_eq!(v[0]["sender"], "+15005550006");
    assert!(
        v[0]["body"]
            .as_str()
            .unwrap_or("")
            .starts_with("cronvisor: job `(cronvisor)` test"),
        "{v:?}"
    );
}
