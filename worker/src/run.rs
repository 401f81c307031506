//! Running one admitted task: on a thread of its own (a later chunk lowers its priority,
//! which must not outlive the task), watched for its job's cancel marker, and stopped when
//! it stalls, passes its deadline or outlives the drain after shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use farm_contract::task::{cancel_marker, claim_key, TaskMessage, TaskPart};
use farm_media::job::{self, Part, Task};
use farm_media::TranscodeError;
use farm_storage::{self as storage, StorageSettings};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::serve_config::ServeConfig;
use crate::events::{EventProgress, Events};
use crate::fence::{Claim, Fence};
use crate::hold;

/// Runs `task` on a thread of its own and waits for it, stopping it (the pipeline's own
/// cancellation flag) when it stalls, passes its deadline, or outlives the drain after
/// `shutdown`.
pub(crate) async fn supervise(task: &TaskMessage, config: &ServeConfig, events: &Events, stops: &Stops, shutdown: &CancellationToken) -> anyhow::Result<Result<(), TranscodeError>> {
    let cancel = &stops.cancel;
    let outcome = {
        let (config_, stops_, task_, events_) = (config.clone(), stops.clone(), task.clone(), events.clone());
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
                let _ = done.send(run_task(&task_, &config_, &events_, &stops_, rt));
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
    };
    Ok(outcome.unwrap_or_else(|_| Err(TranscodeError::Panicked { stage: "task".into(), message: "the task thread ended without a result".into() })))
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

/// What stops a task in hand, shared between its thread and the tasks that watch it.
#[derive(Clone, Default)]
pub(crate) struct Stops {
    /// Stop now: the pipeline's own cancellation flag.
    pub cancel: Arc<AtomicBool>,
    /// The job was cancelled (its marker is under the output): the task is dropped.
    pub job_cancelled: Arc<AtomicBool>,
    /// A later attempt of the task claimed its output (see [`crate::fence`]).
    pub superseded: Arc<AtomicBool>,
}

impl Stops {
    fn job_was_cancelled(&self) {
        self.job_cancelled.store(true, Ordering::SeqCst);
        self.cancel.store(true, Ordering::SeqCst);
    }
}

/// Stops the task when the job's cancel marker appears while it runs (looked for every
/// 2 s; the task looks once itself before it writes anything, see [`run_task`]).
pub(crate) async fn watch_cancellation(output: String, marker: String, s3: StorageSettings, stops: Stops) {
    let rt = Handle::current();
    let sink = match tokio::task::spawn_blocking(move || storage::open_sink(&output, &s3, &rt)).await {
        Ok(Ok(sink)) => Arc::new(sink),
        _ => return, // the task itself will report the bad output
    };
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (probe, key) = (sink.clone(), marker.clone());
        match tokio::task::spawn_blocking(move || probe.get_if_any(&key).map(|marker| marker.is_some())).await {
            Ok(Ok(true)) => {
                stops.job_was_cancelled();
                return;
            }
            Ok(Ok(false)) | Err(_) => {}
            // Storage trouble is the task's to meet: the watcher looks again.
            Ok(Err(e)) => tracing::debug!(error = %e, "could not look for the job's cancel marker; looking again"),
        }
    }
}

fn run_task(task: &TaskMessage, config: &ServeConfig, events: &Events, stops: &Stops, rt: Handle) -> Result<(), TranscodeError> {
    let bad_location = |e: storage::LocationError| TranscodeError::Unsupported { path: task.source.clone(), detail: e.to_string() };
    let source = storage::open_source(&task.source, &config.s3, &rt).map_err(bad_location)?;
    let sink = storage::open_sink(&task.output, &config.s3, &rt).map_err(|e| match e {
        storage::OpenError::Location(e) => TranscodeError::Unsupported { path: task.output.clone(), detail: e.to_string() },
        storage::OpenError::Io(source) => TranscodeError::Output { key: task.output.clone(), source },
    })?;
    // A task of a job cancelled before it came is dropped before it writes anything, its
    // claim included. Looked for here, under the stall watchdog, as storage may not answer.
    let marker = cancel_marker(&task.job_id);
    if sink.get_if_any(&marker).map_err(|source| TranscodeError::Output { key: marker, source })?.is_some() {
        stops.job_was_cancelled();
        return Err(TranscodeError::Cancelled);
    }
    let claim = claim_key(&task.task_id);
    let sink = match Fence::claim(sink, &task.task_id, stops.superseded.clone()).map_err(|source| TranscodeError::Output { key: claim, source })? {
        Claim::Taken(fence) => fence,
        Claim::Done { by } => {
            tracing::info!(task_id = %task.task_id, %by, "task already done by an earlier attempt: not run again");
            return Ok(());
        }
    };
    let lut = match task.review.as_ref().and_then(|r| r.lut.as_ref()) {
        Some(lut) => Some(storage::open_source(&lut.location, &config.s3, &rt).map_err(|e| TranscodeError::Lut { path: lut.location.clone(), detail: e.to_string() })?),
        None => None,
    };
    let job_task = Task {
        review: task.review.clone(),
        lut,
        font: config.font.clone(),
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
        keys: task.keys.clone(),
        forensic_seed: task.forensic_seed.as_ref().map(|seed| seed.0),
    };
    match task.part {
        TaskPart::Video { start: 0.0, .. } => hold::mark_first_chunk(&sink),
        TaskPart::Video { .. } if !config.hold.is_zero() => {
            hold::PlayableGate { sink: &sink, cancel: &stops.cancel, limit: config.hold }.wait();
        }
        _ => {}
    }
    let progress = EventProgress { events: events.clone(), last: Mutex::new(None), heartbeat: config.heartbeat.clone() };
    let outcome = job::run(&job_task, &sink, &progress, &stops.cancel)?;
    if let Err(e) = sink.finish() {
        tracing::warn!(task_id = %task.task_id, error = %e, "could not mark the task done: a later delivery of it would run it again");
    }
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

