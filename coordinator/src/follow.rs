//! Following task events: what workers report (`task.*` on the events exchange, or the
//! embedded farm's in-process queue) and a copy of every dead letter, applied in order to
//! the job state by the [`Tracker`]. Durable quorum queues of its own keep events while
//! the coordinator is down.
//!
//! With several coordinator replicas, all of them consume the one events queue: each event
//! reaches exactly one replica's tracker, and the database applies it (a succeeded task
//! stays succeeded, a final job takes no more). The dead letters are followed only by the
//! replica that holds the dead-letter lease ([`crate::leases::DEAD_LETTERS`]).

use futures::StreamExt;
use farm_contract::task::{TaskEvent, TaskMessage};
use farm_queue::declare;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::tracker::Tracker;

fn events_queue(broker: &Broker) -> String {
    format!("{}.coordinator.events", broker.topology.prefix)
}

/// Reads task events until shutdown, reconnecting with backoff.
pub async fn run(broker: &Broker, tracker: Tracker, shutdown: CancellationToken) {
        if let Some(queue) = broker.memory() {
            let Some(mut events) = queue.take_events() else { return };
            loop {
                let next = tokio::select! {
                    e = events.recv() => e,
                    _ = shutdown.cancelled() => return,
                };
                let Some((_, payload)) = next else { return };
                match serde_json::from_slice::<TaskEvent>(&payload) {
                    Ok(event) => {
                        if let Err(e) = tracker.apply(&event).await {
                            tracing::warn!(error = format!("{e:#}"), "task event not applied");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "ignoring an event that is not a task event"),
                }
            }
        }
        farm_service::retry::reconnecting("event stream lost", &shutdown, || session(broker, &tracker, &shutdown)).await;
    }

/// Follows the dead letters while this replica holds `lease`, until shutdown.
pub async fn run_dead_letters(broker: &Broker, tracker: Tracker, lease: crate::leases::Lease, shutdown: CancellationToken) {
    if broker.memory().is_some() {
        return; // the embedded farm's queue dead-letters nothing
    }
    let mut held = lease.subscribe();
    loop {
        tokio::select! {
            _ = held.wait_for(Option::is_some) => {}
            _ = shutdown.cancelled() => return,
        }
        // Stops when the lease is lost (or at shutdown); the unacknowledged dead letter
        // goes back to the queue for the next holder.
        let lost = shutdown.child_token();
        let watcher = {
            let (mut held, lost) = (held.clone(), lost.clone());
            tokio::spawn(async move {
                let _ = held.wait_for(Option::is_none).await;
                lost.cancel();
            })
        };
        farm_service::retry::reconnecting("dead-letter stream lost", &lost, || dead_letters(broker, &tracker, &lost)).await;
        watcher.abort();
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// A stream of task events: a durable quorum queue bound to an exchange, and how a
/// delivery on it becomes an event.
struct Stream {
    queue: String,
    exchange: String,
    key: &'static str,
    prefetch: u16,
    tag: &'static str,
    event_of: fn(&Tracker, &lapin::message::Delivery) -> Option<TaskEvent>,
}

/// One connection's worth of dead letters, each failing its job. The dead-letter queue's
/// copies: a task the broker dead-lettered by itself (its workers died on every delivery)
/// must still fail its job; the dead queue keeps the originals for people to inspect.
async fn dead_letters(broker: &Broker, tracker: &Tracker, stop: &CancellationToken) -> anyhow::Result<()> {
    let stream = Stream {
        queue: dead_copies_queue(broker),
        exchange: broker.topology.dead_exchange(),
        key: "",
        prefetch: 8,
        tag: "coordinator-dead",
        event_of: |tracker, delivery| {
            tracker.metrics.dead_lettered.inc();
            dead_letter_event(delivery)
        },
    };
    follow(broker, tracker, &stream, stop).await
}

/// One connection's worth of the workers' task events.
async fn session(broker: &Broker, tracker: &Tracker, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let stream = Stream {
        queue: events_queue(broker),
        exchange: broker.topology.events_exchange(),
        key: "task.#",
        prefetch: 32,
        tag: "coordinator",
        event_of: |_, delivery| match serde_json::from_slice::<TaskEvent>(&delivery.data) {
            Ok(event) => Some(event),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an event that is not a task event");
                None
            }
        },
    };
    follow(broker, tracker, &stream, shutdown).await
}

/// Applies the stream's events in order, each acknowledged once applied, until `stop`.
async fn follow(broker: &Broker, tracker: &Tracker, stream: &Stream, stop: &CancellationToken) -> anyhow::Result<()> {
    let conn = Connection::connect(broker.url(), ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    declare(&channel, &broker.topology).await?;
    channel.basic_qos(stream.prefetch, BasicQosOptions::default()).await?;
    bound_quorum_queue(&channel, &stream.queue, &stream.exchange, stream.key).await?;
    let mut consumer = channel
        .basic_consume(stream.queue.as_str().into(), stream.tag.into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    loop {
        let delivery = tokio::select! {
            d = consumer.next() => d,
            _ = stop.cancelled() => return Ok(()),
        };
        let Some(delivery) = delivery else { anyhow::bail!("the broker closed the stream of {}", stream.queue) };
        let delivery = delivery?;
        if let Some(event) = (stream.event_of)(tracker, &delivery) {
            tracker.apply(&event).await?;
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
}

fn dead_copies_queue(broker: &Broker) -> String {
    format!("{}.coordinator.dead", broker.topology.prefix)
}


/// Declares a durable quorum queue bound to `exchange` with `key`.
async fn bound_quorum_queue(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    channel.queue_declare(queue.into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await?;
    channel.queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default()).await
}

/// The failure a dead-lettered task message stands for: the reason its worker gave
/// (`x-farm-error`), else the broker's delivery limit.
fn dead_letter_event(delivery: &lapin::message::Delivery) -> Option<TaskEvent> {
    let task: TaskMessage = serde_json::from_slice(&delivery.data).ok()?;
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    let text = |name: &str| match headers.inner().get(name) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    };
    let reason = text(farm_contract::task::HEADER_ERROR).unwrap_or_else(|| {
        "the task was delivered too many times without finishing: the workers that took it died or were stopped each time".into()
    });
    Some(TaskEvent {
        job_id: task.job_id,
        task_id: task.task_id,
        kind: farm_contract::task::TaskEventKind::Failed,
        frames_done: 0,
        frames_total: None,
        error: Some(reason),
    })
}
