//! `GET /v1/events`: the agent's events as Server-Sent Events (`text/event-stream`), for a UI
//! to show an offer the moment the agent raises it. Each event has an id; a client that comes
//! back with `Last-Event-ID` gets what it missed again, or a `missed` event saying how much it
//! lost. A comment every [`KEEP_ALIVE`] keeps proxies and the client's timers from closing a
//! quiet stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::{self, Stream};

use super::ApiError;
use crate::events::{EventHub, StreamItem, Subscription};

/// How often a quiet stream carries a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a client waits before reconnecting after the stream breaks, as the stream tells it.
const RETRY: Duration = Duration::from_secs(2);

/// The agent's events, live, as Server-Sent Events.
///
/// Events: `offer` (an `OfferBody`: a decision at a moment the agent raised that shows something), `consent` (a `ConsentView`: the consent
/// changed), `catalogue` (a `CatalogueEvent`: one applied or refused), `home` (a `HomeView`:
/// another screen of the home told what it showed today) and `missed` (a `Missed`:
/// what a client that came back or read too slowly lost). Each event's data is that JSON.
#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "events",
    params(("last-event-id" = Option<String>, Header,
        description = "The id of the last event this client received, to be sent what it missed.")),
    responses(
        (status = 200, description = "The stream of events, with an id each and a keep-alive comment when quiet.",
            content_type = "text/event-stream", body = String),
        (status = 503, description = "Too many clients follow the events already.", body = super::ErrorBody),
    ))]
pub(super) async fn follow(Extension(hub): Extension<Arc<EventHub>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let subscription = hub.subscribe(last).map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let sse = Sse::new(stream_of(subscription)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"));
    Ok(([("cache-control", "no-cache"), ("x-accel-buffering", "no")], sse).into_response())
}

/// The stream of one client: the retry hint first, then its items as they come.
fn stream_of(subscription: Subscription) -> impl Stream<Item = Result<Event, Infallible>> {
    let hint = stream::once(async { Ok(Event::default().retry(RETRY).comment("ledtrad events")) });
    let items = stream::unfold(subscription, |mut subscription| async move {
        let item = subscription.next().await?;
        Some((Ok(event(item)), subscription))
    });
    stream::StreamExt::chain(hint, items)
}

fn event(item: StreamItem) -> Event {
    match item {
        StreamItem::Event(e) => Event::default().id(e.id.clone()).event(e.name).data(e.data.clone()),
        StreamItem::Missed(missed) => {
            let data = serde_json::to_string(&missed).unwrap_or_else(|_| "{}".into());
            Event::default().event("missed").data(data)
        }
    }
}
