//! What every request handler shares: the coordinator's state, and the errors it answers
//! with (JSON `{"error": ...}` with the status that says what kind of problem it was).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::broker::Broker;
use crate::config::{Allowed, Config};
use crate::db::Store;
use crate::metrics::Metrics;
use crate::keys::MasterKey;
use crate::principals::Principals;
use crate::probe::Prober;
use crate::tracker::Tracker;

pub struct AppState {
    pub config: Config,
    pub allowed: Allowed,
    pub principals: Principals,
    /// Wraps the content keys of new jobs; `None`: jobs get no keys.
    pub master_key: Option<MasterKey>,
    pub prober: Prober,
    /// Opens job outputs, with one storage client per bucket for the process.
    pub sinks: Arc<farm_storage::Sinks>,
    pub store: Store,
    pub broker: Arc<Broker>,
    pub metrics: Arc<Metrics>,
    pub tracker: Tracker,
}

#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

/// Every error answer: what was wrong, with which input.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// An extractor's refusal (a body over 64 KiB, a malformed query) as a JSON error.
pub(crate) fn rejected(r: impl IntoResponse + std::fmt::Display) -> ApiError {
    let message = r.to_string();
    ApiError(r.into_response().status(), message)
}

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "request failed");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

