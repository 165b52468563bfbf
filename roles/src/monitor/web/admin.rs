//! `/api/v1/users`, `/api/v1/audit` and `/api/v1/whoami` (and `tokens.rs`): who may use
//! cronvisor, and what they did. Admins only, except `whoami` and changing one's own password.

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{admin_only_refusal, hash_password, Caller};
use super::api::ApiState;
use crate::http::{ApiError, ErrorBody};
use crate::model::access::{check_user_name, parse_groups, Access, AuditEntry, User};
use crate::model::{parse_time_bound, FieldError};
use crate::store::{AuditFilter, UserChange};

/// Each route registered with its entry in the OpenAPI document (`openapi.rs`).
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(list_users, add_user))
        .routes(routes!(show_user, edit_user, delete_user))
        .routes(routes!(set_password))
        .routes(routes!(list_audit))
        .routes(routes!(test_alarm))
        .merge(super::tokens::routes())
}

pub(super) fn body<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    super::api::parse_body(b)
}

/// Who the caller is.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct WhoAmI {
    /// A user's name, `token:NAME`, or `api.token`.
    name: String,
    role: Access,
    /// The groups it sees; null: every group.
    groups: Option<Vec<String>>,
}

/// Who the caller is: name, role and groups.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "access",
    responses((status = 200, description = "The caller", body = WhoAmI)))]
async fn whoami(Extension(caller): Extension<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI {
        name: caller.principal.name,
        role: caller.principal.access,
        groups: caller.principal.groups,
    })
}

/// A user's fields as the API takes them (add and edit).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UserBody {
    /// Letters, digits, `-`, `_`, `.` and `@` (required to add).
    name: Option<String>,
    /// viewer, operator or admin (required to add).
    role: Option<String>,
    /// A list of group names (or one string, comma-separated); empty: every group.
    #[schema(value_type = Option<Groups>)]
    groups: Option<serde_json::Value>,
    email: Option<String>,
    /// Required to add.
    password: Option<String>,
    active: Option<bool>,
}

/// The document's name for what [`groups_of`] reads: a list of group names, or one string of
/// them comma-separated (as typed in a form).
pub(super) struct Groups;

impl utoipa::PartialSchema for Groups {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .into()
    }
}

impl utoipa::ToSchema for Groups {}

/// A user's or token's groups, as a list of names or one comma-separated string.
///
/// An item that is not a name is refused: read as "" (as it was), `[{}]` gave a user every
/// group (found by schemathesis).
pub(super) fn groups_of(v: &serde_json::Value) -> Result<Option<Vec<String>>, ApiError> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::field("groups", format!("`{x}` is not a group name")))
            })
            .collect::<Result<Vec<_>, _>>()?
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

pub(super) fn role_of(text: &str, field: &str) -> Result<Access, ApiError> {
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

/// Every user.
#[utoipa::path(get, path = "/api/v1/users", tag = "access",
    responses((status = 200, description = "The users", body = Vec<User>), (status = 403, description = "Admins only", body = ErrorBody)))]
async fn list_users(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<User>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(s.store.users().await?))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "access", params(("name" = String, Path, description = "The user's name")),
    responses((status = 200, description = "The user", body = User), (status = 403, description = "Admins only", body = ErrorBody), (status = 404, description = "No such user", body = ErrorBody)))]
async fn show_user(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<User>, ApiError> {
    caller.require_admin()?;
    Ok(Json(find_user(&s, &name).await?))
}

/// Adds a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "access", request_body = UserBody,
    responses((status = 201, description = "The user", body = User), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 403, description = "Admins only", body = ErrorBody),
        (status = 409, description = "A user of that name exists", body = ErrorBody)))]
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
    let change = given.change().await?;
    let (access, groups) = (
        change.access.unwrap_or(Access::Viewer),
        change.groups.clone().flatten(),
    );
    admin_only_refusal(s.admin_only.as_ref(), access, &groups)?;
    caller.may_grant(&groups)?;
    let user = s.store.insert_user(&change).await?;
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

/// Changes the fields given.
#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "access", params(("name" = String, Path, description = "The user's name")),
    request_body = UserBody,
    responses((status = 200, description = "The user", body = User), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 403, description = "Admins only", body = ErrorBody), (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "A user of that name exists", body = ErrorBody)))]
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
    let change = given.change().await?;
    let access = change.access.unwrap_or(before.access);
    let groups = change.groups.clone().unwrap_or(before.groups.clone());
    caller.may_grant(&before.groups)?;
    caller.may_grant(&groups)?;
    admin_only_refusal(s.admin_only.as_ref(), access, &groups)?;
    let after = s
        .store
        .update_user(before.id, &change)
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
    /// The password now: required when a user changes its own (a session left open must not
    /// be enough to take the account over).
    current: Option<String>,
}

/// A new password: an admin for anyone, a user for itself. Ends that user's sessions.
#[utoipa::path(post, path = "/api/v1/users/{name}/password", tag = "access", params(("name" = String, Path, description = "The user's name")),
    request_body = PasswordBody,
    responses((status = 204, description = "Changed"), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody),
        (status = 403, description = "Only an admin may change another user's password", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody)))]
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
    if caller.principal.name.eq_ignore_ascii_case(&user.name) {
        let current = given
            .current
            .ok_or_else(|| ApiError::field("current", "is required to change your own password"))?;
        if !super::access::password_matches(&s.store, &user.name, current).await? {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                field: Some("current".into()),
                message: "current: is not your password".into(),
            });
        }
    } else {
        caller.may_grant(&user.groups)?;
    }
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

/// Deletes a user (its sessions end).
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "access", params(("name" = String, Path, description = "The user's name")),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Admins only", body = ErrorBody), (status = 404, description = "No such user", body = ErrorBody)))]
async fn delete_user(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let user = find_user(&s, &name).await?;
    caller.may_grant(&user.groups)?;
    s.store.delete_user(user.id).await?;
    let revoked = s.store.revoke_tokens_by(&user.name).await?;
    caller
        .audit(
            &s.store,
            "user.delete",
            format!("user {}", user.name),
            None,
            json!({"before": user_json(&user), "tokens_revoked": revoked}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// A job's name or id.
    job: Option<String>,
    /// Who did it.
    user: Option<String>,
    /// Entries at or after: RFC 3339, epoch milliseconds, or a span back from now (`1h`).
    since: Option<String>,
    /// The cursor: the last id of the previous page.
    before: Option<i64>,
    /// 1 to 10000; default 50.
    #[param(minimum = 1, maximum = 10000)]
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
        // An admin of some groups reads what was done to their jobs, not the rest of the log
        // (other groups' jobs, users, tokens, logins).
        groups: caller.principal.groups.clone(),
    })
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "access", params(AuditQuery),
    responses((status = 200, description = "The entries", body = Vec<AuditEntry>), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)))]
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

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TestAlarmBody {
    /// Only these channels (webhook, sms, email); default every configured one.
    #[serde(default)]
    channels: Vec<String>,
}

/// What a test alarm did, per recipient.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct TestDeliveries {
    deliveries: Vec<Delivery>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Delivery {
    channel: &'static str,
    /// Masked as the console shows it.
    recipient: String,
    delivered: bool,
    error: Option<String>,
}

/// `POST /api/v1/alarms/test`: a test alarm to every configured channel's global recipients,
/// sent now (not stored); each delivery's outcome. Admins only; recorded in the audit log.
#[utoipa::path(post, path = "/api/v1/alarms/test", tag = "alarms",
    request_body(content = Option<TestAlarmBody>, description = "Channels (optional)"),
    responses((status = 200, description = "Each delivery", body = TestDeliveries), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 403, description = "Admins only", body = ErrorBody)))]
async fn test_alarm(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    b: Bytes,
) -> Result<Json<TestDeliveries>, ApiError> {
    caller.require_admin()?;
    let given: TestAlarmBody = if b.is_empty() {
        TestAlarmBody::default()
    } else {
        body(&b)?
    };
    let channels = crate::model::Channel::parse_list(&given.channels)
        .map_err(|m| ApiError::field("channels", m))?;
    let sent = s.alarmer.send_test(&channels, &caller.principal.name).await;
    let deliveries: Vec<Delivery> = sent
        .iter()
        .map(|(channel, recipient, result)| Delivery {
            channel,
            recipient: super::console::masked(recipient),
            delivered: result.is_ok(),
            error: result
                .as_ref()
                .err()
                .map(|e| super::console::masked(&e.to_string())),
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
    Ok(Json(TestDeliveries { deliveries }))
}
