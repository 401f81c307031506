//! Nothing stays `running` forever. Every few seconds:
//!
//! - jobs whose every task succeeded are completed (their last event came while storage
//!   was down, while this coordinator was away, or to a replica that does not hold the
//!   playlists lease), by the replica that holds it;
//! - once every `stall`, there too, jobs with no report from any of their tasks for `stall`
//!   are completed when the parts in storage cover the source: their workers' reports were
//!   lost on the way or never read (an events queue purged or unbound by hand, a broker
//!   that kept them from this coordinator), and a job must not wait for them forever;
//! - on the replica that holds the reclaim lease, a running task no worker has reported on
//!   for `stall` (workers report every 2 s while they work) is handed out again: its worker
//!   hung, froze or lost its link in a way the broker has not noticed yet. The new attempt
//!   claims the task's output as it starts, so the earlier one, if it runs again, has its
//!   writes refused (the worker's `fence`); the two write the same keys and bytes meanwhile.
//!   After [`MAX_ATTEMPTS`] stalls the job fails, saying so.

use std::time::Duration;

use farm_contract::task::{TaskEvent, TaskEventKind, MAX_ATTEMPTS};
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::db::now_ms;
use crate::split;

const EVERY: Duration = Duration::from_secs(1);

pub async fn run(app: &AppState, lease: &crate::leases::Lease, stall: Duration, shutdown: CancellationToken) {
    // After a restart, workers' reports queued meanwhile are read first: no task counts as
    // stalled before this coordinator has listened for `stall` itself.
    let started = tokio::time::Instant::now();
    let mut parts_checked = started;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        // Fenced: a replica that lost the lease hands nothing out.
        let reclaim = started.elapsed() >= stall && lease.held() && lease.check().await;
        if let Err(e) = pass(app, stall, reclaim).await {
            tracing::warn!(error = format!("{e:#}"), "reconciliation pass failed");
        }
        if parts_checked.elapsed() >= stall {
            parts_checked = tokio::time::Instant::now();
            if let Err(e) = quiet_jobs(app, stall).await {
                tracing::warn!(error = format!("{e:#}"), "checking quiet jobs' parts failed");
            }
        }
    }
}

/// Jobs with no report from their tasks for `stall`, finished if their parts in storage
/// cover the source (a listing of each job's parts: once every `stall`, not every pass).
async fn quiet_jobs(app: &AppState, stall: Duration) -> anyhow::Result<()> {
    if !app.tracker.lease.held() {
        return Ok(());
    }
    for job_id in app.store.quiet_jobs(now_ms() - stall.as_millis() as i64).await? {
        app.tracker.finish_from_parts(&job_id).await?;
    }
    Ok(())
}

async fn pass(app: &AppState, stall: Duration, reclaim: bool) -> anyhow::Result<()> {
    if app.tracker.lease.held() {
        for job_id in app.store.completable_jobs().await? {
            app.tracker.finish_if_complete(&job_id).await?;
        }
    }
    if !reclaim {
        return Ok(());
    }
    let cutoff = now_ms() - stall.as_millis() as i64;
    for (task, reclaims) in app.store.stalled_tasks(cutoff).await? {
        let Some(job) = app.store.job(&task.job_id).await? else { continue };
        if job.state.is_final() {
            continue;
        }
        if reclaims + 1 >= i64::from(MAX_ATTEMPTS) {
            let reason = format!(
                "task {} made no progress for {} s on {} attempts (its workers hung or were lost)",
                task.id,
                stall.as_secs(),
                reclaims + 1
            );
            tracing::warn!(job_id = %job.id, %reason, "failing the job");
            let event = TaskEvent {
                job_id: job.id.clone(),
                task_id: task.id.clone(),
                kind: TaskEventKind::Failed,
                frames_done: task.frames_done.max(0) as u64,
                frames_total: None,
                error: Some(reason),
            };
            app.tracker.apply(&event).await?;
            continue;
        }
        let keys = crate::keys::job_keys(&app.store, app.master_key.as_ref(), &job.id).await?;
        let payload = split::stored_message(&job, &task, keys.as_ref())?;
        app.broker.publish_task(job.priority, &payload).await?;
        app.store.mark_reclaimed(&task.id).await?;
        tracing::warn!(job_id = %job.id, task_id = %task.id, stalled_for = ?stall, "stalled task handed out again");
    }
    Ok(())
}
