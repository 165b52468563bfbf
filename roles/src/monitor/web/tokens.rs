//! `/api/v1/tokens`: named API tokens for scripts and scrapers, shown once at creation (the
//! store keeps their hash), scoped to a role and groups no wider than their maker's.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{admin_only_refusal, random_secret, sha256_hex, Caller};
use super::admin::{body, groups_of, role_of, Groups};
use super::api::ApiState;
use crate::http::{ApiError, ErrorBody};
use crate::model::access::{check_user_name, ApiToken};

/// The longest `expires` a token may be given (past it the arithmetic of instants overflows).
const MAX_TOKEN_LIFETIME_SECS: i64 = 3650 * 86_400;

/// Each route registered with its entry in the OpenAPI document (`openapi.rs`).
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Every named API token (never the secret).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    responses((status = 200, description = "The tokens", body = Vec<ApiToken>), (status = 403, description = "Admins only", body = ErrorBody)))]
async fn list_tokens(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(s.store.tokens().await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    /// viewer, operator or admin.
    role: String,
    /// A list of group names (or one string, comma-separated); empty: every group.
    #[serde(default)]
    #[schema(value_type = Option<Groups>)]
    groups: Option<serde_json::Value>,
    /// A span from now (`30d`, `12h`), or none: no expiry.
    #[serde(default)]
    expires: Option<String>,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct CreatedToken {
    #[serde(flatten)]
    info: ApiToken,
    /// The secret, for `Authorization: Bearer`.
    token: String,
}

/// Creates a named token; the answer carries the token, shown this once (the store keeps its
/// hash only).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = TokenBody,
    responses((status = 201, description = "The token, with its secret", body = CreatedToken),
        (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 403, description = "Admins only", body = ErrorBody), (status = 409, description = "A live token of that name exists", body = ErrorBody)))]
async fn create_token(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    b: Bytes,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require_admin()?;
    let given: TokenBody = body(&b)?;
    let name = given.name.trim().to_string();
    check_user_name(&name).map_err(|e| ApiError::field("name", e.message))?;
    let access = role_of(&given.role, "role")?;
    let groups = given.groups.as_ref().map(groups_of).transpose()?.flatten();
    admin_only_refusal(s.admin_only.as_ref(), access, &groups)?;
    caller.may_grant(&groups)?;
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
            if secs > MAX_TOKEN_LIFETIME_SECS {
                return Err(ApiError::field(
                    "expires",
                    "at most 10 years (3650d); leave it out for a token that does not expire",
                ));
            }
            Some(now + secs * 1000)
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
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: token,
            token: secret,
        }),
    ))
}

/// Revokes a named token.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "access",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 204, description = "Revoked"), (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No live token of that name", body = ErrorBody)))]
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
