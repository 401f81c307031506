//! `POST /v1/jobs/{id}/trace`: an admin traces a leaked copy (a file in the allowed
//! sources) of a watermarked job, as `coordinator trace` does; the answer is the same JSON
//! and every trace, made or refused, is a row in the audit trail. One trace runs at a
//! time: it decodes the leak and the job's copy and takes minutes of CPU on long leaks.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::access::Caller;
use crate::app::{bad, internal, rejected, ApiError, AppState, ErrorBody};
use crate::audit;
use crate::trace::{TraceError, TraceReport};

/// One trace at a time per coordinator.
static TRACING: Semaphore = Semaphore::const_new(1);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    /// The leaked video: `s3://bucket/key`, `swift://container/key` or a path, inside
    /// `FARM_ALLOWED_SOURCES`.
    pub leak: String,
}

/// Traces a leaked copy of a watermarked job to its shares.
#[utoipa::path(post, path = "/v1/jobs/{id}/trace", request_body = TraceRequest,
    params(("id" = String, Path, description = "job id")),
    responses(
        (status = 200, description = "the verdict", body = TraceReport),
        (status = 400, description = "a malformed request or location", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "not an admin, or the leak is outside the allowed sources", body = ErrorBody),
        (status = 404, description = "no such job", body = ErrorBody),
        (status = 409, description = "the job is not watermarked, or the farm has no master key", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "the leak is not video this farm can decode, or the body is not a trace request", body = ErrorBody),
        (status = 503, description = "another trace is running, or storage does not answer", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn trace_leak(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Result<Json<TraceRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<TraceReport>, ApiError> {
    let (id, leak) = (path.as_ref().ok().map(|Path(id)| id.clone()), body.as_ref().ok().map(|Json(req)| req.leak.clone()));
    let answer = match (path, body) {
        (Ok(Path(id)), Ok(Json(req))) => run(&app, id, req.leak).await,
        (Err(e), _) => Err(rejected(e)),
        (_, Err(e)) => Err(rejected(e)),
    };
    let outcome = answer.as_ref().map_err(|ApiError(status, reason)| format!("{} {reason}", status.as_u16()));
    audit::record(&app.store, audit_event(&caller, id.as_deref(), leak.as_deref(), outcome)).await;
    answer.map(Json)
}

/// The trail's row for a trace, made (`job.traced`, with its verdict) or refused
/// (`job.trace_refused`, with the reason): whoever asks what of a watermarked job is on
/// record, by the API or by `coordinator trace`.
pub fn audit_event(caller: &Caller, job: Option<&str>, leak: Option<&str>, outcome: Result<&TraceReport, String>) -> audit::Event {
    let (job, leak) = (job.map(|id| crate::access::truncate(id, 200)), crate::access::truncate(leak.unwrap_or("?"), 300));
    match outcome {
        Ok(report) => {
            let verdict = serde_json::to_value(report.verdict).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            caller.event("job.traced", job, format!("leak {leak}: {verdict} {:?} confidence {:.9}", report.shares, report.confidence))
        }
        Err(reason) => caller.event("job.trace_refused", job, format!("leak {leak}: {}", crate::access::truncate(&reason, 500))),
    }
}

/// The trace of `leak` in job `id`, or why there is none.
async fn run(app: &Arc<AppState>, id: String, leak: String) -> Result<TraceReport, ApiError> {
    let location = farm_storage::Location::parse(&leak).map_err(|e| bad(format!("leak: {e}")))?;
    app.allowed.sources.check("leak", &location).map_err(|e| ApiError(StatusCode::FORBIDDEN, e.to_string()))?;
    let master = app.master_key.clone().ok_or_else(|| ApiError(StatusCode::CONFLICT, "this farm has no FARM_MASTER_KEY_FILE: there are no watermarked jobs to trace".into()))?;
    let _running = TRACING.try_acquire().map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "another trace is running; retry later".into()))?;
    let leak = farm_storage::open_source(&leak, &app.config.s3(), &tokio::runtime::Handle::current()).map_err(|e| bad(format!("leak: {e}")))?;
    let (state, rt) = (app.clone(), tokio::runtime::Handle::current());
    let answer = tokio::task::spawn_blocking(move || crate::trace::trace(&state.store, &master, &state.sinks, &rt, &leak, &id)).await.map_err(internal)?;
    answer.map_err(|e| match e {
        TraceError::NoJob(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
        TraceError::NotWatermarked(_) => ApiError(StatusCode::CONFLICT, e.to_string()),
        TraceError::Leak(farm_media::error::TranscodeError::SourceIo { .. }) => ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("{e}; retry later")),
        TraceError::Leak(_) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        TraceError::Other(e) => ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("the trace could not read the job's copy: {e:#}")),
    })
}
