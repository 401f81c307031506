//! The HTTP API: jobs in, job state out.
//!
//! A job is accepted (201) only after it is stored and every task of it is confirmed by
//! the broker. Bad requests get a 4xx with a message and enqueue nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use farm_contract::task::cancel_marker;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accept;
use crate::access::{self, Caller};
use crate::audit;
pub use crate::app::{ApiError, AppState, ErrorBody};
use crate::app::{bad, internal, rejected};
use crate::db::{now_ms, Job, State, Store, Task};
use crate::dispatch::{self, Dispatched};

type Shared = Arc<AppState>;

/// The routes; `document` is the OpenAPI document served at `/openapi.json`.
pub fn router(state: Shared, document: utoipa::openapi::OpenApi) -> Router {
    let guarded = Router::new()
        .route("/v1/jobs", get(list_jobs).post(create_job))
        .route("/v1/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/v1/audit", get(read_audit))
        .route("/v1/jobs/{id}/keys/{period}", get(crate::delivery::job_key))
        .route("/v1/jobs/{id}/media/{*file}", get(crate::delivery::job_media))
        .route("/v1/jobs/{id}/shares", get(crate::shares::list).post(crate::shares::create))
        .route("/v1/shares/{id}", axum::routing::delete(crate::shares::revoke))
        .route("/v1/jobs/{id}/trace", axum::routing::post(crate::trace_api::trace_leak))
        .route("/openapi.json", get(move || async move { Json(document) }))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), access::authorise));
    Router::new()
        .merge(guarded)
        .merge(crate::review_page::routes())
        // A share's secret is its own credential: no bearer token on these.
        .route("/s/{token}/media/{*file}", get(crate::delivery::share_media))
        .route("/s/{token}/keys/{period}", get(crate::delivery::share_key))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(state.clone(), measure))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

/// Counts requests and their latency by route template (bounded: never a job id).
async fn measure(
    AxState(state): AxState<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    // Bounded label: a client can send any method name.
    let method = bounded_method(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics.request(&route, method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// The method as a metric label: a client can send any method name, the label stays bounded.
fn bounded_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::HEAD, Method::OPTIONS, Method::PATCH]
        .into_iter()
        .zip(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
        .find_map(|(m, name)| (m == method).then_some(name))
        .unwrap_or("other")
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    pub job: Job,
    /// 0 to 1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub progress: f64,
    pub eta_seconds: Option<f64>,
    /// The ladder the job runs, with a per-title job's decision (each rung's CRF and rates).
    pub ladder: Option<farm_contract::ladder::Ladder>,
    pub tasks: Vec<TaskView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    #[serde(flatten)]
    pub task: Task,
    pub progress: f64,
}

fn task_progress(t: &Task) -> f64 {
    match (t.state, t.frames_total) {
        (State::Succeeded, _) => 1.0,
        (_, Some(total)) if total > 0 => (t.frames_done as f64 / total as f64).min(1.0),
        _ => 0.0,
    }
}

async fn view(store: &Store, job: Job) -> Result<JobView, ApiError> {
    let tasks = store.tasks(&job.id).await.map_err(internal)?;
    let progress = if job.state == State::Succeeded {
        1.0
    } else if tasks.is_empty() {
        0.0
    } else {
        tasks.iter().map(task_progress).sum::<f64>() / tasks.len() as f64
    };
    let elapsed = (now_ms() - job.created_ms) as f64 / 1000.0;
    let eta_seconds = (!job.state.is_final() && progress > 0.01).then(|| elapsed * (1.0 - progress) / progress);
    let tasks = tasks.into_iter().map(|t| TaskView { progress: task_progress(&t), task: t }).collect();
    let ladder = serde_json::from_str(&job.ladder).ok();
    Ok(JobView { job, progress, eta_seconds, ladder, tasks })
}

/// Submits a job: stored and its tasks confirmed by the broker before the answer.
#[utoipa::path(post, path = "/v1/jobs", request_body(content = crate::accept::JobRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "accepted", body = JobView),
        (status = 200, description = "the job of a repeated idempotency key", body = JobView),
        (status = 400, description = "malformed request, ladder or location", body = ErrorBody),
        (status = 401, description = "no or a wrong bearer token", body = ErrorBody),
        (status = 403, description = "source or output outside the allowed locations", body = ErrorBody),
        (status = 409, description = "a live job writes the same output", body = ErrorBody),
        (status = 413, description = "body over 64 KiB", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 422, description = "source not usable media, or over a limit", body = ErrorBody),
        (status = 503, description = "storage or broker unavailable: nothing accepted", body = ErrorBody),
    ), security(("bearer" = [])))]
async fn create_job(
    AxState(app): AxState<Shared>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(rejected)?;
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let result = create(&app, &caller, content_type, &body).await;
    if matches!(&result, Err(ApiError(code, _)) if code.is_client_error()) {
        app.metrics.jobs_rejected.inc();
    }
    result
}

async fn create(app: &Shared, caller: &Caller, content_type: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    let req = accept::parse(content_type, body)?;
    let (status, view) = submit(app, caller, req).await?;
    Ok((status, Json(view)).into_response())
}

/// A job request of `caller`'s, over HTTP or AMQP ([`crate::submit`]): 201 and the new
/// job, 200 and the job a repeated idempotency key made, or why not.
pub async fn submit(app: &AppState, caller: &Caller, req: accept::JobRequest) -> Result<(StatusCode, JobView), ApiError> {
    if let Some(key) = &req.idempotency_key {
        if let Some(job) = app.store.job_by_key(key).await.map_err(internal)? {
            return Ok((StatusCode::OK, view(&app.store, job).await?));
        }
    }
    let locations = accept::locations(&app.allowed, &req)?;
    let ladder = accept::ladder(&app.config.limits, &req)?;
    if let Some(other) = app.store.live_job_on(&accept::stored_output(&locations.1)).await.map_err(internal)? {
        return Err(dispatch::busy_output(&other));
    }
    let probed = accept::probe(app, &locations.0, &ladder).await?;
    let review = accept::review(app, &req, &probed.0).await?;
    let now = now_ms();
    let new = accept::plan(app, &req, &locations, ladder, &probed, &review, new_id(now), now)?;
    Ok(match dispatch::dispatch(app, new).await? {
        Dispatched::New(job) => {
            let detail = format!("source {} output {}", job.source, job.output);
            audit::record(&app.store, caller.event("job.submitted", Some(&job.id), detail)).await;
            (StatusCode::CREATED, view(&app.store, job).await?)
        }
        Dispatched::Existing(job) => (StatusCode::OK, view(&app.store, job).await?),
    })
}

/// Time-ordered, unique ids: milliseconds, then a per-process random value and a counter,
/// so that coordinator replicas (often all pid 1 in containers) never collide.
fn new_id(now: i64) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static SEQ: AtomicU32 = AtomicU32::new(0);
    static PROCESS: OnceLock<u32> = OnceLock::new();
    let process = *PROCESS.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() as u32
    });
    format!("j{now:012x}{process:08x}{:06x}", SEQ.fetch_add(1, Ordering::Relaxed) & 0xff_ffff)
}

/// A job's state, progress, tasks and master playlist.
#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_job(AxState(app): AxState<Shared>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let job = app.store.job(&id).await.map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))?;
    Ok(Json(view(&app.store, job).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs in this state: queued, running, succeeded, failed, cancelled.
    state: Option<String>,
    /// Jobs per page, 1 to 500 (50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// `next_cursor` of the page before.
    cursor: Option<String>,
}

/// A page of jobs, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<String>,
}

/// Jobs, a page at a time.
#[utoipa::path(get, path = "/v1/jobs", params(ListQuery),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_jobs(AxState(app): AxState<Shared>, q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>) -> Result<Json<JobList>, ApiError> {
    let Query(q) = q.map_err(rejected)?;
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(State::parse(s).ok_or_else(|| bad(format!("unknown state {s:?}")))?),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad("limit must be between 1 and 500"));
    }
    let jobs = app.store.jobs(state, q.cursor.as_deref(), limit).await.map_err(internal)?;
    let next = (jobs.len() as i64 == limit).then(|| jobs.last().map(|j| j.id.clone())).flatten();
    Ok(Json(JobList { jobs, next_cursor: next }))
}

/// Cancels a job: its tasks are dropped, no playlist is written after.
#[utoipa::path(delete, path = "/v1/jobs/{id}", params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the job has already ended", body = ErrorBody),
        (status = 503, description = "cancelled, but workers cannot be told yet", body = ErrorBody)),
    security(("bearer" = [])))]
async fn cancel_job(AxState(app): AxState<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let job = app.store.job(&id).await.map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))?;
    if job.state.is_final() {
        return Err(ApiError(StatusCode::CONFLICT, format!("job {id} is already {}", job.state.as_str())));
    }
    // Under the playlist lock: once it is released no playlist of this job is written again.
    let guard = app.tracker.lock.lock().await;
    if app.store.set_job_state(&id, State::Cancelled, Some("cancelled by request"), None).await.map_err(internal)? {
        audit::record(&app.store, caller.event("job.cancelled", Some(&id), "")).await;
        app.metrics.finished("cancelled", job.created_ms);
        app.broker.publish_event("job.cancelled", &json!({"job_id": id})).await;
    }
    drop(guard);
    // Workers drop the job's tasks when they see the marker (before or while running them).
    let (output, sinks, rt) = (job.output.clone(), app.sinks.clone(), tokio::runtime::Handle::current());
    let marker = cancel_marker(&id);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        sinks.open(&output, &rt)?.put(&marker, b"cancelled by request\n")?;
        Ok(())
    })
    .await
    .map_err(internal)?
    .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("job cancelled, but workers cannot be told yet: {e:#}")))?;
    let job = app.store.job(&id).await.map_err(internal)?.expect("still there");
    Ok(Json(view(&app.store, job).await?))
}

/// The audit trail, oldest first, 1000 rows a page (`after` = the last `seq` seen).
#[utoipa::path(get, path = "/v1/audit", params(audit::Filter),
    responses((status = 200, body = Vec<audit::Record>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody)),
    security(("bearer" = [])))]
async fn read_audit(AxState(app): AxState<Shared>, q: Result<Query<audit::Filter>, axum::extract::rejection::QueryRejection>) -> Result<Json<Vec<audit::Record>>, ApiError> {
    let Query(filter) = q.map_err(rejected)?;
    for value in [&filter.job, &filter.share, &filter.principal].into_iter().flatten() {
        if value.len() > 200 || value.chars().any(char::is_control) {
            return Err(bad("job, share and principal are at most 200 characters, without control characters"));
        }
    }
    Ok(Json(audit::query(&app.store, &filter).await.map_err(internal)?))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, content_type = "text/plain", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database and the broker answer.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn ready(AxState(app): AxState<Shared>) -> Response {
    let db = app.store.ping().await.is_ok();
    let broker = app.broker.connected().await;
    let code = if db && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(Readiness { database: db, broker })).into_response()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub database: bool,
    pub broker: bool,
}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(AxState(app): AxState<Shared>) -> Response {
    let queues = app.broker.queue_stats().await;
    let unacked = match &app.config.rabbitmq_management_url {
        Some(url) => app.broker.unacked(url).await,
        None => Vec::new(),
    };
    app.metrics.refresh(&app.store, &queues, &unacked).await;
    ([("content-type", "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_sort_by_time_and_do_not_repeat() {
        let a = new_id(1_000);
        let b = new_id(1_000);
        let c = new_id(2_000);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a.len(), b.len());
        assert_eq!(a.len(), 1 + 12 + 8 + 6);
    }

    /// Issue 14, defect 7: the method label took any method a client sent.
    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(bounded_method(&axum::http::Method::POST), "POST");
        let odd = axum::http::Method::from_bytes(b"X-ANYTHING-12345").unwrap();
        assert_eq!(bounded_method(&odd), "other");
    }

    #[test]
    fn job_requests_are_strict() {
        use crate::accept::JobRequest;
        assert!(serde_json::from_str::<JobRequest>(r#"{"source":"a","output":"b"}"#).is_ok());
        assert!(serde_json::from_str::<JobRequest>(r#"{"source":"a","output":"b","colour":1}"#).is_err());
        assert!(serde_json::from_str::<JobRequest>(r#"{"source":"a","output":"b","priority":"urgent"}"#).is_err());
        assert!(serde_json::from_str::<JobRequest>(r#"{"source":"a"}"#).is_err());
    }
}
