//! What `worker serve` (and the embedded farm's workers) are configured with.

use std::sync::Arc;
use std::time::Duration;

use farm_queue::{MemoryQueue, Topology};
use farm_storage::StorageSettings;

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
    pub s3: StorageSettings,
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
    /// The font burn-ins are drawn with.
    pub font: std::path::PathBuf,
}

pub use crate::hold::DEFAULT_HOLD_SECONDS;

