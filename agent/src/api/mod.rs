//! The local HTTP API on loopback, for the device maker's UI. Bodies are JSON; every error is
//! `{"error": "..."}` naming the bad value and the fix. Its OpenAPI description is built with
//! the router from the same list of handlers (`openapi.rs`).

pub mod bodies;
mod events;
pub mod listen;
mod openapi;
mod routes;
pub mod ui;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use ledtrad_engine::FeedbackError;
use serde::Serialize;
use tokio::task::JoinHandle;

use std::sync::Arc;

use crate::events::EventHub;
use crate::handle::{AgentError, AgentHandle};

pub use openapi::{description, description_json};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The header that carries the decision id when no offer is shown (204).
pub const DECISION_HEADER: &str = "ledtrad-decision";

/// The API's routes over a handle, with the agent's events, and the reference device UI
/// under `/ui/` when `ui` is set (else `/ui/` says how to turn it on).
pub fn router(handle: AgentHandle, events: Arc<EventHub>, ui: bool) -> Router {
    let pages = if ui { ui::routes() } else { ui::off() };
    let (routes, _) = openapi::routes().split_for_parts();
    routes
        .merge(pages)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(guard))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(events))
        .with_state(handle)
}

/// Serves the API (and the device UI when `ui` is set) on `listener` until the task is aborted.
pub fn serve<L>(listener: L, handle: AgentHandle, events: Arc<EventHub>, ui: bool) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(handle, events, ui)).await {
            tracing::error!("local API stopped: {e}");
        }
    })
}

/// An API error response.
pub(super) struct ApiError(StatusCode, String);

/// The body of every error the local API answers with.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(super) struct ErrorBody {
    /// What is wrong, naming the bad value, and what fixes it.
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        let status = match &e {
            AgentError::Stopped | AgentError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            AgentError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AgentError::UnknownPerson(_) => StatusCode::NOT_FOUND,
            AgentError::Feedback(FeedbackError::UnknownDecision(_)) => StatusCode::NOT_FOUND,
            AgentError::Feedback(_) => StatusCode::CONFLICT,
        };
        Self(status, e.to_string())
    }
}

pub(super) fn bad_request(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

/// Keeps other web pages out: a page in a browser on the device can reach loopback, but it
/// cannot send a JSON content type without a CORS preflight (which this API never answers), a
/// DNS-rebound name fails the Host check, and a request whose `Origin` is not the agent's own
/// is refused.
async fn guard(request: axum::extract::Request, next: axum::middleware::Next) -> Result<Response, ApiError> {
    let host = request.headers().get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    if !matches!(name, "localhost" | "127.0.0.1" | "::1") {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("Host {host:?} is not a loopback name; the local API answers only requests to localhost, 127.0.0.1 or [::1]"),
        ));
    }
    // The agent's own pages (`/ui/`) are same-origin; a page from anywhere else is refused,
    // even for a GET its browser would send without asking.
    if let Some(origin) = request.headers().get(axum::http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if origin != format!("http://{host}") {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("Origin {origin:?} is not this agent's own (http://{host}); the local API answers its own pages and programs on the device only"),
            ));
        }
    }
    // A POST or PUT with nothing in it (`POST /v1/home`) needs no content type.
    let headers = request.headers();
    let empty = !headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        && headers.get(axum::http::header::CONTENT_LENGTH).is_none_or(|l| l.to_str().is_ok_and(|l| l.trim() == "0"));
    let has_body = matches!(*request.method(), axum::http::Method::POST | axum::http::Method::PUT) && !empty;
    let json = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if has_body && !json {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with the header 'content-type: application/json'".into(),
        ));
    }
    let response = next.run(request).await;
    // The body limit's own answer is plain text; say it the way every other error is said.
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the {MAX_BODY_BYTES} bytes the local API takes; send fewer signals at once"),
        ));
    }
    Ok(response)
}

async fn not_found() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "no such endpoint; GET /v1/openapi.json lists every endpoint (/v1/offer, /v1/feedback, /v1/consent, /v1/people, /v1/presence, /v1/home, /v1/my-data, /v1/decisions/{id}, /v1/signals, /v1/events, /v1/status)".into(),
    )
}
