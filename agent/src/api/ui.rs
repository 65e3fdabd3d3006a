//! The reference device UI: plain HTML, CSS and JavaScript pages compiled into the agent and
//! served under `/ui/` on the local API when the config says `ui = true`. The pages talk to
//! the API same-origin; the strict content security policy lets them load nothing else.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::ApiError;

/// The content security policy of every page: only the agent's own scripts, styles, images
/// and API; no inline script or style, no frames, no forms to elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// One file of the UI: where it is served, its type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";

/// Every file of the UI. `/ui/` is the index; the rest are named without an extension.
const ASSETS: [Asset; 8] = [
    Asset { path: "/ui/", content_type: HTML, body: include_str!("../../ui/index.html") },
    Asset { path: "/ui/fridge", content_type: HTML, body: include_str!("../../ui/fridge.html") },
    Asset { path: "/ui/lock-screen", content_type: HTML, body: include_str!("../../ui/lock-screen.html") },
    Asset { path: "/ui/ereader", content_type: HTML, body: include_str!("../../ui/ereader.html") },
    Asset { path: "/ui/consent", content_type: HTML, body: include_str!("../../ui/consent.html") },
    Asset { path: "/ui/my-data", content_type: HTML, body: include_str!("../../ui/my-data.html") },
    Asset { path: "/ui/ui.css", content_type: "text/css; charset=utf-8", body: include_str!("../../ui/ui.css") },
    Asset { path: "/ui/ui.js", content_type: "text/javascript; charset=utf-8", body: include_str!("../../ui/ui.js") },
];

/// Every file of the UI as (path, content type), for the API's description.
pub(super) fn files() -> impl Iterator<Item = (&'static str, &'static str)> {
    ASSETS.iter().map(|a| (a.path, a.content_type))
}

/// The UI's routes: its pages, stylesheet and script; `/ui` redirects to `/ui/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/ui", get(|| async { Redirect::permanent("/ui/") }));
    for asset in &ASSETS {
        let (content_type, body) = (asset.content_type, asset.body);
        router = router.route(asset.path, get(move || async move { serve(content_type, body) }));
    }
    router.route("/ui/{*rest}", get(no_such_page))
}

/// The routes in place of the UI when it is off: each says how to turn it on.
pub fn off<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/ui", get(ui_off)).route("/ui/", get(ui_off)).route("/ui/{*rest}", get(ui_off))
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Always ask again: a device updated with a new agent must not show an old page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn ui_off() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "the device UI is off; set 'ui = true' in the agent's config to serve it under /ui/".into(),
    )
}

async fn no_such_page(axum::extract::Path(rest): axum::extract::Path<String>) -> ApiError {
    let pages: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
    ApiError(StatusCode::NOT_FOUND, format!("no page /ui/{rest}; the device UI has {}", pages.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `router` on a free loopback port and returns its base URL.
    async fn build_server(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    fn build_handle() -> crate::AgentHandle {
        // The UI's pages never ask the agent; a handle whose runtime is gone is enough.
        let (tx, _) = tokio::sync::mpsc::channel(1);
        crate::AgentHandle::from_sender(tx)
    }

    fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    #[tokio::test]
    async fn every_page_is_served_with_its_type_no_cache_and_the_policy() {
        let base = build_server(super::super::router(
            build_handle(),
            std::sync::Arc::new(crate::events::EventHub::new(1)),
            true,
        ))
        .await;
        for asset in &ASSETS {
            let response = reqwest::get(format!("{base}{}", asset.path)).await.expect("request");
            assert_eq!(response.status(), 200, "{}", asset.path);
            assert_eq!(header(&response, "content-type"), asset.content_type, "{}", asset.path);
            assert_eq!(header(&response, "cache-control"), "no-cache", "{}", asset.path);
            assert_eq!(header(&response, "content-security-policy"), CONTENT_SECURITY_POLICY, "{}", asset.path);
            assert_eq!(response.text().await.expect("body"), asset.body, "{}", asset.path);
        }
        let response = reqwest::get(format!("{base}/ui/ui.js")).await.expect("request");
        assert!(header(&response, "content-type").starts_with("text/javascript"));
    }

    #[tokio::test]
    async fn with_the_ui_off_its_pages_say_how_to_turn_it_on() {
        let base = build_server(super::super::router(
            build_handle(),
            std::sync::Arc::new(crate::events::EventHub::new(1)),
            false,
        ))
        .await;
        for path in ["/ui", "/ui/", "/ui/fridge", "/ui/ui.js"] {
            let response = reqwest::get(format!("{base}{path}")).await.expect("request");
            assert_eq!(response.status(), 404, "{path}");
            assert!(header(&response, "content-type").starts_with("application/json"), "{path}");
            let body: serde_json::Value = response.json().await.expect("JSON");
            assert!(body["error"].as_str().is_some_and(|e| e.contains("ui = true")), "{path}: {body}");
        }
    }

    #[tokio::test]
    async fn an_unknown_page_is_named_with_the_pages_there_are() {
        let base = build_server(super::super::router(
            build_handle(),
            std::sync::Arc::new(crate::events::EventHub::new(1)),
            true,
        ))
        .await;
        let response = reqwest::get(format!("{base}/ui/fridge.html")).await.expect("request");
        assert_eq!(response.status(), 404);
        let body: serde_json::Value = response.json().await.expect("JSON");
        let error = body["error"].as_str().expect("an error");
        assert!(error.contains("/ui/fridge.html") && error.contains("/ui/lock-screen"), "{error}");
    }

    #[tokio::test]
    async fn the_api_s_own_answers_carry_no_page_policy() {
        let base = build_server(super::super::router(
            build_handle(),
            std::sync::Arc::new(crate::events::EventHub::new(1)),
            true,
        ))
        .await;
        let response = reqwest::get(format!("{base}/v1/nothing")).await.expect("request");
        assert_eq!(response.status(), 404);
        assert!(header(&response, "content-security-policy").is_empty());
    }

    #[test]
    fn the_pages_load_nothing_inline_and_nothing_from_elsewhere() {
        for asset in ASSETS.iter().filter(|a| a.content_type == HTML) {
            let page = asset.body;
            assert!(
                !page.contains("<script>") && !page.contains(" onclick=") && !page.contains("style="),
                "{}",
                asset.path
            );
            assert!(!page.contains("http://") && !page.contains("https://"), "{}", asset.path);
            assert!(page.contains("<script src=\"/ui/ui.js\""), "{}", asset.path);
            assert!(page.contains("<link rel=\"stylesheet\" href=\"/ui/ui.css\""), "{}", asset.path);
        }
        for asset in &ASSETS {
            assert!(!asset.body.contains("http://") && !asset.body.contains("https://"), "{}", asset.path);
        }
    }
}
