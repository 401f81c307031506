//! Taking tasks from RabbitMQ (or the embedded farm's in-process queue, through the same
//! code), one at a time, rush queue first.
//!
//! A message in -> `farm_media::job::run` on a blocking thread -> [`crate::ack`] decides ack,
//! requeue or dead-letter. The message is acknowledged only after every segment and the
//! part manifest the task writes have been written. The worker reconnects with
//! backoff when the broker goes away; an unacknowledged task is then redelivered (keys are
//! deterministic, so a rerun overwrites). On shutdown it stops taking tasks and gives the
//! task in hand `drain` to finish, else stops it and requeues it. A task whose job was
//! cancelled (the coordinator's marker under the output) is stopped and dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use farm_contract::manifest::SegmentRecord;
use farm_contract::signature::HEADER_SIGNATURE;
use farm_contract::task::{Priority, TaskEvent, TaskEventKind, TaskMessage, TaskPart, cancel_marker};
use farm_queue::memory::{self as memqueue, MemoryQueue};
use farm_queue::{dead_letter, declare, publish_confirmed, Topology};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::ack::{self, Disposition};
use farm_media::TranscodeError;
use crate::hold;
use farm_media::job::{self, Part, Task};
use farm_media::progress::Progress;
use farm_storage::{self as storage, S3Settings};

/// Where tasks come from: RabbitMQ, or the embedded farm's in-process queue.
#[derive(Clone)]
pub enum QueueSource {
    Amqp(String),
    Memory(Arc<MemoryQueue>),
}

/// 25 min: under RabbitMQ's default `consumer_timeout` of 30 min. A 60 s chunk of 4K
/// takes a few minutes on one core; an hour of audio well under one.
pub const DEFAULT_TASK_DEADLINE_SECONDS: u64 = 1500;

#[derive(Clone)]
pub struct ServeConfig {
    pub queue: QueueSource,
    pub topology: Topology,
    pub s3: S3Settings,
    pub x264_threads: usize,
    pub decode_threads: usize,
    /// How long a task in hand may run on after shutdown is asked for.
    pub drain: Duration,
    /// Pause between polls of empty queues.
    pub idle_poll: Duration,
    /// A task still running after this long is stopped and handed back (retryable). Keep
    /// it below RabbitMQ's `consumer_timeout` (30 min by default), which would otherwise
    /// close the channel under the task.
    pub task_deadline: Duration,
    /// A later chunk of a job waits before it starts until the job is playable, when the
    /// job's first chunk runs on the same CPUs, at most this long; zero: never. See
    /// [`crate::hold`].
    pub hold: Duration,
    /// The task key and allow-lists every task is checked against.
    pub admission: crate::admit::Admission,
    /// A task whose frames do not advance for this long is stopped and handed back (0: never).
    pub stall: Duration,
    /// When the task in hand last advanced (shared with the `/healthz` endpoint).
    pub heartbeat: Arc<crate::watchdog::Heartbeat>,
}

pub use crate::hold::DEFAULT_HOLD_SECONDS;

/// Serves tasks until `shutdown` is cancelled.
pub async fn run(config: ServeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    if let QueueSource::Memory(queue) = &config.queue {
        return serve(&Link::Memory(queue.clone()), &config, &shutdown).await;
    }
    let mut backoff = farm_service::retry::Backoff::default();
    loop {
        let started = Instant::now();
        let error = match session(&config, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let wait = backoff.next(started);
        tracing::warn!(error = format!("{error:#}"), retry_in = ?wait, "broker connection lost");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
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
#[derive(Clone)]
enum Link {
    Amqp(Channel),
    Memory(Arc<MemoryQueue>),
}

/// A task taken from the queue, to be acknowledged, requeued or dead-lettered.
enum Incoming {
    Amqp(Delivery),
    Memory(memqueue::Message),
}

impl Incoming {
    /// The signature header's value, if the message has one.
    fn signature(&self) -> Option<String> {
        let Self::Amqp(d) = self else { return None };
        d.properties.headers().as_ref()?.inner().get(HEADER_SIGNATURE).and_then(|v| match v {
            AMQPValue::LongString(s) => Some(s.to_string()),
            _ => None,
        })
    }

    /// Whether the message came over the broker, where tasks must be signed.
    fn is_signed(&self) -> bool {
        matches!(self, Self::Amqp(_))
    }

    fn data(&self) -> &[u8] {
        match self {
            Self::Amqp(d) => &d.data,
            Self::Memory(m) => &m.payload,
        }
    }

    /// 1 on the first delivery; quorum queues count earlier returns in `x-delivery-count`.
    fn attempt(&self) -> u32 {
        match self {
            Self::Memory(m) => m.deliveries,
            Self::Amqp(d) => {
                let count = d.properties.headers().as_ref().and_then(|h| {
                    h.inner().get("x-delivery-count").and_then(|v| match v {
                        AMQPValue::LongLongInt(n) => Some(*n as i64),
                        AMQPValue::LongInt(n) => Some(i64::from(*n)),
                        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
                        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
                        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
                        _ => None,
                    })
                });
                match count {
                    Some(n) => (n.max(0) as u32).saturating_add(1),
                    None if d.redelivered => 2,
                    None => 1,
                }
            }
        }
    }
}

impl Link {
    async fn next(&self, topology: &Topology) -> anyhow::Result<Option<Incoming>> {
        match self {
            Self::Memory(q) => Ok(q.take().map(Incoming::Memory)),
            Self::Amqp(channel) => {
                for priority in [Priority::High, Priority::Normal] {
                    let queue = topology.queue(priority);
                    if let Some(message) = channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await? {
                        return Ok(Some(Incoming::Amqp(message.delivery)));
                    }
                }
                Ok(None)
            }
        }
    }

    async fn ack(&self, incoming: Incoming) -> anyhow::Result<()> {
        if let Incoming::Amqp(d) = incoming {
            d.ack(BasicAckOptions::default()).await?;
        }
        Ok(())
    }

    async fn requeue(&self, incoming: Incoming) -> anyhow::Result<()> {
        match (self, incoming) {
            (_, Incoming::Amqp(d)) => {
                d.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
            }
            (Self::Memory(q), Incoming::Memory(m)) => q.requeue(m),
            (Self::Amqp(_), Incoming::Memory(_)) => unreachable!("a memory task on an AMQP link"),
        }
        Ok(())
    }

    /// Dead-letters a task with the reason, then acknowledges it.
    async fn dead_letter(&self, topology: &Topology, incoming: Incoming, reason: &str, job: &str) -> anyhow::Result<()> {
        match (self, incoming) {
            (Self::Amqp(channel), Incoming::Amqp(d)) => {
                dead_letter(channel, topology, &d, reason, job).await?;
                d.ack(BasicAckOptions::default()).await?;
            }
            (Self::Memory(q), Incoming::Memory(m)) => q.dead_letter(m.payload, reason),
            _ => unreachable!("a task on another queue's link"),
        }
        Ok(())
    }
}

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
    let part = task.part.kind();
    crate::metrics::BUSY.set(1);
    let _idle_again = IdleAgain;
    let started = Instant::now();
    tracing::info!(job_id = %task.job_id, task_id = %task.task_id, part = ?task.part, attempt, "task started");
    let events = Events { link: link.clone(), topology: config.topology.clone(), task: task.clone(), rt: Handle::current() };
    config.heartbeat.start();
    events.publish(TaskEventKind::Started, 0, None, None);

    let cancel = Arc::new(AtomicBool::new(false));
    let job_cancelled = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_cancellation(task.output.clone(), cancel_marker(&task.job_id), config.s3.clone(), cancel.clone(), job_cancelled.clone()));
    let outcome = {
        let (config_, cancel_, task_, events_) = (config.clone(), cancel.clone(), task.clone(), events.clone());
        let rt = Handle::current();
        // A thread of its own rather than the blocking pool: a later chunk lowers its
        // priority (threads it starts inherit it), and that must not outlive the task.
        let (done, mut work) = tokio::sync::oneshot::channel();
        // Review starts with the job's first segments: the task that opens the timeline
        // runs at normal priority; later chunks (and the audio task of jobs split before
        // schema 3) yield the CPU to it when they share a machine (measured: an audio task
        // at normal priority made a 300 s job playable 2.7 s later), and wait for the job
        // to be playable before they start (see `hold`). Total work is unchanged.
        let background = match task.part {
            TaskPart::Whole => false,
            TaskPart::Video { start, .. } => start > 0.0,
            TaskPart::Audio => true,
        };
        std::thread::Builder::new()
            .name(format!("task-{}", task.task_id))
            .spawn(move || {
                if background {
                    lower_priority();
                }
                let _ = done.send(run_task(&task_, &config_, &events_, &cancel_, rt));
            })
            .context("starting the task thread")?;
        tokio::select! {
            joined = &mut work => joined,
            idle = config.heartbeat.stall(config.stall), if !config.stall.is_zero() => {
                tracing::warn!(task_id = %task.task_id, idle = ?idle, "task stalled: no frame advanced; stopping it");
                cancel.store(true, Ordering::SeqCst);
                match work.await {
                    Ok(Ok(())) => Ok(Ok(())),
                    _ => Ok(Err(TranscodeError::Stalled { seconds: idle.as_secs() })),
                }
            }
            _ = tokio::time::sleep(config.task_deadline) => {
                tracing::warn!(task_id = %task.task_id, deadline = ?config.task_deadline, "task past its deadline: stopping it");
                cancel.store(true, Ordering::SeqCst);
                match work.await {
                    Ok(Ok(())) => Ok(Ok(())), // it finished as it was being stopped
                    _ => Ok(Err(TranscodeError::Deadline { seconds: config.task_deadline.as_secs() })),
                }
            }
            _ = shutdown.cancelled() => {
                crate::metrics::DRAINING.set(1);
                tracing::info!(drain = ?config.drain, "shutting down: letting the task in hand finish");
                match tokio::time::timeout(config.drain, &mut work).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        cancel.store(true, Ordering::SeqCst);
                        work.await
                    }
                }
            }
        }
    }
    .unwrap_or_else(|_| Err(TranscodeError::Panicked { stage: "task".into(), message: "the task thread ended without a result".into() }));
    watcher.abort();
    config.heartbeat.stop();

    crate::metrics::TASK_SECONDS.with_label_values(&[part]).observe(started.elapsed().as_secs_f64());
    if let Err(e) = &outcome {
        if !matches!(e, TranscodeError::Cancelled) {
            crate::metrics::FAILURES.with_label_values(&[crate::metrics::failure_kind(e)]).inc();
        }
    }
    if job_cancelled.load(Ordering::SeqCst) {
        crate::metrics::TASKS.with_label_values(&[part, "cancelled"]).inc();
        tracing::info!(job_id = %task.job_id, task_id = %task.task_id, "job cancelled: task dropped");
        link.ack(incoming).await?;
        return Ok(());
    }
    match ack::decide(&outcome, attempt) {
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

/// Audio and later chunks run beside the first video chunk, whose first segment decides
/// when review can start: they yield the CPU to it (nice 10).
fn lower_priority() {
    // On Linux this applies to the calling thread only, and to the threads it starts.
    // SAFETY: setpriority takes plain integers and changes only this thread's nice value.
    let ret = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if ret != 0 {
        tracing::debug!("could not lower the audio task's priority");
    }
}

/// Sets both flags when the job's cancel marker appears (checked at once, then every 2 s).
async fn watch_cancellation(output: String, marker: String, s3: S3Settings, cancel: Arc<AtomicBool>, job_cancelled: Arc<AtomicBool>) {
    let rt = Handle::current();
    let sink = match tokio::task::spawn_blocking(move || storage::open_sink(&output, &s3, &rt)).await {
        Ok(Ok(sink)) => Arc::new(sink),
        _ => return, // the task itself will report the bad output
    };
    loop {
        let (probe, key) = (sink.clone(), marker.clone());
        let marked = tokio::task::spawn_blocking(move || probe.get(&key).is_ok()).await.unwrap_or(false);
        if marked {
            job_cancelled.store(true, Ordering::SeqCst);
            cancel.store(true, Ordering::SeqCst);
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn run_task(task: &TaskMessage, config: &ServeConfig, events: &Events, cancel: &AtomicBool, rt: Handle) -> Result<(), TranscodeError> {
    let bad_location = |e: storage::LocationError| TranscodeError::Unsupported { path: task.source.clone(), detail: e.to_string() };
    let source = storage::open_source(&task.source, &config.s3, &rt).map_err(bad_location)?;
    let sink = storage::open_sink(&task.output, &config.s3, &rt).map_err(|e| match e {
        storage::OpenError::Location(e) => TranscodeError::Unsupported { path: task.output.clone(), detail: e.to_string() },
        storage::OpenError::Io(source) => TranscodeError::Output { key: task.output.clone(), source },
    })?;
    let job_task = Task {
        source,
        ladder: task.ladder.clone(),
        part: match task.part {
            TaskPart::Whole => Part::Whole,
            TaskPart::Video { start, end, audio } => Part::Video { start, end, audio },
            TaskPart::Audio => Part::Audio,
        },
        x264_threads: config.x264_threads,
        decode_threads: config.decode_threads,
        publish: false,
        job_id: Some(task.job_id.clone()),
    };
    match task.part {
        TaskPart::Video { start: 0.0, .. } => hold::mark_first_chunk(sink.as_ref()),
        TaskPart::Video { .. } if !config.hold.is_zero() => {
            hold::PlayableGate { sink: sink.as_ref(), cancel, limit: config.hold }.wait();
        }
        _ => {}
    }
    let progress = EventProgress { events: events.clone(), last: Mutex::new(None), heartbeat: config.heartbeat.clone() };
    let outcome = job::run(&job_task, sink.as_ref(), &progress, cancel)?;
    let fetched = outcome.source_read.unwrap_or_default();
    tracing::info!(
        task_id = %task.task_id,
        frames = outcome.frames,
        segments = outcome.segments,
        source_bytes = outcome.source_size,
        fetched_requests = fetched.requests,
        fetched_bytes = fetched.bytes,
        "task encoded"
    );
    Ok(())
}

#[derive(Clone)]
struct Events {
    link: Link,
    topology: Topology,
    task: TaskMessage,
    rt: Handle,
}

impl Events {
    fn payload(&self, kind: TaskEventKind, frames_done: u64, frames_total: Option<u64>, error: Option<String>) -> Vec<u8> {
        let event = TaskEvent {
            job_id: self.task.job_id.clone(),
            task_id: self.task.task_id.clone(),
            kind,
            frames_done,
            frames_total,
            error,
        };
        serde_json::to_vec(&event).expect("events serialise")
    }

    /// Progress is for watchers (the coordinator, dashboards): sent without waiting.
    fn publish(&self, kind: TaskEventKind, frames_done: u64, frames_total: Option<u64>, error: Option<String>) {
        let payload = self.payload(kind, frames_done, frames_total, error);
        let channel = match &self.link {
            Link::Memory(q) => return q.event(kind.routing_key(), payload),
            Link::Amqp(channel) => channel.clone(),
        };
        let exchange = self.topology.events_exchange();
        self.rt.spawn(async move {
            let published = channel
                .basic_publish(
                    exchange.as_str().into(),
                    kind.routing_key().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default().with_content_type("application/json".into()),
                )
                .await;
            if let Err(e) = published {
                tracing::debug!(error = %e, "could not publish a task event");
            }
        });
    }

    /// An outcome must reach the coordinator before the task is acknowledged: waits for
    /// the broker's confirm. If it fails, the task is not acknowledged and runs again.
    async fn outcome(&self, kind: TaskEventKind, error: Option<String>) -> anyhow::Result<()> {
        let payload = self.payload(kind, 0, None, error);
        let channel = match &self.link {
            Link::Memory(q) => {
                q.event(kind.routing_key(), payload);
                return Ok(());
            }
            Link::Amqp(channel) => channel,
        };
        let properties = BasicProperties::default().with_content_type("application/json".into());
        Ok(publish_confirmed(channel, &self.topology.events_exchange(), kind.routing_key(), false, &payload, properties).await?)
    }
}

/// Publishes `task.progress` every 2 s at most, and `task.segment` for every segment.
struct EventProgress {
    events: Events,
    last: Mutex<Option<Instant>>,
    heartbeat: Arc<crate::watchdog::Heartbeat>,
}

impl Progress for EventProgress {
    fn frames(&self, done: u64, total: Option<u64>) {
        // Only progress that advances is reported: the coordinator takes a task without
        // reports for stalled, and a stuck pipeline repeats its last count.
        if !self.heartbeat.frames(done) {
            return;
        }
        let mut last = self.last.lock().expect("progress lock");
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
            return;
        }
        *last = Some(Instant::now());
        self.events.publish(TaskEventKind::Progress, done, total, None);
    }

    fn segment(&self, _record: &SegmentRecord) {
        self.heartbeat.beat();
        self.events.publish(TaskEventKind::Segment, 0, None, None);
    }
}
