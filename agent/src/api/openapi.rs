//! The local API's OpenAPI 3.1 description. The router and the description are built from one
//! list of handlers (utoipa-axum's `routes!`), so a route cannot be served without being
//! described; each handler's `#[utoipa::path]` says what it answers. Added here: the guard's
//! answers, which every route can give, and the device UI's files, from the UI's own list.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, Required, ResponseBuilder};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::events::{__path_follow, follow};
use super::routes::*;
use super::{ui, MAX_BODY_BYTES};
use crate::events::{CatalogueEvent, Missed};
use crate::handle::AgentHandle;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "ledtrad agent local API",
        description = "The agent's HTTP API on loopback, for the device maker's UI. Bodies are JSON; \
every error is `{\"error\": \"...\"}`, naming the bad value and what fixes it. Requests must name \
a loopback host (`localhost`, `127.0.0.1` or `[::1]`), requests with a body must send it as \
`application/json`, and a request that carries an `Origin` must come from the agent's own pages."
    ),
    tags(
        (name = "offers", description = "Decisions, offers and feedback on them."),
        (name = "consent", description = "Consent purposes, the household's people and presence."),
        (name = "data", description = "What the device holds about a person: export and erasure."),
        (name = "signals", description = "Sensor signals into the device's feature windows."),
        (name = "events", description = "The agent's events, live (Server-Sent Events)."),
        (name = "home", description = "The home's screens as one household: making, joining and leaving a home."),
        (name = "agent", description = "The agent's state and this description."),
        (name = "ui", description = "The reference device UI's pages, served when the config says `ui = true`."),
    ),
    // The data of the events on `/v1/events` that no route answers with.
    components(schemas(CatalogueEvent, Missed))
)]
struct ApiDoc;

/// The API's routes and their description, from the one list of handlers.
pub(super) fn routes() -> OpenApiRouter<AgentHandle> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(offer))
        .routes(routes!(feedback))
        .routes(routes!(decision))
        .routes(routes!(consent))
        .routes(routes!(set_consent))
        .routes(routes!(put_person))
        .routes(routes!(set_person_consent))
        .routes(routes!(set_presence))
        .routes(routes!(prompt_answer))
        .routes(routes!(my_data, erase))
        .routes(routes!(signals))
        .routes(routes!(status))
        .routes(routes!(home, create_home, leave_home))
        .routes(routes!(home_code))
        .routes(routes!(join_home))
        .routes(routes!(follow))
        .routes(routes!(openapi_json))
}

/// The local API's OpenAPI 3.1 description.
pub fn description() -> OpenApi {
    let (_, mut doc) = routes().split_for_parts();
    add_ui_files(&mut doc);
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.delete].into_iter().flatten() {
            add_guard_responses(op, false);
        }
        for op in [&mut item.put, &mut item.post].into_iter().flatten() {
            add_guard_responses(op, true);
        }
    }
    doc
}

/// The description as pretty-printed JSON.
pub fn description_json() -> String {
    description().to_pretty_json().expect("an OpenAPI document is plain data and always serialises")
}

/// The answers of the guard and the body limit, which stand in front of every handler.
fn add_guard_responses(op: &mut Operation, has_body: bool) {
    let mut add = |status: &str, description: String| {
        op.responses.responses.insert(status.into(), error(&description).into());
    };
    add("403", "The request's Host is not a loopback name, or its Origin not the agent's own.".into());
    if has_body {
        add("413", format!("The body is over {MAX_BODY_BYTES} bytes."));
        add("415", "The body is not sent as `content-type: application/json`.".into());
    }
}

/// The device UI's files (`ui.rs` serves them when `ui = true`, else answers 404 for each).
fn add_ui_files(doc: &mut OpenApi) {
    let off = "The device UI is off: set `ui = true` in the agent's config.";
    let get = |summary: &str, responses: Vec<(&str, utoipa::openapi::Response)>| {
        let op = OperationBuilder::new().tag("ui").summary(Some(summary));
        responses.into_iter().fold(op, |op, (status, response)| op.response(status, response)).build()
    };
    for (path, content_type) in ui::files() {
        let media = content_type.split(';').next().unwrap_or(content_type).trim();
        let text = ObjectBuilder::new().schema_type(Type::String).build();
        let file = ResponseBuilder::new()
            .description(format!("The file, as {media}."))
            .content(media, ContentBuilder::new().schema(Some(text)).build());
        let op = get(&format!("The device UI's {path}."), vec![("200", file.build()), ("404", error(off))]);
        doc.paths.add_path_operation(path, vec![HttpMethod::Get], op);
    }
    let location = HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::String)).build();
    let moved = ResponseBuilder::new().description("Moved to `/ui/`.").header("location", location).build();
    let op = get("The device UI's index, at `/ui/`.", vec![("308", moved), ("404", error(off))]);
    doc.paths.add_path_operation("/ui", vec![HttpMethod::Get], op);
    let none = error("No such file in the device UI (the answer names the files there are), or the UI is off.");
    let mut other = get("Any other path under `/ui/`.", vec![("404", none)]);
    let file = ParameterBuilder::new()
        .name("file")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("A path that is not one of the UI's files."))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
    other.parameters = Some(vec![file.build()]);
    doc.paths.add_path_operation("/ui/{file}", vec![HttpMethod::Get], other);
}

/// A response with the error body.
fn error(description: &str) -> utoipa::openapi::Response {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build();
    ResponseBuilder::new().description(description).content("application/json", content).build()
}

/// This description, as JSON.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "agent",
    responses((status = 200, description = "The local API's OpenAPI 3.1 description.",
        content_type = "application/json", body = serde_json::Value)))]
pub(super) async fn openapi_json() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(description_json);
    ([(CONTENT_TYPE, "application/json")], json.clone()).into_response()
}
