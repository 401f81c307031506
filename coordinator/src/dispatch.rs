//! Dispatching a job: stored with its tasks in one transaction, then every task published
//! with the broker's confirm, signed.
//!
//! Takes a [`NewJob`] from [`crate::accept`]; hands on the stored job, or the job that
//! already answers its idempotency key, or 409 when another live job took its output
//! meanwhile (the database's unique index decides races), or 503 when the broker did not
//! take every task (the job is then failed and its key released: nothing half-accepted).

use axum::http::StatusCode;
use farm_contract::manifest::is_output_key;
use farm_contract::task::Priority;
use serde_json::json;

use crate::accept::NewJob;
use crate::app::{internal, ApiError, AppState};
use crate::db::{Job, State};
use crate::split;

pub enum Dispatched {
    New(Job),
    /// The same idempotency key was used before: that job.
    Existing(Job),
}

pub async fn dispatch(app: &AppState, new: NewJob) -> Result<Dispatched, ApiError> {
    let NewJob { job, tasks, ladder, keys } = new;
    if let Err(e) = app.store.insert(&job, &tasks, &keys).await {
        return Err(match existing(app, &job).await? {
            Some(d) => return Ok(d),
            None => match app.store.live_job_on(&job.output).await.map_err(internal)? {
                Some(other) => busy_output(&other),
                None => internal(e),
            },
        });
    }
    if let Err(e) = clear_output(app, &job).await {
        let reason = format!("cannot clear the earlier output at {}: {e:#}", job.output);
        app.store.set_job_state(&job.id, State::Failed, Some(&reason), None).await.map_err(internal)?;
        app.store.release_key(&job.id).await.map_err(internal)?;
        return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}; nothing was accepted, retry later")));
    }
    for task in &tasks {
        let payload = serde_json::to_vec(&split::message(&job, task, &ladder, keys.plain.as_ref())).map_err(internal)?;
        if let Err(e) = app.broker.publish_task(job.priority, &payload).await {
            let reason = format!("the broker did not take the job's tasks: {e:#}");
            app.store.set_job_state(&job.id, State::Failed, Some(&reason), None).await.map_err(internal)?;
            app.store.release_key(&job.id).await.map_err(internal)?;
            return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}; nothing was accepted, retry later")));
        }
    }
    app.metrics.jobs_accepted.inc();
    let event = json!({"job_id": job.id, "source": job.source, "output": job.output, "tasks": tasks.len()});
    app.broker.publish_event("job.accepted", &event).await;
    tracing::info!(job_id = %job.id, tasks = tasks.len(), source = %job.source, rush = job.priority == Priority::High, "job accepted");
    Ok(Dispatched::New(job))
}

/// Removes what an ended job left at this output (segments, playlists, part manifests), so
/// that the new job's live playlists list only its own segments. Cancel markers stay: the
/// tasks of a cancelled job still look for theirs. Other objects under the prefix are
/// not the farm's and stay too.
async fn clear_output(app: &AppState, job: &Job) -> anyhow::Result<()> {
    let (output, sinks, rt) = (job.output.clone(), app.sinks.clone(), tokio::runtime::Handle::current());
    let removed = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let sink = sinks.open(&output, &rt)?;
        let keys = sink.list("")?;
        let renditions = rendition_folders(sink.as_ref(), &keys);
        let stale: Vec<String> = keys.into_iter().filter(|k| is_output_key(k, &renditions)).collect();
        for key in &stale {
            sink.delete(key)?;
        }
        Ok(stale.len())
    })
    .await??;
    if removed > 0 {
        tracing::info!(job_id = %job.id, output = %job.output, removed, "output used before: the earlier job's objects removed");
    }
    Ok(())
}

/// The rendition folders the prefix's part manifests name (a video part and an audio part
/// are enough: every part of a job has the same renditions).
fn rendition_folders(sink: &dyn farm_storage::Sink, keys: &[String]) -> Vec<String> {
    let first = |kind: &str| keys.iter().find(|k| k.starts_with(&format!("parts/{kind}-")) && k.ends_with(".json"));
    [first("video"), first("audio")]
        .into_iter()
        .flatten()
        .filter_map(|k| sink.get(k).ok())
        .filter_map(|data| serde_json::from_slice::<farm_contract::manifest::PartManifest>(&data).ok())
        .flat_map(|part| part.renditions.into_iter().map(|r| r.name))
        .collect()
}

/// The job stored under the same idempotency key (two requests with it at once: the
/// database kept one).
async fn existing(app: &AppState, job: &Job) -> Result<Option<Dispatched>, ApiError> {
    let Some(key) = &job.idempotency_key else { return Ok(None) };
    Ok(app.store.job_by_key(key).await.map_err(internal)?.map(Dispatched::Existing))
}

pub fn busy_output(other: &Job) -> ApiError {
    ApiError(
        StatusCode::CONFLICT,
        format!("job {} is still {} and writes to {}: cancel it or wait until it ends", other.id, other.state.as_str(), other.output),
    )
}
