//! `/api/v1/users`, `/api/v1/tokens`, `/api/v1/audit` and `/api/v1/whoami`: who may use
//! cronvisor, and what they did. Admins only, except `whoami` and changing one's own password.

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::access::{hash_password, random_secret, sha256_hex, Caller};
use super::api::ApiState;
use crate::http::ApiError;
use crate::model::access::{check_user_name, parse_groups, Access, ApiToken, AuditEntry, User};
use crate::model::{parse_time_bound, FieldError};
use crate::store::{AuditFilter, UserChange};

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/users", get(list_users).post(add_user))
        .route(
            "/api/v1/users/{name}",
            get(show_user).patch(edit_user).delete(delete_user),
        )
        .route("/api/v1/users/{name}/password", post(set_password))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{name}", axum::routing::delete(revoke_token))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/alarms/test", post(test_alarm))
        .with_state(state)
}

fn body<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    super::api::parse_body(b)
}

async fn whoami(Extension(caller): Extension<Caller>) -> Json<serde_json::Value> {
    Json(json!({
        "name": caller.principal.name,
        "role": caller.principal.access,
        "groups": caller.principal.groups,
    }))
}

/// A user's fields as the API takes them (add and edit).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    name: Option<String>,
    role: Option<String>,
    /// Comma-separated, or a list; empty: every group.
    groups: Option<serde_json::Value>,
    email: Option<String>,
    password: Option<String>,
    active: Option<bool>,
}

fn groups_of(v: &serde_json::Value) -> Result<Option<Vec<String>>, ApiError> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join(","),
        serde_json::Value::Null => String::new(),
        _ => {
            return Err(ApiError::field(
                "groups",
                "a list of group names, or \"a,b\"",
            ))
        }
    };
    Ok(parse_groups(&text)?)
}

fn role_of(text: &str, field: &str) -> Result<Access, ApiError> {
    Access::parse(text.trim()).ok_or_else(|| {
        ApiError::field(
            field,
            format!("unknown role `{text}` (one of {})", Access::names()),
        )
    })
}

fn email_of(text: &str) -> Result<Option<String>, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.len() > 255 || !t.contains('@') || t.contains(char::is_whitespace) {
        return Err(ApiError::field(
            "email",
            format!("`{t}` is not an e-mail address"),
        ));
    }
    Ok(Some(t.to_string()))
}

impl UserBody {
    async fn change(self) -> Result<UserChange, ApiError> {
        if let Some(n) = &self.name {
            check_user_name(n.trim())?;
        }
        Ok(UserChange {
            name: self.name.map(|n| n.trim().to_string()),
            email: self.email.as_deref().map(email_of).transpose()?,
            access: self
                .role
                .as_deref()
                .map(|r| role_of(r, "role"))
                .transpose()?,
            groups: self.groups.as_ref().map(groups_of).transpose()?,
            active: self.active,
            password_hash: match self.password {
                Some(p) => Some(hash_password(p).await?),
                None => None,
            },
        })
    }
}

/// Users as the audit log shows a change (no hash).
fn user_json(u: &User) -> serde_json::Value {
    json!({"name": u.name, "role": u.access, "groups": u.groups, "email": u.email, "active": u.active})
}

async fn find_user(s: &ApiState, name: &str) -> Result<User, ApiError> {
    s.store
        .user_named(name)
        .await?
        .map(|(u, _)| u)
        .ok_or_else(|| ApiError::not_found(format!("no user `{name}`")))
}

async fn list_users(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<User>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(s.store.users().await?))
}

async fn show_user(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<User>, ApiError> {
    caller.require_admin()?;
    Ok(Json(find_user(&s, &name).await?))
}

async fn add_user(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    b: Bytes,
) -> Result<(StatusCode, Json<User>), ApiError> {
    caller.require_admin()?;
    let given: UserBody = body(&b)?;
    if given.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ApiError::field("name", "is required"));
    }
    if given.role.is_none() {
        return Err(ApiError::field(
            "role",
            format!("is required (one of {})", Access::names()),
        ));
    }
    if given.password.is_none() {
        return Err(ApiError::field("password", "is required"));
    }
    let user = s.store.insert_user(&given.change().await?).await?;
    tracing::info!(user = %user.name, role = user.access.as_str(), by = %caller.principal.name, "user added");
    caller
        .audit(
            &s.store,
            "user.add",
            format!("user {}", user.name),
            None,
            json!({"after": user_json(&user)}),
        )
        .await;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn edit_user(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    b: Bytes,
) -> Result<Json<User>, ApiError> {
    caller.require_admin()?;
    let before = find_user(&s, &name).await?;
    let given: UserBody = body(&b)?;
    let password = given.password.is_some();
    let after = s
        .store
        .update_user(before.id, &given.change().await?)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user `{name}`")))?;
    caller
        .audit(
            &s.store,
            "user.edit",
            format!("user {}", after.name),
            None,
            json!({"before": user_json(&before), "after": user_json(&after), "password_changed": password}),
        )
        .await;
    Ok(Json(after))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// A new password: an admin for anyone, a user for itself. Ends that user's sessions.
async fn set_password(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    b: Bytes,
) -> Result<StatusCode, ApiError> {
    if !caller.principal.is_admin() && !caller.principal.name.eq_ignore_ascii_case(&name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only an admin may change another user's password",
        ));
    }
    let user = find_user(&s, &name).await?;
    let given: PasswordBody = body(&b)?;
    let change = UserChange {
        password_hash: Some(hash_password(given.password).await?),
        ..Default::default()
    };
    s.store.update_user(user.id, &change).await?;
    caller
        .audit(
            &s.store,
            "user.password",
            format!("user {}", user.name),
            None,
            json!({}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_user(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let user = find_user(&s, &name).await?;
    s.store.delete_user(user.id).await?;
    caller
        .audit(
            &s.store,
            "user.delete",
            format!("user {}", user.name),
            None,
            json!({"before": user_json(&user)}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tokens(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(s.store.tokens().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    role: String,
    #[serde(default)]
    groups: Option<serde_json::Value>,
    /// A span from now (`30d`, `12h`), or none: no expiry.
    #[serde(default)]
    expires: Option<String>,
}

/// Creates a named token; the answer carries the token, shown this once (the store keeps its
/// hash only).
async fn create_token(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    b: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require_admin()?;
    let given: TokenBody = body(&b)?;
    let name = given.name.trim().to_string();
    check_user_name(&name).map_err(|e| ApiError::field("name", e.message))?;
    let access = role_of(&given.role, "role")?;
    let groups = given.groups.as_ref().map(groups_of).transpose()?.flatten();
    let now = crate::model::now_millis();
    let expires_at = match given
        .expires
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        None => None,
        Some(e) => {
            let secs = crate::model::durations::parse_duration_secs(e)
                .map_err(|m| ApiError::field("expires", m))?;
            if secs <= 0 {
                return Err(ApiError::field("expires", "must be in the future"));
            }
            Some(now + secs.saturating_mul(1000))
        }
    };
    let secret = format!("cvt_{}", random_secret()?);
    let token = s
        .store
        .insert_token(
            &name,
            &sha256_hex(&secret),
            access,
            &groups,
            &caller.principal.name,
            expires_at,
        )
        .await?;
    caller
        .audit(
            &s.store,
            "token.create",
            format!("token {}", token.name),
            None,
            json!({"role": token.access, "groups": token.groups, "expires_at": token.expires_at}),
        )
        .await;
    let mut v = serde_json::to_value(&token).unwrap_or_default();
    v["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

async fn revoke_token(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if !s.store.revoke_token(&name).await? {
        return Err(ApiError::not_found(format!("no live token `{name}`")));
    }
    caller
        .audit(
            &s.store,
            "token.revoke",
            format!("token {name}"),
            None,
            json!({}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    job: Option<String>,
    user: Option<String>,
    since: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

/// The filter of an audit listing: a job by name or id (one deleted since is found by name in
/// the entries' objects), an actor, a time bound.
pub async fn audit_filter(
    s: &ApiState,
    caller: &Caller,
    job: &str,
    user: &str,
    since: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<AuditFilter, ApiError> {
    caller.require_admin()?;
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 10000"));
    }
    let job_id = match job.trim() {
        "" => None,
        key => Some(super::api::find(s, caller, key).await?.id),
    };
    let since = match since.trim() {
        "" => None,
        t => Some(
            parse_time_bound(t, crate::model::now_millis())
                .map_err(|m| ApiError::from(FieldError::new("since", m)))?,
        ),
    };
    Ok(AuditFilter {
        job_id,
        actor: Some(user.trim().to_string()).filter(|u| !u.is_empty()),
        since,
        before,
        limit,
    })
}

async fn list_audit(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let filter = audit_filter(
        &s,
        &caller,
        q.job.as_deref().unwrap_or(""),
        q.user.as_deref().unwrap_or(""),
        q.since.as_deref().unwrap_or(""),
        q.before,
        q.limit.unwrap_or(50),
    )
    .await?;
    Ok(Json(s.store.audit(&filter).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestAlarmBody {
    /// Only these channels (webhook, sms, email); default every configured one.
    #[serde(default)]
    channels: Vec<String>,
}

/// `POST /api/v1/alarms/test`: a test alarm to every configured channel's global recipients,
/// sent now (not stored); each delivery's outcome. Admins only; recorded in the audit log.
async fn test_alarm(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    b: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin()?;
    let given: TestAlarmBody = if b.is_empty() {
        TestAlarmBody::default()
    } else {
        body(&b)?
    };
    let channels = crate::model::Channel::parse_list(&given.channels)
        .map_err(|m| ApiError::field("channels", m))?;
    let sent = s.alarmer.send_test(&channels, &caller.principal.name).await;
    let deliveries: Vec<serde_json::Value> = sent
        .iter()
        .map(|(channel, recipient, result)| {
            json!({
                "channel": channel,
                "recipient": super::console::masked(recipient),
                "delivered": result.is_ok(),
                "error": result.as_ref().err().map(|e| super::console::masked(&e.to_string())),
            })
        })
        .collect();
    caller
        .audit(
            &s.store,
            "alarm.test",
            "alarm channels".into(),
            None,
            json!({"deliveries": deliveries.len()}),
        )
        .await;
    Ok(Json(json!({ "deliveries": deliveries })))
}
