//! Applies task events to job state, and completes a job when its last task is done.

use std::sync::Arc;

use farm_contract::task::{TaskEvent, TaskEventKind};
use farm_storage::Sinks;
use tokio::runtime::Handle;

use crate::broker::Broker;
use crate::db::{State, Store};
use crate::metrics::Metrics;
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct Tracker {
    pub store: Store,
    pub sinks: Arc<Sinks>,
    pub metrics: Arc<Metrics>,
    pub broker: Arc<Broker>,
    /// Shared with the live publisher: playlists are written by one at a time.
    pub lock: Arc<Mutex<()>>,
    /// Jobs with a new segment, for the live publisher.
    pub segments: tokio::sync::mpsc::UnboundedSender<String>,
    /// Jobs are finished (VOD playlists written) only where this lease is held; the other
    /// replicas record their tasks and leave the job to the holder's next pass.
    pub lease: crate::leases::Lease,
}

impl Tracker {
    pub async fn apply(&self, e: &TaskEvent) -> anyhow::Result<()> {
        if e.kind == TaskEventKind::Segment {
            let _ = self.segments.send(e.job_id.clone());
            return Ok(());
        }
        let Some(job) = self.store.job(&e.job_id).await? else {
            tracing::debug!(job_id = %e.job_id, "event for an unknown job");
            return Ok(());
        };
        // Events are not signed (workers publish them): one must name a task of the job
        // it names, and a job that ended takes no more.
        if !self.store.tasks(&job.id).await?.iter().any(|t| t.id == e.task_id) {
            tracing::warn!(job_id = %e.job_id, task_id = %e.task_id, "ignored an event whose task is not the job's");
            return Ok(());
        }
        if job.state.is_final() {
            tracing::debug!(job_id = %e.job_id, state = job.state.as_str(), "event for an ended job");
            return Ok(());
        }
        let frames_total = e.frames_total.map(|t| t as i64);
        match e.kind {
            TaskEventKind::Segment => unreachable!("handled above"),
            TaskEventKind::Started | TaskEventKind::Progress => {
                self.store.update_task(&e.task_id, State::Running, e.frames_done as i64, frames_total, None).await?;
                if job.state == State::Queued {
                    self.store.set_job_state(&job.id, State::Running, None, None).await?;
                }
                if e.kind == TaskEventKind::Progress {
                    let body = serde_json::json!({"job_id": job.id, "task_id": e.task_id, "frames_done": e.frames_done, "frames_total": e.frames_total});
                    self.broker.publish_event("job.progress", &body).await;
                }
            }
            TaskEventKind::Retrying => {
                self.store.update_task(&e.task_id, State::Queued, e.frames_done as i64, frames_total, e.error.as_deref()).await?;
            }
            TaskEventKind::Failed => {
                let reason = e.error.clone().unwrap_or_else(|| "task failed".into());
                self.store.update_task(&e.task_id, State::Failed, e.frames_done as i64, frames_total, Some(&reason)).await?;
                if self.store.set_job_state(&job.id, State::Failed, Some(&reason), None).await? {
                    self.metrics.finished("failed", job.created_ms);
                    let body = serde_json::json!({"job_id": job.id, "error": reason});
                    self.broker.publish_event("job.failed", &body).await;
                }
            }
            TaskEventKind::Succeeded => {
                self.store.complete_task(&e.task_id).await?;
                self.finish_if_complete(&job.id).await?;
            }
        }
        Ok(())
    }

    /// When every task succeeded: make sure the playlists are there, then mark the job.
    pub async fn finish_if_complete(&self, job_id: &str) -> anyhow::Result<()> {
        // Another replica finishes it: no need to read the tasks.
        if !self.lease.held() {
            return Ok(());
        }
        let tasks = self.store.tasks(job_id).await?;
        if tasks.is_empty() || tasks.iter().any(|t| t.state != State::Succeeded) {
            return Ok(());
        }
        self.finish(job_id, Evidence::Tasks).await
    }

    /// A job its workers' reports stopped coming for: finished, its tasks marked succeeded,
    /// when the parts its workers wrote cover the source (reports lost on the way, or never
    /// read: the parts in storage are what a task leaves when it is done). Nothing changes
    /// while they do not.
    pub async fn finish_from_parts(&self, job_id: &str) -> anyhow::Result<()> {
        if !self.lease.held() {
            return Ok(());
        }
        self.finish(job_id, Evidence::Parts).await
    }

    async fn finish(&self, job_id: &str, evidence: Evidence) -> anyhow::Result<()> {
        let _guard = self.lock.lock().await;
        // Checked under the lock: a job cancelled meanwhile gets no playlist.
        let Some(job) = self.store.job(job_id).await? else { return Ok(()) };
        if job.state.is_final() {
            return Ok(());
        }
        // Fenced: another replica that took the lease meanwhile finishes the job instead.
        if !self.lease.check().await {
            return Ok(());
        }
        let sinks = self.sinks.clone();
        let (output, id) = (job.output.clone(), job.id.clone());
        let rt = Handle::current();
        let published = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<String>> {
            let sink = sinks.open(&output, &rt)?;
            Ok(farm_hls::publish::publish(sink.as_ref(), Some(&id))?.map(|key| sink.locate(&key)))
        })
        .await?;
        match published {
            Ok(Some(master)) => {
                if evidence == Evidence::Parts {
                    tracing::warn!(job_id, "no report from the job's tasks for a while, but their parts in storage cover the source: the tasks count as succeeded");
                    self.store.complete_tasks(job_id).await?;
                }
                if self.store.set_job_state(job_id, State::Succeeded, None, Some(&master)).await? {
                    self.metrics.finished("succeeded", job.created_ms);
                    tracing::info!(job_id, %master, "VOD playlists written, job succeeded");
                    let body = serde_json::json!({"job_id": job_id, "master_playlist": master});
                    self.broker.publish_event("job.succeeded", &body).await;
                }
            }
            Ok(None) if evidence == Evidence::Parts => {}
            Ok(None) => {
                let reason = "every task finished but the parts do not cover the source";
                if self.store.set_job_state(job_id, State::Failed, Some(reason), None).await? {
                    self.metrics.finished("failed", job.created_ms);
                }
            }
            Err(e) => {
                // Storage trouble: leave the job running; the next event or restart retries.
                tracing::warn!(job_id, error = format!("{e:#}"), "could not publish playlists yet");
            }
        }
        Ok(())
    }
}

/// What says a job is done: every task reported success, or the parts in storage cover
/// the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    Tasks,
    Parts,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Job, Task};
    use farm_contract::task::{Priority, TaskPart};

    fn job(id: &str) -> (Job, Task) {
        let job = Job {
            id: id.into(), state: State::Running, source: "s".into(), output: format!("o/{id}"), priority: Priority::Normal,
            ladder: "{}".into(), idempotency_key: None, error: None, master_playlist: None, plan: None, review: None, forensic_watermark: false, created_ms: 0, updated_ms: 0,
        };
        let task = Task { id: format!("{id}-0000"), job_id: id.into(), part: TaskPart::Whole, state: State::Running, frames_done: 0, frames_total: None, error: None };
        (job, task)
    }

    /// Issue 14, defect 3: an event naming one job and another job's task changed both.
    #[tokio::test]
    async fn events_must_name_a_task_of_their_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db?mode=rwc", dir.path().display())).await.unwrap();
        for id in ["a", "b"] {
            let (j, t) = job(id);
            store.insert(&j, &[t], &Default::default()).await.unwrap();
        }
        let topology = farm_queue::Topology::new("t");
        let tracker = Tracker {
            store: store.clone(),
            sinks: Arc::new(Sinks::new(farm_storage::StorageSettings::default())),
            metrics: Arc::new(Metrics::new()),
            broker: Arc::new(Broker::embedded(Arc::new(farm_queue::MemoryQueue::default()), topology)),
            lock: Default::default(),
            segments: tokio::sync::mpsc::unbounded_channel().0,
            lease: crate::leases::Lease::new(store.clone(), "t", crate::leases::PLAYLISTS, "test", std::time::Duration::from_secs(5)),
        };
        let forged = TaskEvent { job_id: "a".into(), task_id: "b-0000".into(), kind: TaskEventKind::Failed, frames_done: 0, frames_total: None, error: Some("forged".into()) };
        tracker.apply(&forged).await.unwrap();
        for id in ["a", "b"] {
            assert_eq!(store.job(id).await.unwrap().unwrap().state, State::Running, "job {id}");
            assert_eq!(store.tasks(id).await.unwrap()[0].state, State::Running, "task of {id}");
        }
        let real = TaskEvent { task_id: "a-0000".into(), ..forged };
        tracker.apply(&real).await.unwrap();
        assert_eq!(store.job("a").await.unwrap().unwrap().state, State::Failed);
    }
}
