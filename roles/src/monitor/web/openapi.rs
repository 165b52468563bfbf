//! The OpenAPI 3 document of `/api/v1`, served at `/api/v1/openapi.json` (no token: the
//! contract is no secret). Generated from the code: each route is registered with its
//! operation (`utoipa_axum::routes!` in `api.rs` and `admin.rs`), and the bodies are the types
//! the handlers serialize, so the document cannot drift from what the API does.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::http::ErrorBody;

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cronvisor API",
        description = "Jobs, runs, their output, the fleet, alarms, users, tokens and the audit \
            log. Every call takes `Authorization: Bearer <token>` (the install's `api.token`, or \
            a named token); every rejected input answers `{\"error\": {\"field\", \"message\"}}` \
            and stores nothing."
    ),
    security(("token" = [])),
    tags(
        (name = "jobs", description = "Jobs and their schedules"),
        (name = "runs", description = "Runs, their output and kills"),
        (name = "flows", description = "Workflows: jobs that run after others, and their flows"),
        (name = "backfills", description = "Backfills: a job run once for each past instant of its rule in a range"),
        (name = "calendars", description = "Business calendars: days that filter jobs' instants"),
        (name = "fleet", description = "Executors and dispatchers"),
        (name = "alarms", description = "Alarms and their delivery"),
        (name = "access", description = "Users, tokens and the audit log (admins)"),
    )
)]
pub struct ApiDoc;

/// What every operation shares: the bearer token, and the answers any call can get — no or a
/// bad token (401), the store unavailable (503).
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The install's api.token, or a named token"))
                    .build(),
            ),
        );
        // ErrorBody is among the schemas already: the operations' own 4xx answers use it.
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name(
                            ErrorBody::name(),
                        )))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                let answers = &mut op.responses.responses;
                answers.entry("401".into()).or_insert_with(|| {
                    RefOr::T(error("No token, or a wrong, expired or revoked one"))
                });
                answers
                    .entry("503".into())
                    .or_insert_with(|| RefOr::T(error("The store is unavailable; try again")));
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The document of the routes, with what every operation shares (added once every route is
/// in: a derive's modifiers run before the routes are merged).
pub fn complete(mut doc: Document) -> Document {
    Common.modify(&mut doc);
    doc
}

/// Serves the document.
pub fn router(doc: Document) -> Router {
    let doc = Arc::new(doc);
    Router::new().route(PATH, get(move || async move { Json(doc.as_ref().clone()) }))
}
