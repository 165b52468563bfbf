//! `user ...`, `token ...`, `audit`, `whoami`: clients of the monitor's access API. Passwords
//! are read from standard input, never taken on the command line (where `ps` shows them).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{bail, Context};
use cronvisor_roles::model::access::{ApiToken, AuditEntry, User};
use hyper::Method;
use serde_json::{json, Value};

use crate::api_client::{segment, Api};
use crate::cli::{AuditArgs, Cli, JsonFlag, TokenCommand, UserCommand};
use crate::print;

fn api(cli: &Cli) -> anyhow::Result<Api> {
    let config = super::load_config(cli)?;
    Api::from_cli(cli, &config)
}

/// One line of standard input, without its line end.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input (e.g. `printf '%s\\n' \"$PW\" | cronvisor user add ...`)");
    }
    Ok(password)
}

fn scope(groups: &Option<Vec<String>>) -> String {
    groups
        .as_ref()
        .map(|g| g.join(","))
        .unwrap_or_else(|| "*".into())
}

fn users_table(users: &[User]) {
    print::table(
        &[
            ("NAME", &|u: &User| u.name.clone()),
            ("ROLE", &|u: &User| u.access.as_str().to_string()),
            ("GROUPS", &|u: &User| scope(&u.groups)),
            ("STATE", &|u: &User| {
                if u.active { "active" } else { "disabled" }.to_string()
            }),
            ("LAST LOGIN", &|u: &User| print::time(u.last_login_at)),
            ("EMAIL", &|u: &User| {
                u.email.clone().unwrap_or_else(|| "-".into())
            }),
        ],
        users,
    );
}

pub async fn user(cli: &Cli, cmd: &UserCommand) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    let path = |name: &str| format!("/api/v1/users/{}", segment(name));
    match cmd {
        UserCommand::Add(a) => {
            let mut body = json!({
                "name": a.name, "role": a.role.as_str(), "password": password_from_stdin()?,
            });
            if let Some(g) = &a.groups {
                body["groups"] = json!(g);
            }
            if let Some(e) = &a.email {
                body["email"] = json!(e);
            }
            let u: User = api.call(Method::POST, "/api/v1/users", Some(body)).await?;
            if a.out.json {
                print::json(&u)?;
            } else {
                println!(
                    "user `{}` added: {} of {}",
                    u.name,
                    u.access.as_str(),
                    u.groups
                        .as_ref()
                        .map(|g| format!("groups {}", g.join(", ")))
                        .unwrap_or_else(|| "every group".into())
                );
            }
        }
        UserCommand::List(out) => {
            let users: Vec<User> = api.call(Method::GET, "/api/v1/users", None).await?;
            if out.json {
                print::json(&users)?;
            } else if users.is_empty() {
                println!(
                    "no users (add one: cronvisor user add NAME --role admin --password-stdin)"
                );
            } else {
                users_table(&users);
            }
        }
        UserCommand::Edit(e) => {
            let mut body = json!({});
            if let Some(r) = e.role {
                body["role"] = json!(r.as_str());
            }
            if let Some(g) = &e.groups {
                body["groups"] = json!(g);
            }
            if let Some(m) = &e.email {
                body["email"] = json!(m);
            }
            if let Some(n) = &e.rename {
                body["name"] = json!(n);
            }
            let u: User = api.call(Method::PATCH, &path(&e.name), Some(body)).await?;
            if e.out.json {
                print::json(&u)?;
            } else {
                println!("user `{}` updated", u.name);
            }
        }
        UserCommand::Passwd(p) => {
            let body = json!({"password": password_from_stdin()?});
            api.call_raw(
                Method::POST,
                &format!("{}/password", path(&p.name)),
                Some(body),
            )
            .await?;
            println!("password of `{}` changed; its sessions ended", p.name);
        }
        UserCommand::Disable(r) | UserCommand::Enable(r) => {
            let active = matches!(cmd, UserCommand::Enable(_));
            let _: User = api
                .call(
                    Method::PATCH,
                    &path(&r.name),
                    Some(json!({"active": active})),
                )
                .await?;
            if active {
                println!("user `{}` enabled", r.name);
            } else {
                println!("user `{}` disabled; its sessions ended", r.name);
            }
        }
        UserCommand::Delete(r) => {
            api.call_raw(Method::DELETE, &path(&r.name), None).await?;
            println!("user `{}` deleted", r.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn token(cli: &Cli, cmd: &TokenCommand) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    match cmd {
        TokenCommand::Create(a) => {
            let mut body = json!({"name": a.name, "role": a.role.as_str()});
            if let Some(g) = &a.groups {
                body["groups"] = json!(g);
            }
            if let Some(e) = &a.expires {
                body["expires"] = json!(e);
            }
            let v: Value = api.call(Method::POST, "/api/v1/tokens", Some(body)).await?;
            if a.out.json {
                print::json(&v)?;
            } else {
                println!("{}", v["token"].as_str().unwrap_or_default());
                eprintln!(
                    "token `{}` created ({}); it is shown this once: keep it now",
                    a.name,
                    a.role.as_str()
                );
            }
        }
        TokenCommand::List(out) => {
            let tokens: Vec<ApiToken> = api.call(Method::GET, "/api/v1/tokens", None).await?;
            if out.json {
                print::json(&tokens)?;
            } else if tokens.is_empty() {
                println!("no tokens (create one: cronvisor token create --name NAME --role ROLE)");
            } else {
                print::table(
                    &[
                        ("NAME", &|t: &ApiToken| t.name.clone()),
                        ("ROLE", &|t: &ApiToken| t.access.as_str().to_string()),
                        ("GROUPS", &|t: &ApiToken| scope(&t.groups)),
                        ("CREATED", &|t: &ApiToken| print::time(Some(t.created_at))),
                        ("EXPIRES", &|t: &ApiToken| {
                            t.expires_at
                                .map_or("never".into(), |e| print::time(Some(e)))
                        }),
                        ("LAST USED", &|t: &ApiToken| print::time(t.last_used_at)),
                        ("STATE", &|t: &ApiToken| {
                            if t.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "live"
                            }
                            .to_string()
                        }),
                    ],
                    &tokens,
                );
            }
        }
        TokenCommand::Revoke(r) => {
            api.call_raw(
                Method::DELETE,
                &format!("/api/v1/tokens/{}", segment(&r.name)),
                None,
            )
            .await?;
            println!("token `{}` revoked", r.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(cli: &Cli, a: &AuditArgs) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    let mut q = vec![format!("limit={}", a.limit)];
    for (k, v) in [("job", &a.job), ("user", &a.user), ("since", &a.since)] {
        if let Some(v) = v {
            q.push(format!("{k}={}", segment(v)));
        }
    }
    let entries: Vec<AuditEntry> = api
        .call(Method::GET, &format!("/api/v1/audit?{}", q.join("&")), None)
        .await?;
    if a.out.json {
        print::json(&entries)?;
    } else if entries.is_empty() {
        println!("nothing recorded");
    } else {
        print::table(
            &[
                ("WHEN", &|e: &AuditEntry| print::time(Some(e.at))),
                ("WHO", &|e: &AuditEntry| e.actor.clone()),
                ("FROM", &|e: &AuditEntry| {
                    e.address.clone().unwrap_or_else(|| "-".into())
                }),
                ("ACTION", &|e: &AuditEntry| e.action.clone()),
                ("OBJECT", &|e: &AuditEntry| e.object.clone()),
                ("DETAILS", &|e: &AuditEntry| {
                    if e.details.as_object().is_some_and(|o| o.is_empty()) {
                        "-".into()
                    } else {
                        e.details.to_string()
                    }
                }),
            ],
            &entries,
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn whoami(cli: &Cli, out: JsonFlag) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    let v: Value = api.call(Method::GET, "/api/v1/whoami", None).await?;
    if out.json {
        print::json(&v)?;
    } else {
        let groups = match v["groups"].as_array() {
            Some(g) => g
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            None => "every group".into(),
        };
        println!(
            "{} ({} of {groups})",
            v["name"].as_str().unwrap_or("?"),
            v["role"].as_str().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}
