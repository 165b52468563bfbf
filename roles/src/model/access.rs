//! Who may do what: roles, the people and tokens that hold them, their scope (the job groups
//! they see), and the audit log's entries.

use serde::{Deserialize, Serialize};

use super::{FieldError, Millis};

named! {
    /// What a user or token may do. Ordered: each can do what the one before can.
    pub enum Access {
        /// Reads jobs, runs, output, fleet and alarms in its scope.
        Viewer = "viewer",
        /// Also adds, edits, runs, pauses, resumes, kills and deletes jobs in its scope.
        Operator = "operator",
        /// Everything, users, tokens and the audit log included.
        Admin = "admin",
    }
}

/// Who a request comes from, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// A user's name, `token:NAME`, or `api.token` (the install's admin token).
    pub name: String,
    pub access: Access,
    /// The groups it sees; `None`: every group.
    pub groups: Option<Vec<String>>,
}

impl Principal {
    /// The install's own token (`api.token`): admin of everything.
    pub fn install_token() -> Principal {
        Principal {
            name: "api.token".into(),
            access: Access::Admin,
            groups: None,
        }
    }

    pub fn can_write(&self) -> bool {
        self.access >= Access::Operator
    }

    pub fn is_admin(&self) -> bool {
        self.access == Access::Admin
    }

    /// Whether a job of `group` is in scope.
    pub fn sees(&self, group: &str) -> bool {
        match &self.groups {
            None => true,
            Some(gs) => gs.iter().any(|g| g == group),
        }
    }
}

/// A scope as stored (`''`: every group) and as typed (`a,b`).
pub fn parse_groups(text: &str) -> Result<Option<Vec<String>>, FieldError> {
    let groups: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    for g in &groups {
        super::checks::check_group_name("groups", g)?;
    }
    Ok((!groups.is_empty()).then_some(groups))
}

/// The stored form of a scope.
pub fn groups_text(groups: &Option<Vec<String>>) -> String {
    groups.as_ref().map(|g| g.join(",")).unwrap_or_default()
}

/// A user, as shown (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub access: Access,
    /// `None`: every group.
    pub groups: Option<Vec<String>>,
    pub active: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub last_login_at: Option<Millis>,
}

/// A named API token, as shown (never the token, which only its creator saw once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub access: Access,
    pub groups: Option<Vec<String>>,
    pub created_by: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Millis,
    /// The user, `token:NAME`, `api.token`, or the name tried (failed logins).
    pub actor: String,
    pub address: Option<String>,
    /// `job.add`, `job.edit`, `run.kill`, `user.add`, `login`, `login.failed`, ...
    pub action: String,
    /// What it was done to: `job backup`, `run 12`, `user ann`, ...
    pub object: String,
    pub job_id: Option<i64>,
    /// Before / after of the changed fields, secrets masked.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A user's name: as a job's (letters, digits, `-`, `_`, `.`, `@`), at most 128.
pub fn check_user_name(name: &str) -> Result<(), FieldError> {
    if name.is_empty() || name.len() > 128 {
        return Err(FieldError::new("name", "must be 1 to 128 characters"));
    }
    if name.eq_ignore_ascii_case("api.token") {
        return Err(FieldError::new(
            "name",
            "`api.token` is the install token's name in the audit log",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')))
    {
        return Err(FieldError::new(
            "name",
            format!("`{name}`: `{c}` is not allowed (letters, digits, `-`, `_`, `.`, `@`)"),
        ));
    }
    Ok(())
}

/// A password people can be asked for: 8 to 1024 characters.
pub fn check_password(password: &str) -> Result<(), FieldError> {
    let n = password.chars().count();
    if !(8..=1024).contains(&n) {
        return Err(FieldError::new("password", "must be 8 to 1024 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_scopes_hold() {
        assert!(Access::Admin > Access::Operator && Access::Operator > Access::Viewer);
        let p = Principal {
            name: "ann".into(),
            access: Access::Operator,
            groups: parse_groups("a, b").expect("groups"),
        };
        assert!(p.can_write() && !p.is_admin());
        assert!(p.sees("a") && !p.sees("c"));
        assert!(Principal::install_token().sees("anything"));
        assert_eq!(parse_groups("").expect("empty"), None);
        assert!(parse_groups("a b").is_err());
    }
}
