//! The embedded farm: the worker's own code on an in-process queue, when there is no
//! `AMQP_URL`. Only this module reaches into the worker crate, and only with the
//! `embedded` feature (on by default; the distributed coordinator is built without it).

use std::sync::Arc;

use farm_queue::{MemoryQueue, Topology};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Allowed, Config};

pub type Workers = Vec<JoinHandle<anyhow::Result<()>>>;

#[cfg(feature = "embedded")]
pub fn start(config: &Config, allowed: &Allowed, queue: &Arc<MemoryQueue>, topology: &Topology, shutdown: &CancellationToken) -> anyhow::Result<Workers> {
    use farm_worker::consume::{self, QueueSource, ServeConfig};
    farm_worker::metrics::init();
    tracing::warn!(workers = config.workers, "no AMQP_URL: running the embedded farm (in-process queue and workers)");
    let mut workers = Vec::new();
    for _ in 0..config.workers.max(1) {
        let worker = ServeConfig {
            queue: QueueSource::Memory(queue.clone()),
            topology: topology.clone(),
            s3: config.s3(),
            x264_threads: 0,
            decode_threads: 0,
            drain: std::time::Duration::from_secs(30),
            idle_poll: std::time::Duration::from_millis(200),
            task_deadline: std::time::Duration::from_secs(consume::DEFAULT_TASK_DEADLINE_SECONDS),
            hold: std::time::Duration::from_secs(consume::DEFAULT_HOLD_SECONDS),
            stall: std::time::Duration::from_secs(farm_worker::watchdog::DEFAULT_STALL_SECONDS),
            heartbeat: Default::default(),
            font: farm_media::transcode::picture::DEFAULT_FONT.into(),
            admission: farm_worker::admit::Admission { key: None, sources: allowed.sources.clone(), outputs: allowed.outputs.clone() },
        };
        let shutdown = shutdown.clone();
        workers.push(tokio::spawn(async move { consume::run(worker, shutdown).await }));
    }
    Ok(workers)
}

#[cfg(not(feature = "embedded"))]
pub fn start(_: &Config, _: &Allowed, _: &Arc<MemoryQueue>, _: &Topology, _: &CancellationToken) -> anyhow::Result<Workers> {
    anyhow::bail!("AMQP_URL is not set and this coordinator was built without the embedded farm (cargo feature `embedded`)")
}
