//! `cronvisor import crontab FILE`: a crontab's lines become jobs. User crontabs (`crontab -e`:
//! five time fields, then the command) and system ones (`/etc/crontab`, `/etc/cron.d/*`: a
//! user column after the time fields, detected from the path or forced with `--system`).
//! `MAILTO`, `CRON_TZ` / `TZ`, `SHELL` and `PATH` lines apply to the lines after them, as in
//! cron; other assignments become the jobs' environment. Each job keeps its line in its
//! description; `@reboot` and a command's `%` (its standard input in cron) are reported, not
//! imported.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cronvisor_roles::model::{EnvLine, JobFields};
use hyper::Method;

use crate::cli::{Cli, ImportCrontabArgs};

/// One crontab line, as a job (or why it is not one).
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Job(Box<JobFields>),
    Skipped { line: usize, why: String },
}

/// What cron's environment lines have set so far.
#[derive(Debug, Default, Clone)]
struct Env {
    mailto: Option<String>,
    timezone: Option<String>,
    shell: Option<String>,
    vars: Vec<(String, String)>,
}

/// The jobs of `text` (the crontab at `path`, for names and descriptions).
pub fn parse(text: &str, path: &Path, system: bool, run_at: Option<&str>) -> Vec<Line> {
    let stem = job_stem(path);
    let mut env = Env::default();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = assignment(line) {
            match name.as_str() {
                "MAILTO" => env.mailto = (!value.is_empty()).then_some(value),
                "CRON_TZ" | "TZ" => env.timezone = Some(value),
                "SHELL" => env.shell = Some(value),
                _ => {
                    env.vars.retain(|(k, _)| *k != name);
                    env.vars.push((name, value));
                }
            }
            continue;
        }
        out.push(job_of(line, n, path, &stem, system, run_at, &env));
    }
    out
}

/// `NAME = value` (quotes removed), as cron reads environment lines.
fn assignment(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some((name.to_string(), value.to_string()))
}

fn job_of(
    line: &str,
    n: usize,
    path: &Path,
    stem: &str,
    system: bool,
    run_at: Option<&str>,
    env: &Env,
) -> Line {
    let skipped = |why: String| Line::Skipped { line: n, why };
    let mut rest = line;
    let mut take = || -> Option<&str> {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (word, after) = t.split_at(end);
        rest = after;
        (!word.is_empty()).then_some(word)
    };
    let first = match take() {
        Some(w) => w,
        None => return skipped("empty".into()),
    };
    let schedule = if first.starts_with('@') {
        if first == "@reboot" {
            return skipped("`@reboot` is not supported: cronvisor fires on a schedule, not at boot (use a systemd unit)".into());
        }
        first.to_string()
    } else {
        let mut fields = vec![first];
        for _ in 0..4 {
            match take() {
                Some(w) => fields.push(w),
                None => return skipped("expected five time fields and a command".into()),
            }
        }
        fields.join(" ")
    };
    let user = if system { take() } else { None };
    if system && user.is_none() {
        return skipped("expected a user and a command after the time fields".into());
    }
    let command = rest.trim();
    if command.is_empty() {
        return skipped("no command".into());
    }
    let command = match unescape_percent(command) {
        Some(c) => c,
        None => {
            return skipped(
                "an unescaped `%` (the command's standard input in cron) is not supported: \
                 escape it as `\\%` or move the input into the command"
                    .into(),
            )
        }
    };
    let command = match env.shell.as_deref() {
        None | Some("/bin/sh") | Some("sh") => command,
        Some(shell) => format!("exec {shell} -c {}", shell_quote(&command)),
    };
    let mut description = format!("line {n} of {}", path.display());
    if let Some(u) = user {
        description.push_str(&format!(" (as {u})"));
    }
    let fields = JobFields {
        name: Some(format!("{stem}-{n}")),
        description: Some(description),
        schedule: Some(schedule),
        timezone: env.timezone.clone(),
        command: Some(command),
        run_at: run_at.map(str::to_string),
        admin_email: env.mailto.clone(),
        env: (!env.vars.is_empty()).then(|| {
            env.vars
                .iter()
                .map(|(k, v)| EnvLine(format!("{k}={v}")))
                .collect()
        }),
        ..JobFields::default()
    };
    Line::Job(Box::new(fields))
}

/// `\%` becomes `%`; None when a `%` is not escaped (cron's standard input).
fn unescape_percent(command: &str) -> Option<String> {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'%') => {
                out.push('%');
                chars.next();
            }
            '%' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A job-name prefix from the file: `/etc/cron.d/backup` → `backup`, `/etc/crontab` →
/// `crontab`; letters, digits, `-`, `_` and `.` only.
fn job_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "crontab".into());
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c.is_ascii_digit()) {
        format!("crontab-{clean}")
    } else {
        clean
    }
}

/// Adds one imported job through the API, or — without an API (`--dry-run`) — says what it
/// would add; one line either way. False when the API refused it (the reason is printed).
async fn add_one(api: Option<&crate::api_client::Api>, fields: &JobFields) -> anyhow::Result<bool> {
    let name = fields.name.clone().unwrap_or_default();
    let rule = fields.schedule.clone().unwrap_or_default();
    let what = fields
        .command
        .clone()
        .or(fields.http_url.clone())
        .unwrap_or_default();
    let Some(api) = api else {
        println!("would add `{name}`: {rule}  {what}");
        return Ok(true);
    };
    let answer: anyhow::Result<serde_json::Value> = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(serde_json::to_value(fields)?),
        )
        .await;
    match answer {
        Ok(_) => {
            println!("added `{name}`: {rule}  {what}");
            Ok(true)
        }
        Err(e) => {
            println!("`{name}` not added: {e:#}");
            Ok(false)
        }
    }
}

/// Whether `path` is a system crontab (with a user column): `/etc/crontab`, `/etc/cron.d/*`.
fn is_system(path: &Path) -> bool {
    path == Path::new("/etc/crontab") || path.parent() == Some(Path::new("/etc/cron.d"))
}

pub async fn crontab(cli: &Cli, a: &ImportCrontabArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let system = a.system || is_system(&a.file);
    let lines = parse(&text, &a.file, system, a.run_at.as_deref());
    let api = if a.dry_run {
        None
    } else {
        Some(super::jobs::api(cli)?)
    };
    let (mut created, mut skipped, mut failed) = (0, 0, 0);
    for line in &lines {
        match line {
            Line::Skipped { line, why } => {
                skipped += 1;
                println!("line {line}: skipped: {why}");
            }
            Line::Job(fields) => match add_one(api.as_ref(), fields).await? {
                true => created += 1,
                false => failed += 1,
            },
        }
    }
    let verb = if a.dry_run { "would add" } else { "added" };
    println!("{verb} {created} job(s); {skipped} line(s) skipped; {failed} refused");
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A job of the system cronvisor replaces, as cronvisor's fields: `shell` runs `cmd`, `curl`
/// and `wget` fetch it as an HTTP job; `state` 1 is active, anything else paused; the overflow
/// policy becomes the overlap one (1 skip and alarm = `forbid` alarming `skipped`, 2 kill the
/// previous = `replace`, 3 skip silently = `forbid`, 4 both run = `allow`).
pub fn gocron_job(g: &cronvisor_roles::store::GocronJob) -> JobFields {
    use cronvisor_roles::model::Overlap;
    let name = if cronvisor_roles::model::validate_name(&g.job_name).is_ok() {
        g.job_name.clone()
    } else {
        format!("gocron-{}", g.jobid)
    };
    let mut description = format!("gocron job {}: {}", g.jobid, g.job_name);
    if let Some(r) = &g.remark {
        description.push_str(&format!(" — {r}"));
    }
    let http = matches!(g.querytype.trim(), "curl" | "wget");
    let (overlap, alarm_skipped) = match g.overflow {
        1 => (Overlap::Forbid, true),
        2 => (Overlap::Replace, false),
        3 => (Overlap::Forbid, false),
        _ => (Overlap::Allow, false),
    };
    let alarm_on = alarm_skipped.then(|| {
        cronvisor_roles::model::DEFAULT_ALARM_ON
            .iter()
            .map(|k| k.as_str().to_string())
            .chain(["skipped".to_string()])
            .collect()
    });
    JobFields {
        name: Some(name),
        description: Some(description),
        schedule: Some(g.rule.trim().to_string()),
        command: (!http).then(|| g.cmd.clone()),
        http_url: http.then(|| g.cmd.trim().to_string()),
        run_at: g.runat.clone(),
        overlap: Some(overlap),
        alarm_on,
        admin_mobile: g.admin_mobile.clone(),
        admin_email: g.admin_email.clone(),
        paused: Some(g.state != 1),
        ..JobFields::default()
    }
}

pub async fn gocron(cli: &Cli, a: &crate::cli::ImportGocronArgs) -> anyhow::Result<ExitCode> {
    let source = cronvisor_roles::store::Store::connect(&a.from, 1)
        .await
        .with_context(|| format!("connecting to {}", super::redact_url(&a.from)))?;
    let jobs = source
        .gocron_jobs()
        .await
        .context("reading tb_cron_schedule")?;
    source.close().await;
    let api = if a.dry_run {
        None
    } else {
        Some(super::jobs::api(cli)?)
    };
    let (mut created, mut failed) = (0, 0);
    for g in &jobs {
        match add_one(api.as_ref(), &gocron_job(g)).await? {
            true => created += 1,
            false => failed += 1,
        }
    }
    let verb = if a.dry_run { "would add" } else { "added" };
    println!("{verb} {created} job(s); {failed} refused");
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `import gocron-config conf.ini`: the `[machine]` section of the system cronvisor replaces
/// (`phpgroup = 192.168.2.74|192.168.2.75`) as cronvisor's `[machine]` groups, in TOML.
pub fn gocron_config(text: &str) -> Result<String, String> {
    let mut section = String::new();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        if section != "machine" {
            continue;
        }
        let Some((name, hosts)) = line.split_once('=') else {
            return Err(format!("line {}: expected `group = host|host`", i + 1));
        };
        let hosts: Vec<String> = hosts
            .split('|')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        if hosts.is_empty() {
            return Err(format!(
                "line {}: group `{}` names no host",
                i + 1,
                name.trim()
            ));
        }
        groups.push((name.trim().to_string(), hosts));
    }
    if groups.is_empty() {
        return Err("no [machine] section with groups".into());
    }
    let mut out = String::from("[machine]\n");
    for (name, hosts) in groups {
        let quoted: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        out.push_str(&format!("{name:?} = [{}]\n", quoted.join(", ")));
    }
    Ok(out)
}

pub fn gocron_config_command(a: &crate::cli::ImportGocronConfigArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let toml = gocron_config(&text).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    print!("{toml}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(lines: &[Line]) -> Vec<&JobFields> {
        lines
            .iter()
            .filter_map(|l| match l {
                Line::Job(j) => Some(j.as_ref()),
                Line::Skipped { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_debian_system_crontab_keeps_its_user_environment_and_lines() {
        let text = "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\
                    MAILTO=ops@example.com\n\n# m h dom mon dow user\tcommand\n\
                    17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly\n\
                    25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }\n\
                    @reboot root /usr/local/bin/warm-cache\n\
                    CRON_TZ=Europe/Paris\n0 2 * * 1-5 backup /usr/local/bin/backup --date=$(date +\\%F)\n";
        let lines = parse(text, Path::new("/etc/crontab"), true, None);
        let j = jobs(&lines);
        assert_eq!(j.len(), 3);
        assert_eq!(j[0].name.as_deref(), Some("crontab-6"));
        assert_eq!(j[0].schedule.as_deref(), Some("17 * * * *"));
        assert_eq!(
            j[0].command.as_deref(),
            Some("cd / && run-parts --report /etc/cron.hourly")
        );
        assert_eq!(
            j[0].description.as_deref(),
            Some("line 6 of /etc/crontab (as root)")
        );
        assert_eq!(j[0].admin_email.as_deref(), Some("ops@example.com"));
        assert_eq!(
            j[0].env,
            Some(vec![EnvLine(
                "PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin".into()
            )])
        );
        assert_eq!(j[2].timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(
            j[2].command.as_deref(),
            Some("/usr/local/bin/backup --date=$(date +%F)")
        );
        assert!(matches!(&lines[2], Line::Skipped { line: 8, why } if why.contains("@reboot")));
    }

    #[test]
    fn gocron_machine_groups_become_toml_groups() {
        let ini = "[mysql]\nhost = 127.0.0.1\n\n[machine]\nphpgroup = 192.168.2.74|192.168.2.75\n\
                   ; a comment\npcrongroup = 192.168.3.206 | 192.168.3.198\n";
        let toml = gocron_config(ini).expect("groups");
        assert_eq!(
            toml,
            "[machine]\n\"phpgroup\" = [\"192.168.2.74\", \"192.168.2.75\"]\n\
             \"pcrongroup\" = [\"192.168.3.206\", \"192.168.3.198\"]\n"
        );
        assert!(gocron_config("[machine]\nempty = \n").is_err());
        assert!(gocron_config("[mysql]\nhost = x\n").is_err());
    }

    #[test]
    fn a_user_crontab_has_no_user_column_and_an_unescaped_percent_is_reported() {
        let text = "SHELL=/bin/bash\n*/5 * * * * echo hi >> /tmp/hi\n\
                    0 0 * * * mail -s report ops%body\n@daily /usr/bin/cleanup\n";
        let lines = parse(text, Path::new("mycron"), false, Some("g1"));
        let j = jobs(&lines);
        assert_eq!(j.len(), 2);
        assert_eq!(
            j[0].command.as_deref(),
            Some("exec /bin/bash -c 'echo hi >> /tmp/hi'")
        );
        assert_eq!(j[0].run_at.as_deref(), Some("g1"));
        assert_eq!(j[1].schedule.as_deref(), Some("@daily"));
        assert!(matches!(&lines[1], Line::Skipped { line: 3, why } if why.contains('%')));
    }
}
