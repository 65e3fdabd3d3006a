//! The local HTTP API on loopback, for the device maker's UI. Bodies are JSON; every error is
//! `{"error": "..."}` naming the bad value and the fix.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ledtrad_engine::FeedbackError;
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::decision::DecisionId;
use ledtrad_protocol::feedback::Feedback;
use ledtrad_protocol::signal::{Signal, SignalBatch, MAX_SIGNALS_PER_BATCH};
use ledtrad_protocol::{codec, Moment, PersonId, Purpose};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::handle::{AgentError, AgentHandle, ConsentChange, PersonChange, Presence, PromptAnswer};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The header that carries the decision id when no offer is shown (204).
pub const DECISION_HEADER: &str = "ledtrad-decision";

/// The API's routes over a handle.
pub fn router(handle: AgentHandle) -> Router {
    Router::new()
        .route("/v1/offer", get(offer))
        .route("/v1/feedback", post(feedback))
        .route("/v1/consent", get(consent))
        .route("/v1/consent/{purpose}", put(set_consent))
        .route("/v1/people/{person}", put(put_person))
        .route("/v1/people/{person}/consent/{purpose}", put(set_person_consent))
        .route("/v1/presence", put(set_presence))
        .route("/v1/my-data", get(my_data).delete(erase))
        .route("/v1/prompt-answer", post(prompt_answer))
        .route("/v1/decisions/{id}", get(decision))
        .route("/v1/signals", post(signals))
        .route("/v1/status", get(status))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(guard))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(handle)
}

/// Serves the API on `listener` until the task is aborted.
pub fn serve(listener: TcpListener, handle: AgentHandle) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(handle)).await {
            tracing::error!("local API stopped: {e}");
        }
    })
}

/// An API error response.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (self.0, Json(Body { error: self.1 })).into_response()
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

fn bad_request(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

/// Keeps web pages out: a page in a browser on the device can reach loopback, but it cannot
/// send a JSON content type without a CORS preflight (which this API never answers), and a
/// DNS-rebound name fails the Host check.
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
    let has_body = matches!(*request.method(), axum::http::Method::POST | axum::http::Method::PUT);
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
        "no such endpoint; see the README for /v1/offer, /v1/feedback, /v1/consent, /v1/people, /v1/presence, /v1/my-data, /v1/decisions/{id}, /v1/signals, /v1/status".into(),
    )
}

async fn offer(
    State(handle): State<AgentHandle>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let text = query
        .get("moment")
        .ok_or_else(|| bad_request("missing ?moment=; e.g. GET /v1/offer?moment=door_opened".into()))?;
    let moment: Moment = text.parse().map_err(|e| bad_request(format!("moment {text:?}: {e}")))?;
    let outcome = handle.offer(moment).await?;
    let id = outcome.decision.id;
    #[derive(Serialize)]
    struct Body {
        decision: DecisionId,
        #[serde(skip_serializing_if = "Option::is_none")]
        offer: Option<ledtrad_protocol::decision::ShownOffer>,
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt: Option<ledtrad_protocol::decision::ShownPrompt>,
        /// Set when the offer came from the offer service (request mode).
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<crate::handle::RequestOutcome>,
    }
    let (offer, prompt) = (outcome.decision.shown, outcome.decision.prompt);
    if offer.is_none() && prompt.is_none() {
        let mut headers = HeaderMap::new();
        headers.insert(DECISION_HEADER, HeaderValue::from(id.0));
        return Ok((StatusCode::NO_CONTENT, headers).into_response());
    }
    Ok(Json(Body { decision: id, offer, prompt, request: outcome.request }).into_response())
}

async fn feedback(State(handle): State<AgentHandle>, body: Bytes) -> Result<StatusCode, ApiError> {
    let feedback: Feedback = codec::from_json(&body, "feedback body").map_err(|e| {
        bad_request(format!(
            "{e}; send {{\"decision\": <id>, \"kind\": \"accepted\" | \"dismissed\" | \"not_for_me\"}}"
        ))
    })?;
    handle.feedback(feedback).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn consent(State(handle): State<AgentHandle>) -> Result<Response, ApiError> {
    Ok(Json(handle.consent().await?).into_response())
}

fn consent_change(body: &[u8]) -> Result<ConsentChange, ApiError> {
    codec::from_json(body, "consent body").map_err(|e| {
        bad_request(format!(
            "{e}; send {{\"granted\": true, \"text_version\": \"2026-11\", \"source\": \"device_ui\"}}"
        ))
    })
}

fn purpose(text: &str) -> Result<Purpose, ApiError> {
    text.parse().map_err(|e| bad_request(format!("purpose {text:?}: {e}")))
}

fn person(text: &str) -> Result<PersonId, ApiError> {
    PersonId::try_new(text).map_err(|e| bad_request(e.to_string()))
}

async fn set_consent(
    State(handle): State<AgentHandle>,
    Path(p): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (purpose, change) = (purpose(&p)?, consent_change(&body)?);
    Ok(Json(handle.set_consent(purpose, change).await?).into_response())
}

async fn set_person_consent(
    State(handle): State<AgentHandle>,
    Path((who, p)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (who, purpose, change) = (person(&who)?, purpose(&p)?, consent_change(&body)?);
    Ok(Json(handle.set_person_consent(Some(who), purpose, change).await?).into_response())
}

async fn put_person(
    State(handle): State<AgentHandle>,
    Path(who): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = person(&who)?;
    let change: PersonChange =
        codec::from_json(&body, "person body").map_err(|e| bad_request(format!("{e}; send {{\"child\": false}}")))?;
    Ok(Json(handle.put_person(who, change).await?).into_response())
}

async fn set_presence(State(handle): State<AgentHandle>, body: Bytes) -> Result<Response, ApiError> {
    let presence: Presence = codec::from_json(&body, "presence body").map_err(|e| {
        bad_request(format!("{e}; send {{\"present\": [\"anna\"]}}, or {{\"present\": null}} when unknown"))
    })?;
    Ok(Json(handle.set_presence(presence.present).await?).into_response())
}

fn query_person(query: &HashMap<String, String>) -> Result<Option<PersonId>, ApiError> {
    query.get("person").map(|p| person(p)).transpose()
}

async fn my_data(
    State(handle): State<AgentHandle>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    Ok(Json(handle.my_data(query_person(&query)?).await?).into_response())
}

async fn erase(
    State(handle): State<AgentHandle>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let source = match query.get("source") {
        None => ConsentSource::Api,
        Some(text) => serde_json::from_value(serde_json::Value::String(text.clone()))
            .map_err(|_| bad_request(format!("source {text:?} is not one of device_ui, voice, setup_wizard, api")))?,
    };
    Ok(Json(handle.erase(query_person(&query)?, source).await?).into_response())
}

async fn prompt_answer(State(handle): State<AgentHandle>, body: Bytes) -> Result<Response, ApiError> {
    let answer: PromptAnswer = codec::from_json(&body, "prompt answer")
        .map_err(|e| bad_request(format!("{e}; send {{\"decision\": <id>, \"answer\": \"yes\" | \"no\"}}")))?;
    Ok(Json(handle.prompt_answer(answer).await?).into_response())
}

async fn decision(State(handle): State<AgentHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: u64 = id.parse().map_err(|_| bad_request(format!("decision id {id:?} is not a number")))?;
    match handle.decision(DecisionId(id)).await? {
        Some(decision) => Ok(Json(decision).into_response()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("decision {id} is unknown or older than the last {} decisions, whose traces the agent keeps; ask right after the decision", ledtrad_engine::RECENT_TRACES),
        )),
    }
}

async fn signals(State(handle): State<AgentHandle>, body: Bytes) -> Result<Response, ApiError> {
    // Accept one signal or a batch.
    let signals: Vec<Signal> = match codec::from_json::<SignalBatch>(&body, "signals body") {
        Ok(batch) => batch.signals,
        Err(batch_err) => match codec::from_json::<Signal>(&body, "signal body") {
            Ok(signal) => vec![signal],
            Err(_) => {
                return Err(bad_request(format!(
                    "{batch_err}; send {{\"signals\": [{{\"feature\": \"fridge.butter.level\", \"value\": 0.1}}]}}"
                )))
            }
        },
    };
    if signals.len() > MAX_SIGNALS_PER_BATCH {
        return Err(bad_request(format!(
            "{} signals in one batch is over the limit of {MAX_SIGNALS_PER_BATCH}; split it",
            signals.len()
        )));
    }
    Ok(Json(handle.signals(signals).await?).into_response())
}

async fn status(State(handle): State<AgentHandle>) -> Result<Response, ApiError> {
    Ok(Json(handle.status().await?).into_response())
}
