//! The link to the queue a worker serves: RabbitMQ (a channel, deliveries) or the embedded
//! farm's in-process queue, behind one set of operations (next, ack, requeue, dead-letter).

use farm_contract::signature::HEADER_SIGNATURE;
use farm_contract::task::Priority;
use farm_queue::memory::{self as memqueue, MemoryQueue};
use farm_queue::{dead_letter, Topology};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::types::AMQPValue;
use lapin::Channel;
use std::sync::Arc;

#[derive(Clone)]
pub(crate) enum Link {
    Amqp(Channel),
    Memory(Arc<MemoryQueue>),
}

/// A task taken from the queue, to be acknowledged, requeued or dead-lettered.
pub(crate) enum Incoming {
    Amqp(Box<Delivery>),
    Memory(memqueue::Message),
}

impl Incoming {
    /// The signature header's value, if the message has one.
    pub(crate) fn signature(&self) -> Option<String> {
        let Self::Amqp(d) = self else { return None };
        d.properties.headers().as_ref()?.inner().get(HEADER_SIGNATURE).and_then(|v| match v {
            AMQPValue::LongString(s) => Some(s.to_string()),
            _ => None,
        })
    }

    /// Whether the message came over the broker, where tasks must be signed.
    pub(crate) fn is_signed(&self) -> bool {
        matches!(self, Self::Amqp(_))
    }

    pub(crate) fn data(&self) -> &[u8] {
        match self {
            Self::Amqp(d) => &d.data,
            Self::Memory(m) => &m.payload,
        }
    }

    /// 1 on the first delivery; quorum queues count earlier returns in `x-delivery-count`.
    pub(crate) fn attempt(&self) -> u32 {
        match self {
            Self::Memory(m) => m.deliveries,
            Self::Amqp(d) => {
                let count = d.properties.headers().as_ref().and_then(|h| {
                    h.inner().get("x-delivery-count").and_then(|v| match v {
                        AMQPValue::LongLongInt(n) => Some(*n),
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
    pub(crate) async fn next(&self, topology: &Topology) -> anyhow::Result<Option<Incoming>> {
        match self {
            Self::Memory(q) => Ok(q.take().map(Incoming::Memory)),
            Self::Amqp(channel) => {
                for priority in [Priority::High, Priority::Normal] {
                    let queue = topology.queue(priority);
                    if let Some(message) = channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await? {
                        return Ok(Some(Incoming::Amqp(Box::new(message.delivery))));
                    }
                }
                Ok(None)
            }
        }
    }

    pub(crate) async fn ack(&self, incoming: Incoming) -> anyhow::Result<()> {
        if let Incoming::Amqp(d) = incoming {
            d.ack(BasicAckOptions::default()).await?;
        }
        Ok(())
    }

    pub(crate) async fn requeue(&self, incoming: Incoming) -> anyhow::Result<()> {
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
    pub(crate) async fn dead_letter(&self, topology: &Topology, incoming: Incoming, reason: &str, job: &str) -> anyhow::Result<()> {
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

