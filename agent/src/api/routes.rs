//! The local API's handlers: each reads its request, asks the agent through its handle and says
//! what came of it as JSON. Each carries its part of the API description (`#[utoipa::path]`):
//! every status it can answer with; the guard's own (403, 413, 415) are added for all routes in
//! `openapi.rs`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::decision::{Decision, DecisionId};
use ledtrad_protocol::feedback::Feedback;
use ledtrad_protocol::{codec, Moment, PersonId, Purpose};
use serde::Serialize;
use utoipa::ToSchema;

use super::bodies::{self, SignalsBody};
use super::{bad_request, ApiError, ErrorBody, DECISION_HEADER};
use crate::events::OfferBody;
use crate::handle::{
    AgentHandle, AgentStatus, ConsentChange, ConsentView, DecisionAnswer, MyData, PersonChange, Presence, PromptAnswer,
    SignalsOutcome,
};
use crate::home::{HomeCommand, HomeView};

/// A decision's trace (`GET /v1/decisions/{id}`): the decision, with the answers given to it
/// (feedback from the screen), oldest first.
#[derive(Serialize, ToSchema)]
pub(super) struct DecisionTrace {
    /// The decision, with the reason for every candidate.
    #[serde(flatten)]
    decision: Decision,
    /// The answers given to it.
    answers: Vec<DecisionAnswer>,
}

/// Decides what to show at a moment: an offer (as a question), a consent prompt, or nothing.
#[utoipa::path(get, path = "/v1/offer", tag = "offers",
    params(("moment" = Moment, Query, description = "The moment that asks, e.g. `door_opened`.")),
    responses(
        (status = 200, description = "An offer or a consent prompt to show.", body = OfferBody),
        (status = 204, description = "Nothing to show now.",
            headers(("ledtrad-decision" = u64, description = "The decision's number, for `GET /v1/decisions/{id}`."))),
        (status = 400, description = "`moment` is missing or unknown.", body = ErrorBody),
        (status = 503, description = "The agent has stopped.", body = ErrorBody),
    ))]
pub(super) async fn offer(
    State(handle): State<AgentHandle>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let text = query
        .get("moment")
        .ok_or_else(|| bad_request("missing ?moment=; e.g. GET /v1/offer?moment=door_opened".into()))?;
    let moment = bodies::moment(text).map_err(bad_request)?;
    let outcome = handle.offer(moment).await?;
    let body = OfferBody::new(moment, &outcome);
    if !body.shows_something() {
        let mut headers = HeaderMap::new();
        headers.insert(DECISION_HEADER, HeaderValue::from(body.decision.0));
        return Ok((StatusCode::NO_CONTENT, headers).into_response());
    }
    Ok(Json(body).into_response())
}

/// Records what the person did with a shown offer.
#[utoipa::path(post, path = "/v1/feedback", tag = "offers",
    request_body(content = Feedback, content_type = "application/json"),
    responses(
        (status = 204, description = "Recorded; it changes what the device does next."),
        (status = 400, description = "The body is not feedback.", body = ErrorBody),
        (status = 404, description = "The decision is unknown or too old.", body = ErrorBody),
        (status = 409, description = "The decision showed nothing, or already has its answer.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn feedback(State(handle): State<AgentHandle>, body: Bytes) -> Result<StatusCode, ApiError> {
    let feedback = bodies::feedback(&body).map_err(bad_request)?;
    handle.feedback(feedback).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The consent in force on this device, and the household behind it.
#[utoipa::path(get, path = "/v1/consent", tag = "consent",
    responses(
        (status = 200, description = "The consent in force.", body = ConsentView),
        (status = 503, description = "The agent has stopped, or its storage cannot be read.", body = ErrorBody),
    ))]
pub(super) async fn consent(State(handle): State<AgentHandle>) -> Result<Json<ConsentView>, ApiError> {
    Ok(Json(handle.consent().await?))
}

fn consent_change(body: &[u8]) -> Result<ConsentChange, ApiError> {
    bodies::consent_change(body).map_err(bad_request)
}

fn purpose(text: &str) -> Result<Purpose, ApiError> {
    bodies::purpose(text).map_err(bad_request)
}

fn person(text: &str) -> Result<PersonId, ApiError> {
    PersonId::try_new(text).map_err(|e| bad_request(e.to_string()))
}

/// Grants or revokes a purpose for the device's owner; in force (and what it allowed purged)
/// before the answer.
#[utoipa::path(put, path = "/v1/consent/{purpose}", tag = "consent",
    params(("purpose" = Purpose, Path, description = "The purpose granted or revoked.")),
    request_body(content = ConsentChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The consent now in force.", body = ConsentView),
        (status = 400, description = "An unknown purpose, a malformed body, or a grant the person may not give.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn set_consent(
    State(handle): State<AgentHandle>,
    Path(p): Path<String>,
    body: Bytes,
) -> Result<Json<ConsentView>, ApiError> {
    let (purpose, change) = (purpose(&p)?, consent_change(&body)?);
    Ok(Json(handle.set_consent(purpose, change).await?))
}

/// Grants or revokes a purpose for one person of the household.
#[utoipa::path(put, path = "/v1/people/{person}/consent/{purpose}", tag = "consent",
    params(
        ("person" = PersonId, Path, description = "A person of the household."),
        ("purpose" = Purpose, Path, description = "The purpose granted or revoked."),
    ),
    request_body(content = ConsentChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The consent now in force.", body = ConsentView),
        (status = 400, description = "A bad person id or purpose, a malformed body, or a grant a child may not give.", body = ErrorBody),
        (status = 404, description = "The person is not in the household.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn set_person_consent(
    State(handle): State<AgentHandle>,
    Path((who, p)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<ConsentView>, ApiError> {
    let (who, purpose, change) = (person(&who)?, purpose(&p)?, consent_change(&body)?);
    Ok(Json(handle.set_person_consent(Some(who), purpose, change).await?))
}

/// Adds a person to the household, or changes whether they are a child.
#[utoipa::path(put, path = "/v1/people/{person}", tag = "consent",
    params(("person" = PersonId, Path, description = "The person's id.")),
    request_body(content = PersonChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The consent now in force.", body = ConsentView),
        (status = 400, description = "A bad person id or a malformed body.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn put_person(
    State(handle): State<AgentHandle>,
    Path(who): Path<String>,
    body: Bytes,
) -> Result<Json<ConsentView>, ApiError> {
    let who = person(&who)?;
    let change: PersonChange =
        codec::from_json(&body, "person body").map_err(|e| bad_request(format!("{e}; send {{\"child\": false}}")))?;
    Ok(Json(handle.put_person(who, change).await?))
}

/// Says who is present at a shared device.
#[utoipa::path(put, path = "/v1/presence", tag = "consent",
    request_body(content = Presence, content_type = "application/json"),
    responses(
        (status = 200, description = "The consent now in force.", body = ConsentView),
        (status = 400, description = "A malformed body.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn set_presence(
    State(handle): State<AgentHandle>,
    body: Bytes,
) -> Result<Json<ConsentView>, ApiError> {
    let presence: Presence = codec::from_json(&body, "presence body").map_err(|e| {
        bad_request(format!("{e}; send {{\"present\": [\"anna\"]}}, or {{\"present\": null}} when unknown"))
    })?;
    Ok(Json(handle.set_presence(presence.present).await?))
}

fn query_person(query: &HashMap<String, String>) -> Result<Option<PersonId>, ApiError> {
    query.get("person").map(|p| person(p)).transpose()
}

/// Everything the device holds about a person, as JSON.
#[utoipa::path(get, path = "/v1/my-data", tag = "data",
    params(("person" = Option<PersonId>, Query, description = "Whose data (default: the device's owner).")),
    responses(
        (status = 200, description = "What the device holds about the person.", body = MyData),
        (status = 400, description = "A bad person id.", body = ErrorBody),
        (status = 404, description = "The person is not in the household.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be read.", body = ErrorBody),
    ))]
pub(super) async fn my_data(
    State(handle): State<AgentHandle>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<MyData>, ApiError> {
    Ok(Json(handle.my_data(query_person(&query)?).await?))
}

/// Erases what the device holds about a person, and answers with what is left (the record of
/// their consent and of the erasure).
#[utoipa::path(delete, path = "/v1/my-data", tag = "data",
    params(
        ("person" = Option<PersonId>, Query, description = "Whose data (default: the device's owner)."),
        ("source" = Option<ConsentSource>, Query, description = "Where the person asked (default `api`)."),
    ),
    responses(
        (status = 200, description = "Erased; what is left.", body = MyData),
        (status = 400, description = "A bad person id or source.", body = ErrorBody),
        (status = 404, description = "The person is not in the household.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn erase(
    State(handle): State<AgentHandle>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<MyData>, ApiError> {
    let source = match query.get("source") {
        None => ConsentSource::Api,
        Some(text) => serde_json::from_value(serde_json::Value::String(text.clone()))
            .map_err(|_| bad_request(format!("source {text:?} is not one of device_ui, voice, setup_wizard, api")))?,
    };
    Ok(Json(handle.erase(query_person(&query)?, source).await?))
}

/// Answers a consent prompt: "yes" grants its purpose, "no" quiets prompts for it for 30 days.
#[utoipa::path(post, path = "/v1/prompt-answer", tag = "consent",
    request_body(content = PromptAnswer, content_type = "application/json"),
    responses(
        (status = 200, description = "The consent now in force.", body = ConsentView),
        (status = 400, description = "A malformed body, or a shared device's \"yes\" that says not whose.", body = ErrorBody),
        (status = 404, description = "The decision is unknown or too old, or the person is not in the household.", body = ErrorBody),
        (status = 409, description = "The decision showed no prompt, or it was already answered.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn prompt_answer(
    State(handle): State<AgentHandle>,
    body: Bytes,
) -> Result<Json<ConsentView>, ApiError> {
    let answer: PromptAnswer = codec::from_json(&body, "prompt answer")
        .map_err(|e| bad_request(format!("{e}; send {{\"decision\": <id>, \"answer\": \"yes\" | \"no\"}}")))?;
    Ok(Json(handle.prompt_answer(answer).await?))
}

/// A recent decision with the reason for every candidate ("why", and "why not").
#[utoipa::path(get, path = "/v1/decisions/{id}", tag = "offers",
    params(("id" = u64, Path, description = "The decision's number.")),
    responses(
        (status = 200, description = "The decision's trace, with the answers given to it.", body = DecisionTrace),
        (status = 400, description = "The id is not a number.", body = ErrorBody),
        (status = 404, description = "The decision is unknown or its trace no longer kept.", body = ErrorBody),
        (status = 503, description = "The agent has stopped.", body = ErrorBody),
    ))]
pub(super) async fn decision(
    State(handle): State<AgentHandle>,
    Path(id): Path<String>,
) -> Result<Json<DecisionTrace>, ApiError> {
    let id: u64 = id.parse().map_err(|_| bad_request(format!("decision id {id:?} is not a number")))?;
    match handle.decision(DecisionId(id)).await? {
        Some(decision) => {
            let answers = handle.answers(DecisionId(id)).await?;
            Ok(Json(DecisionTrace { decision, answers }))
        }
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("decision {id} is unknown or older than the last {} decisions, whose traces the agent keeps; ask right after the decision", ledtrad_engine::RECENT_TRACES),
        )),
    }
}

/// Feeds sensor signals (one, or a batch) into the device's feature windows.
#[utoipa::path(post, path = "/v1/signals", tag = "signals",
    request_body(content = SignalsBody, content_type = "application/json"),
    responses(
        (status = 200, description = "What became of the signals.", body = SignalsOutcome),
        (status = 400, description = "A malformed body, an unknown feature, or too many signals at once.", body = ErrorBody),
        (status = 503, description = "The agent has stopped.", body = ErrorBody),
    ))]
pub(super) async fn signals(State(handle): State<AgentHandle>, body: Bytes) -> Result<Json<SignalsOutcome>, ApiError> {
    let signals = bodies::signals(&body).map_err(bad_request)?;
    Ok(Json(handle.signals(signals).await?))
}

/// The agent's state: connection, catalogue and model in force, counts.
#[utoipa::path(get, path = "/v1/status", tag = "agent",
    responses(
        (status = 200, description = "The agent's state.", body = AgentStatus),
        (status = 503, description = "The agent has stopped.", body = ErrorBody),
    ))]
pub(super) async fn status(State(handle): State<AgentHandle>) -> Result<Json<AgentStatus>, ApiError> {
    Ok(Json(handle.status().await?))
}

/// The home this device belongs to: its pseudonym on the broker, and what it heard.
#[utoipa::path(get, path = "/v1/home", tag = "home",
    responses(
        (status = 200, description = "The device's home, if any.", body = HomeView),
        (status = 503, description = "The agent has stopped.", body = ErrorBody),
    ))]
pub(super) async fn home(State(handle): State<AgentHandle>) -> Result<Json<HomeView>, ApiError> {
    Ok(Json(handle.home(HomeCommand::View).await?))
}

/// Makes a new home with this device as its first screen. The answer carries the code to
/// show here and type or scan on the home's other screens (`POST /v1/home/join`).
#[utoipa::path(post, path = "/v1/home", tag = "home",
    responses(
        (status = 200, description = "The new home, with its code.", body = HomeView),
        (status = 400, description = "The device belongs to a home already (leave it first), or its config names no owner.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn create_home(State(handle): State<AgentHandle>) -> Result<Json<HomeView>, ApiError> {
    Ok(Json(handle.home(HomeCommand::Create).await?))
}

/// Leaves the home: the device forgets its key and stops hearing it. The consent rows it
/// heard stay in its ledger.
#[utoipa::path(delete, path = "/v1/home", tag = "home",
    responses(
        (status = 200, description = "Left: no home.", body = HomeView),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn leave_home(State(handle): State<AgentHandle>) -> Result<Json<HomeView>, ApiError> {
    Ok(Json(handle.home(HomeCommand::Leave).await?))
}

/// The code of this device's home, to join another screen.
#[utoipa::path(get, path = "/v1/home/code", tag = "home",
    responses(
        (status = 200, description = "The home, with its code.", body = HomeView),
        (status = 400, description = "The device belongs to no home.", body = ErrorBody),
        (status = 503, description = "The agent has stopped.", body = ErrorBody),
    ))]
pub(super) async fn home_code(State(handle): State<AgentHandle>) -> Result<Json<HomeView>, ApiError> {
    Ok(Json(handle.home(HomeCommand::Code).await?))
}

/// Joins the home whose code is shown on one of its screens; the device then shares the
/// household's people and consent with the home's other devices.
#[utoipa::path(post, path = "/v1/home/join", tag = "home",
    request_body(content = JoinHome, content_type = "application/json"),
    responses(
        (status = 200, description = "Joined.", body = HomeView),
        (status = 400, description = "A malformed body; a code with a wrong character, length or checksum; a device in another home already, or whose config names no owner.", body = ErrorBody),
        (status = 503, description = "The agent has stopped, or its storage cannot be written.", body = ErrorBody),
    ))]
pub(super) async fn join_home(State(handle): State<AgentHandle>, body: Bytes) -> Result<Json<HomeView>, ApiError> {
    let join: JoinHome = codec::from_json(&body, "home join body").map_err(|e| {
        bad_request(format!(
            "{e}; send {{\"code\": \"...\"}} with the code shown by GET /v1/home/code on a screen of the home"
        ))
    })?;
    Ok(Json(handle.home(HomeCommand::Join(join.code)).await?))
}

/// The body of `POST /v1/home/join`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinHome {
    /// The home's code as shown on another of its screens (dashes, spaces and case do not
    /// matter).
    code: String,
}
