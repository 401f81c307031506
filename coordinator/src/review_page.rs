//! The review page, served by the coordinator: a job list at `/`, a job's player at
//! `/jobs/{id}`, a share's player at its URL (`/s/{secret}/`). Static files compiled into
//! the binary (`coordinator/review/`: no CDN, no build step; hls.js vendored with its
//! licence). The pages call the API like any client: a principal's token (asked for and
//! kept in the tab) for the list and a job's player, the share's secret in the URL for a
//! share's player.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const LIST: &str = include_str!("../review/index.html");
const PLAYER: &str = include_str!("../review/player.html");

/// `/review/{file}`: the page's scripts, style and the vendored hls.js.
const ASSETS: &[(&str, &str, &str)] = &[
    ("common.js", "text/javascript", include_str!("../review/common.js")),
    ("list.js", "text/javascript", include_str!("../review/list.js")),
    ("player.js", "text/javascript", include_str!("../review/player.js")),
    ("review.css", "text/css", include_str!("../review/review.css")),
    ("hls.min.js", "text/javascript", include_str!("../review/vendor/hls.min.js")),
    ("hls.js-LICENSE", "text/plain", include_str!("../review/vendor/hls.js-LICENSE")),
];

/// Scripts from here only; media and hls.js's worker from blob URLs; segments from signed
/// object-storage URLs (any origin: the bucket's endpoint is not known here). No referrer:
/// a share page's URL holds its secret and must not travel to the object storage.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self' http: https:; form-action 'self'; \
base-uri 'none'; frame-ancestors 'none'";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { page(LIST) }))
        .route("/jobs/{id}", get(|| async { page(PLAYER) }))
        .route("/s/{token}/", get(|| async { page(PLAYER) }))
        .route("/s/{token}", get(|Path(token): Path<String>| async move { Redirect::permanent(&format!("/s/{token}/")) }))
        .route("/review/{file}", get(asset))
}

fn page(html: &'static str) -> Response {
    secured(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => secured(([(header::CONTENT_TYPE, *kind)], *body).into_response()),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
