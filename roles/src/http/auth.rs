//! Bearer-token authentication. The executor's RPC runs shell commands: without a token it
//! would be remote code execution, so every protected route goes through here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The bearer tokens a route takes (any one of them).
#[derive(Clone)]
pub struct Token(Arc<Vec<String>>);

impl Token {
    pub fn new(token: String) -> Token {
        Token(Arc::new(vec![token]))
    }

    /// Any of `tokens`.
    pub fn any(tokens: Vec<String>) -> Token {
        Token(Arc::new(tokens))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: 401 unless `Authorization: Bearer <token>` matches.
pub async fn require_token(State(token): State<Token>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if token.0.iter().any(|t| same(g.as_bytes(), t.as_bytes())) => next.run(req).await,
        _ => {
            ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares_whole_tokens() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"ab"));
    }
}
