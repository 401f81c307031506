//! The queue topology: exchange and queue names under one prefix, and their declaration.
//!
//! Coordinator and workers declare the same topology (idempotent), so either may start
//! first: a direct tasks exchange with a quorum queue per priority (delivery limit,
//! dead-lettering at least once, publishes refused when full), a fanout dead-letter
//! exchange with its queue, and a topic exchange for events.

use farm_contract::task::{Priority, MAX_ATTEMPTS};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// Exchange and queue names under one prefix, so that several farms (or tests) can share
/// a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
}

impl Topology {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.into() }
    }
    /// Direct exchange the coordinator publishes tasks to, routing key = priority.
    pub fn tasks_exchange(&self) -> String {
        format!("{}.tasks", self.prefix)
    }
    /// Quorum queues have no priorities: rush work has its own queue, drained first.
    pub fn queue(&self, priority: Priority) -> String {
        format!("{}.tasks.{}", self.prefix, routing_key(priority))
    }
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub fn dead_queue(&self) -> String {
        format!("{}.tasks.dead", self.prefix)
    }
    /// Topic exchange for job and task events.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }
}

pub fn routing_key(priority: Priority) -> &'static str {
    match priority {
        Priority::High => "high",
        Priority::Normal => "normal",
    }
}

/// Declares exchanges and queues (idempotent; the coordinator declares the same).
pub async fn declare(channel: &Channel, topology: &Topology) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    let queue_opts = QueueDeclareOptions { durable: true, ..Default::default() };
    channel
        .exchange_declare(topology.tasks_exchange().as_str().into(), ExchangeKind::Direct, durable, FieldTable::default())
        .await?;
    channel
        .exchange_declare(topology.dead_exchange().as_str().into(), ExchangeKind::Fanout, durable, FieldTable::default())
        .await?;
    channel
        .exchange_declare(topology.events_exchange().as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await?;
    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    channel.queue_declare(topology.dead_queue().as_str().into(), queue_opts, dead_args).await?;
    channel
        .queue_bind(
            topology.dead_queue().as_str().into(),
            topology.dead_exchange().as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for priority in [Priority::High, Priority::Normal] {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        // A task that keeps failing (or killing its worker) is dead-lettered, not looped.
        args.insert("x-delivery-limit".into(), AMQPValue::LongInt(MAX_ATTEMPTS as i32));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(topology.dead_exchange().into()));
        args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
        args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
        let queue = topology.queue(priority);
        channel.queue_declare(queue.as_str().into(), queue_opts, args).await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                topology.tasks_exchange().as_str().into(),
                routing_key(priority).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_a_prefix() {
        let t = Topology::new("farm");
        assert_eq!(t.queue(Priority::High), "farm.tasks.high");
        assert_eq!(t.queue(Priority::Normal), "farm.tasks.normal");
        assert_eq!(t.dead_queue(), "farm.tasks.dead");
    }
}
