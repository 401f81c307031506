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

/// One connection's worth of dead letters, each failing its job.
async fn dead_letters(broker: &Broker, tracker: &Tracker, stop: &CancellationToken) -> anyhow::Result<()> {
    let conn = Connection::connect(broker.url(), ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    declare(&channel, &broker.topology).await?;
    channel.basic_qos(8, BasicQosOptions::default()).await?;
    // A copy of every dead letter: a task the broker dead-lettered by itself (its workers
    // died on every delivery) must still fail its job. The dead queue keeps the originals
    // for people to inspect.
    let dead = dead_copies_queue(broker);
    bound_quorum_queue(&channel, &dead, &broker.topology.dead_exchange(), "").await?;
    let mut dead_letters = channel
        .basic_consume(dead.as_str().into(), "coordinator-dead".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    loop {
        let delivery = tokio::select! {
            d = dead_letters.next() => d,
            _ = stop.cancelled() => return Ok(()),
        };
        let Some(delivery) = delivery else { anyhow::bail!("the broker closed the dead-letter stream") };
        let delivery = delivery?;
        tracker.metrics.dead_lettered.inc();
        if let Some(event) = dead_letter_event(&delivery) {
            tracker.apply(&event).await?;
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
}

/// One connection's worth of events and dead letters, applied in order.
async fn session(broker: &Broker, tracker: &Tracker, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let conn = Connection::connect(broker.url(), ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        declare(&channel, &broker.topology).await?;
        channel.basic_qos(32, BasicQosOptions::default()).await?;
        let queue = events_queue(broker);
        bound_quorum_queue(&channel, &queue, &broker.topology.events_exchange(), "task.#").await?;
        let mut consumer = channel
            .basic_consume(queue.as_str().into(), "coordinator".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        loop {
            let delivery = tokio::select! {
                d = consumer.next() => d,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let Some(delivery) = delivery else { anyhow::bail!("the broker closed the event stream") };
            let delivery = delivery?;
            match serde_json::from_slice::<TaskEvent>(&delivery.data) {
                Ok(event) => tracker.apply(&event).await?,
                Err(e) => tracing::warn!(error = %e, "ignoring an event that is not a task event"),
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
