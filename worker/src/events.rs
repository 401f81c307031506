//! What a worker tells the coordinator about the task in hand: `task.*` events on the
//! events exchange (or the in-process queue), the outcomes confirmed by the broker, and
//! progress that only counts when frames advance.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use farm_contract::manifest::SegmentRecord;
use farm_contract::task::{TaskEvent, TaskEventKind, TaskMessage};
use farm_media::progress::Progress;
use farm_queue::{publish_confirmed, Topology};
use lapin::options::BasicPublishOptions;
use lapin::BasicProperties;
use tokio::runtime::Handle;

use crate::link::Link;

#[derive(Clone)]
pub(crate) struct Events {
    pub(crate) link: Link,
    pub(crate) topology: Topology,
    pub(crate) task: TaskMessage,
    pub(crate) rt: Handle,
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
    pub(crate) fn publish(&self, kind: TaskEventKind, frames_done: u64, frames_total: Option<u64>, error: Option<String>) {
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
    pub(crate) async fn outcome(&self, kind: TaskEventKind, error: Option<String>) -> anyhow::Result<()> {
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
pub(crate) struct EventProgress {
    pub(crate) events: Events,
    pub(crate) last: Mutex<Option<Instant>>,
    pub(crate) heartbeat: Arc<crate::watchdog::Heartbeat>,
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
