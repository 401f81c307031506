//! Delivering an encrypted review copy: the content key of one key period, to a principal
//! whose role may fetch keys (share links, checked the same way, come next). Every key
//! handed out is a row in the audit trail, so "who watched which minutes of job X" can be
//! answered from it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use crate::access::Caller;
use crate::app::{internal, rejected, ApiError, AppState, ErrorBody};
use crate::audit;

/// The 16 bytes of a job's content key for one key period (RFC 8216 key URI).
#[utoipa::path(get, path = "/v1/jobs/{id}/keys/{period}",
    params(("id" = String, Path, description = "job id"), ("period" = u32, Path, description = "key period")),
    responses(
        (status = 200, description = "the key: 16 bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "the period is not a number from 0", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "the role may not fetch keys", body = ErrorBody),
        (status = 404, description = "no such job or period, or the job is not encrypted", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job_key(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, u32)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path((id, period)) = path.map_err(rejected)?;
    let missing = || ApiError(StatusCode::NOT_FOUND, format!("job {id} has no content key for period {period}"));
    let Some(master) = app.master_key.as_ref() else { return Err(missing()) };
    let key = crate::keys::job_key(&app.store, master, &id, period).await.map_err(internal)?.ok_or_else(missing)?;
    audit::record(&app.store, caller.event("key.fetched", Some(&id), format!("period {period}"))).await;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, "no-store")], key.0.to_vec()).into_response())
}
