//! Taking tasks from RabbitMQ (or the embedded farm's in-process queue, through the same
//! code), one at a time, rush queue first.
//!
//! A message in -> `farm_media::job::run` on a blocking thread -> [`crate::ack`] decides ack,
//! requeue or dead-letter. The message is acknowledged only after every segment and the
//! part manifest the task writes have been written. The worker reconnects with
//! backoff when the broker goes away; an unacknowledged task is then redelivered (keys are
//! deterministic, so a rerun overwrites; a task already done is not run again, see
//! [`crate::fence`]). On shutdown it stops taking tasks and gives the
//! task in hand `drain` to finish, else stops it and requeues it. A task whose job was
//! cancelled (the coordinator's marker under the output) is stopped and dropped; so is one
//! a later attempt has claimed (see [`crate::fence`]).

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use farm_contract::task::{cancel_marker, TaskEventKind, TaskMessage};
use farm_media::TranscodeError;
use farm_queue::declare;
use lapin::options::{BasicQosOptions, ConfirmSelectOptions};
use lapin::{Connection, ConnectionProperties};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::ack::{self, Disposition};
use crate::events::Events;
use crate::link::{Incoming, Link};
use crate::run::{watch_cancellation, Stops};
pub use crate::serve_config::{QueueSource, ServeConfig, DEFAULT_HOLD_SECONDS, DEFAULT_TASK_DEADLINE_SECONDS};

/// Serves tasks until `shutdown` is cancelled.
pub async fn run(config: ServeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    if let QueueSource::Memory(queue) = &config.queue {
        return serve(&Link::Memory(queue.clone()), &config, &shutdown).await;
    }
    farm_service::retry::reconnecting("broker connection lost", &shutdown, || session(&config, &shutdown)).await;
    Ok(())
}

async fn session(config: &ServeConfig, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let QueueSource::Amqp(url) = &config.queue else { unreachable!("memory queues have no session") };
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .context("connecting to the broker")?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    channel.basic_qos(1, BasicQosOptions::default()).await?;
    declare(&channel, &config.topology).await?;
    serve(&Link::Amqp(channel), config, shutdown).await
}

/// A live link to the queue: a RabbitMQ channel or the in-process queue.
async fn serve(link: &Link, config: &ServeConfig, shutdown: &CancellationToken) -> anyhow::Result<()> {
    tracing::info!(prefix = %config.topology.prefix, "waiting for tasks");
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        match link.next(&config.topology).await? {
            Some(incoming) => handle(link, incoming, config, shutdown).await?,
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(config.idle_poll) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }
}

async fn handle(link: &Link, incoming: Incoming, config: &ServeConfig, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let task: TaskMessage = match config.admission.admit(incoming.data(), incoming.signature().as_deref(), incoming.is_signed()) {
        Ok(task) => task,
        Err(reason) => {
            tracing::warn!(%reason, "dead-lettering an invalid task message");
            link.dead_letter(&config.topology, incoming, &reason, "").await?;
            return Ok(());
        }
    };
    let attempt = incoming.attempt();
    crate::metrics::BUSY.set(1);
    let _idle_again = IdleAgain;
    let started = Instant::now();
    tracing::info!(job_id = %task.job_id, task_id = %task.task_id, part = ?task.part, attempt, "task started");
    let events = Events { link: link.clone(), topology: config.topology.clone(), task: task.clone(), rt: Handle::current() };
    config.heartbeat.start();
    events.publish(TaskEventKind::Started, 0, None, None);

    let stops = Stops::default();
    let watcher = tokio::spawn(watch_cancellation(task.output.clone(), cancel_marker(&task.job_id), config.s3.clone(), stops.clone()));
    let outcome = crate::run::supervise(&task, config, &events, &stops, shutdown).await?;
    watcher.abort();
    config.heartbeat.stop();
    settle(link, incoming, config, &task, &events, outcome, Settle { attempt, started, job_cancelled: stops.job_cancelled.load(Ordering::SeqCst), superseded: stops.superseded.load(Ordering::SeqCst) }).await
}

/// What is known of a task once it ran.
struct Settle {
    attempt: u32,
    started: Instant,
    job_cancelled: bool,
    /// A later attempt of the task claimed its output and refused this one's writes.
    superseded: bool,
}

/// Counts the outcome and does what [`ack::decide`] says with the message.
async fn settle(link: &Link, incoming: Incoming, config: &ServeConfig, task: &TaskMessage, events: &Events, outcome: Result<(), TranscodeError>, done: Settle) -> anyhow::Result<()> {
    let part = task.part.kind();
    crate::metrics::TASK_SECONDS.with_label_values(&[part]).observe(done.started.elapsed().as_secs_f64());
    if let Err(e) = &outcome {
        if !matches!(e, TranscodeError::Cancelled) && !done.superseded {
            crate::metrics::FAILURES.with_label_values(&[crate::metrics::failure_kind(e)]).inc();
        }
    }
    if done.job_cancelled {
        crate::metrics::TASKS.with_label_values(&[part, "cancelled"]).inc();
        tracing::info!(job_id = %task.job_id, task_id = %task.task_id, "job cancelled: task dropped");
        link.ack(incoming).await?;
        return Ok(());
    }
    if done.superseded {
        // The later attempt reports the task; this one says nothing, and its message is
        // done with (the later attempt came as a message of its own, or as this one
        // redelivered once its channel died, where this ack goes nowhere).
        crate::metrics::TASKS.with_label_values(&[part, "superseded"]).inc();
        tracing::warn!(job_id = %task.job_id, task_id = %task.task_id, "task superseded: a later attempt holds it, this one stopped");
        link.ack(incoming).await?;
        return Ok(());
    }
    match ack::decide(&outcome, done.attempt) {
        Disposition::Ack => {
            events.outcome(TaskEventKind::Succeeded, None).await?;
            link.ack(incoming).await?;
            crate::metrics::TASKS.with_label_values(&[part, "succeeded"]).inc();
            tracing::info!(task_id = %task.task_id, "task succeeded");
        }
        Disposition::Requeue { reason } => {
            events.outcome(TaskEventKind::Retrying, Some(reason.clone())).await?;
            link.requeue(incoming).await?;
            crate::metrics::TASKS.with_label_values(&[part, "requeued"]).inc();
            if let Err(e) = &outcome {
                crate::metrics::TASK_RETRIES.with_label_values(&[crate::metrics::retry_kind(e)]).inc();
            }
            tracing::warn!(task_id = %task.task_id, %reason, "task handed back for another try");
        }
        Disposition::DeadLetter { reason } => {
            events.outcome(TaskEventKind::Failed, Some(reason.clone())).await?;
            link.dead_letter(&config.topology, incoming, &reason, &task.job_id).await?;
            crate::metrics::TASKS.with_label_values(&[part, "dead_lettered"]).inc();
            tracing::warn!(task_id = %task.task_id, %reason, "task failed for good");
        }
    }
    Ok(())
}

/// Marks the worker idle when the task's handling ends, however it ends.
struct IdleAgain;

impl Drop for IdleAgain {
    fn drop(&mut self) {
        crate::metrics::BUSY.set(0);
    }
}

