//! The queue topology: exchange and queue names under one prefix, and their declaration.
//!
//! Coordinator and workers declare the same topology (idempotent), so either may start
//! first: a direct tasks exchange with a quorum queue per priority (delivery limit,
//! dead-lettering at least once, publishes refused when full), a fanout dead-letter
//! exchange with its queue, and a topic exchange for events. The coordinator alone declares
//! the job requests' exchange and queues ([`declare_submissions`]).

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
    /// Direct exchange an ingest pipeline publishes job requests to (routing key
    /// [`SUBMIT_KEY`]).
    pub fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.prefix)
    }
    /// The coordinators' queue of job requests.
    pub fn submit_queue(&self) -> String {
        format!("{}.jobs.submit", self.prefix)
    }
    /// Fanout exchange and queue of refused job requests: apart from the tasks' dead
    /// letters, each of which fails a job.
    pub fn jobs_dead_exchange(&self) -> String {
        format!("{}.jobs.dead", self.prefix)
    }
    pub fn jobs_dead_queue(&self) -> String {
        format!("{}.jobs.dead", self.prefix)
    }
}

/// The routing key of a job request on [`Topology::jobs_exchange`].
pub const SUBMIT_KEY: &str = "submit";

/// Deliveries of one job request before the broker dead-letters it by itself (a request
/// the coordinator keeps failing on, or dies on); the coordinator gives up with the reason
/// a few deliveries earlier.
pub const SUBMIT_DELIVERY_LIMIT: u32 = 20;

pub fn routing_key(priority: Priority) -> &'static str {
    match priority {
        Priority::High => "high",
        Priority::Normal => "normal",
    }
}

/// Declares exchanges and queues (idempotent; the coordinator declares the same).
pub async fn declare(channel: &Channel, topology: &Topology) -> lapin::Result<()> {
    exchange(channel, &topology.tasks_exchange(), ExchangeKind::Direct).await?;
    exchange(channel, &topology.dead_exchange(), ExchangeKind::Fanout).await?;
    exchange(channel, &topology.events_exchange(), ExchangeKind::Topic).await?;
    quorum_queue(channel, &topology.dead_queue(), FieldTable::default(), &topology.dead_exchange(), "").await?;
    for priority in [Priority::High, Priority::Normal] {
        let mut args = FieldTable::default();
        // A task that keeps failing (or killing its worker) is dead-lettered, not looped.
        dead_letters_to(&mut args, &topology.dead_exchange(), MAX_ATTEMPTS);
        quorum_queue(channel, &topology.queue(priority), args, &topology.tasks_exchange(), routing_key(priority)).await?;
    }
    Ok(())
}

/// Declares the job requests' exchange, their queue and the queue of refused ones
/// (idempotent; with [`declare`]'s events exchange, which answers go to).
pub async fn declare_submissions(channel: &Channel, topology: &Topology) -> lapin::Result<()> {
    declare(channel, topology).await?;
    exchange(channel, &topology.jobs_exchange(), ExchangeKind::Direct).await?;
    exchange(channel, &topology.jobs_dead_exchange(), ExchangeKind::Fanout).await?;
    let dead = topology.jobs_dead_queue();
    quorum_queue(channel, &dead, FieldTable::default(), &topology.jobs_dead_exchange(), "").await?;
    let mut args = FieldTable::default();
    dead_letters_to(&mut args, &topology.jobs_dead_exchange(), SUBMIT_DELIVERY_LIMIT);
    quorum_queue(channel, &topology.submit_queue(), args, &topology.jobs_exchange(), SUBMIT_KEY).await
}

async fn exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(name.into(), kind, durable, FieldTable::default()).await
}

/// A queue's delivery limit and dead-letter exchange: dead-lettered at least once, and
/// publishes refused when it is full (what at-least-once dead-lettering needs).
fn dead_letters_to(args: &mut FieldTable, exchange: &str, limit: u32) {
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(limit as i32));
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(exchange.into()));
    args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
    args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
}

/// A durable quorum queue with `args`, bound to `exchange` with `key`.
async fn quorum_queue(channel: &Channel, queue: &str, mut args: FieldTable, exchange: &str, key: &str) -> lapin::Result<()> {
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    channel.queue_declare(queue.into(), durable, args).await?;
    channel.queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default()).await
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
        assert_eq!((t.jobs_exchange(), SUBMIT_KEY), ("farm.jobs".to_string(), "submit"));
        assert_eq!(t.submit_queue(), "farm.jobs.submit");
        assert_ne!(t.jobs_dead_exchange(), t.dead_exchange());
    }
}
