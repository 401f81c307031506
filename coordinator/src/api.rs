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
use axum::{Json, Router};
use farm_contract::ladder::Ladder;
use farm_contract::task::{Priority, TaskPart, CANCEL_MARKER};
use farm_storage::{open_sink, open_source, Location};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::broker::Broker;
use crate::config::{allowed, Config};
use crate::db::{now_ms, Job, State, Store, Task};
use crate::live::JobPlan;
use farm_contract::timeline::Grid;
use crate::metrics::Metrics;
use crate::split;
use crate::tracker::Tracker;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub broker: Arc<Broker>,
    pub metrics: Arc<Metrics>,
    pub tracker: Tracker,
}

type Shared = Arc<AppState>;

pub fn router(state: Shared) -> Router {
    let guarded = Router::new()
        .route("/v1/jobs", get(list_jobs).post(create_job))
        .route("/v1/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authorise));
    Router::new()
        .merge(guarded)
        .route("/healthz", get(|| async { "ok" }))
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
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics.request(&route, &method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// `Authorization: Bearer TOKEN` with the configured token (none configured: open).
async fn authorise(
    AxState(state): AxState<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    let Some(expected) = state.config.api_token.as_deref() else { return Ok(next.run(request).await) };
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same(token.trim().as_bytes(), expected.trim().as_bytes()) => Ok(next.run(request).await),
        Some(_) => Err(ApiError(StatusCode::UNAUTHORIZED, "the bearer token is not valid".into())),
        None => Err(ApiError(StatusCode::UNAUTHORIZED, "missing `Authorization: Bearer <token>` header".into())),
    }
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "request failed");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub source: String,
    pub output: String,
    #[serde(default)]
    pub ladder: Option<Ladder>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct JobView {
    #[serde(flatten)]
    pub job: Job,
    pub progress: f64,
    pub eta_seconds: Option<f64>,
    pub tasks: Vec<TaskView>,
}

#[derive(Debug, Serialize)]
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
    Ok(JobView { job, progress, eta_seconds, tasks })
}

async fn create_job(AxState(app): AxState<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let result = create(&app, &body).await;
    if matches!(&result, Err(ApiError(code, _)) if code.is_client_error()) {
        app.metrics.jobs_rejected.inc();
    }
    result
}

async fn create(app: &Shared, body: &[u8]) -> Result<Response, ApiError> {
    let req: JobRequest = serde_json::from_slice(body).map_err(|e| bad(format!("invalid job request: {e}")))?;
    if let Some(key) = &req.idempotency_key {
        if key.is_empty() || key.len() > 200 {
            return Err(bad("idempotency_key must be 1-200 characters"));
        }
        if let Some(job) = app.store.job_by_key(key).await.map_err(internal)? {
            return Ok((StatusCode::OK, Json(view(&app.store, job).await?)).into_response());
        }
    }
    Location::parse(&req.source).map_err(|e| bad(format!("source: {e}")))?;
    Location::parse(&req.output).map_err(|e| bad(format!("output: {e}")))?;
    if !allowed(&req.source, &app.config.allowed_sources) {
        return Err(ApiError(StatusCode::FORBIDDEN, format!("source {} is outside the allowed locations", req.source)));
    }
    if !allowed(&req.output, &app.config.allowed_outputs) {
        return Err(ApiError(StatusCode::FORBIDDEN, format!("output {} is outside the allowed locations", req.output)));
    }
    let ladder = req.ladder.clone().unwrap_or_default();
    ladder.validate().map_err(|e| bad(format!("ladder: {e}")))?;
    let priority = req.priority.unwrap_or(Priority::Normal);

    // Probe the source: what it is decides how it is split, and a bad source fails here.
    let s3 = app.config.s3();
    let source = req.source.clone();
    let rt = tokio::runtime::Handle::current();
    let probed = tokio::task::spawn_blocking(move || {
        let location = open_source(&source, &s3, &rt).map_err(|e| e.to_string())?;
        farm_media::source::open(&location).map(|s| s.info).map_err(|e| e.to_string())
    })
    .await
    .map_err(internal)?;
    let info = probed.map_err(|reason| ApiError(StatusCode::UNPROCESSABLE_ENTITY, reason))?;
    let duration = info
        .frames_expected()
        .map(|f| info.rate.frames_to_seconds(f))
        .or(info.duration_seconds)
        .ok_or_else(|| ApiError(StatusCode::UNPROCESSABLE_ENTITY, "the source states no duration".into()))?;
    let has_audio = !farm_media::transcode::audio::select_tracks(&info.audio).is_empty();
    let parts = split::plan(duration, has_audio, &ladder, app.config.chunk_seconds);
    let (display_w, display_h) = info.display_size();
    let plan = JobPlan {
        grid: Grid::new(info.rate, ladder.cuts(), ladder.gop_ms()),
        total_frames: info.frames_expected().unwrap_or((duration * info.rate.as_f64()).round() as u64),
        renditions: ladder.fit(display_w, display_h),
        audio: has_audio.then(|| (ladder.audio.sample_rate, ladder.audio.channels, u64::from(ladder.audio.bitrate_kbps) * 1000)),
    };

    let now = now_ms();
    let id = new_id(now);
    let job = Job {
        id: id.clone(),
        state: State::Queued,
        source: req.source.clone(),
        output: req.output.trim_end_matches('/').to_string(),
        priority,
        ladder: serde_json::to_string(&ladder).expect("ladders serialise"),
        idempotency_key: req.idempotency_key.clone(),
        error: None,
        master_playlist: None,
        plan: Some(serde_json::to_string(&plan).expect("plans serialise")),
        created_ms: now,
        updated_ms: now,
    };
    let frames_total = info.frames_expected().map(|f| f as i64);
    let tasks: Vec<Task> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| Task {
            id: format!("{id}-{i:04}"),
            job_id: id.clone(),
            part: *part,
            state: State::Queued,
            frames_done: 0,
            frames_total: match part {
                TaskPart::Video { start, end, .. } => Some(((end.unwrap_or(duration) - start) * info.rate.as_f64()) as i64),
                _ => frames_total,
            },
            error: None,
        })
        .collect();
    if let Err(e) = app.store.insert(&job, &tasks).await {
        // Two requests with the same key at once: the database keeps one.
        if let Some(key) = &req.idempotency_key {
            if let Some(existing) = app.store.job_by_key(key).await.map_err(internal)? {
                return Ok((StatusCode::OK, Json(view(&app.store, existing).await?)).into_response());
            }
        }
        return Err(internal(e));
    }
    for task in &tasks {
        let payload = serde_json::to_vec(&split::message(&job, task, &ladder)).expect("tasks serialise");
        if let Err(e) = app.broker.publish_task(priority, &payload).await {
            let reason = format!("the broker did not take the job's tasks: {e:#}");
            app.store.set_job_state(&id, State::Failed, Some(&reason), None).await.map_err(internal)?;
            app.store.release_key(&id).await.map_err(internal)?;
            return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}; nothing was accepted, retry later")));
        }
    }
    app.metrics.jobs_accepted.inc();
    let event = json!({"job_id": id, "source": job.source, "output": job.output, "tasks": tasks.len()});
    app.broker.publish_event("job.accepted", &event).await;
    tracing::info!(job_id = %id, tasks = tasks.len(), source = %job.source, "job accepted");
    Ok((StatusCode::CREATED, Json(view(&app.store, job).await?)).into_response())
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

async fn get_job(AxState(app): AxState<Shared>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let job = app.store.job(&id).await.map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))?;
    Ok(Json(view(&app.store, job).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list_jobs(AxState(app): AxState<Shared>, Query(q): Query<ListQuery>) -> Result<Json<serde_json::Value>, ApiError> {
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
    Ok(Json(json!({ "jobs": jobs, "next_cursor": next })))
}

async fn cancel_job(AxState(app): AxState<Shared>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let job = app.store.job(&id).await.map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))?;
    if job.state.is_final() {
        return Err(ApiError(StatusCode::CONFLICT, format!("job {id} is already {}", job.state.as_str())));
    }
    // Under the playlist lock: once it is released no playlist of this job is written again.
    let guard = app.tracker.lock.lock().await;
    if app.store.set_job_state(&id, State::Cancelled, Some("cancelled by request"), None).await.map_err(internal)? {
        app.metrics.finished("cancelled", job.created_ms);
        app.broker.publish_event("job.cancelled", &json!({"job_id": id})).await;
    }
    drop(guard);
    // Workers drop the job's tasks when they see the marker (before or while running them).
    let (output, s3, rt) = (job.output.clone(), app.config.s3(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        open_sink(&output, &s3, &rt)?.put(CANCEL_MARKER, b"cancelled by request\n")?;
        Ok(())
    })
    .await
    .map_err(internal)?
    .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("job cancelled, but workers cannot be told yet: {e:#}")))?;
    let job = app.store.job(&id).await.map_err(internal)?.expect("still there");
    Ok(Json(view(&app.store, job).await?))
}

async fn ready(AxState(app): AxState<Shared>) -> Response {
    let db = app.store.ping().await.is_ok();
    let broker = app.broker.connected().await;
    let code = if db && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({ "database": db, "broker": broker }))).into_response()
}

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

    #[test]
    fn job_requests_are_strict() {
        assert!(serde_json::from_str::<JobRequest>(r#"{"source":"a","output":"b"}"#).is_ok());
        assert!(serde_json::from_str::<JobRequest>(r#"{"source":"a","output":"b","colour":1}"#).is_err());
        assert!(serde_json::from_str::<JobRequest>(r#"{"source":"a","output":"b","priority":"urgent"}"#).is_err());
        assert!(serde_json::from_str::<JobRequest>(r#"{"source":"a"}"#).is_err());
    }
}
