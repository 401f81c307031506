//! The embedded farm's in-process queue: RabbitMQ's semantics that the farm relies on
//! (rush queue first, requeue with a delivery limit, dead letters with a reason, task
//! events to the coordinator), in memory, for the zero-setup all-in-one mode. The
//! distributed farm and its tests use the real RabbitMQ.

use std::collections::VecDeque;
use std::sync::Mutex;

use farm_contract::task::Priority;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Deliveries after which a task that keeps failing is dead-lettered (as `x-delivery-limit`).
pub const DELIVERY_LIMIT: u32 = farm_contract::task::MAX_ATTEMPTS;

#[derive(Debug, Clone)]
pub struct Message {
    pub payload: Vec<u8>,
    pub priority: Priority,
    pub deliveries: u32,
}

#[derive(Default)]
struct Queues {
    high: VecDeque<Message>,
    normal: VecDeque<Message>,
    dead: Vec<(Vec<u8>, String)>,
}

/// A task event as published: its routing key and its body.
pub type Event = (String, Vec<u8>);

pub struct MemoryQueue {
    queues: Mutex<Queues>,
    events_tx: UnboundedSender<Event>,
    events_rx: Mutex<Option<UnboundedReceiver<Event>>>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        let (events_tx, events_rx) = unbounded_channel();
        Self { queues: Mutex::default(), events_tx, events_rx: Mutex::new(Some(events_rx)) }
    }
}

impl MemoryQueue {
    pub fn publish(&self, priority: Priority, payload: Vec<u8>) {
        let mut q = self.queues.lock().expect("queue lock");
        let m = Message { payload, priority, deliveries: 0 };
        match priority {
            Priority::High => q.high.push_back(m),
            Priority::Normal => q.normal.push_back(m),
        }
    }

    /// The next task, rush queue first.
    pub fn take(&self) -> Option<Message> {
        let mut q = self.queues.lock().expect("queue lock");
        let mut m = q.high.pop_front().or_else(|| q.normal.pop_front())?;
        m.deliveries += 1;
        Some(m)
    }

    /// Hands a task back to the head of its queue, or dead-letters it past the limit.
    pub fn requeue(&self, m: Message) {
        if m.deliveries >= DELIVERY_LIMIT {
            let reason = format!("delivery limit of {DELIVERY_LIMIT} reached");
            self.dead_letter(m.payload, &reason);
            return;
        }
        let mut q = self.queues.lock().expect("queue lock");
        match m.priority {
            Priority::High => q.high.push_front(m),
            Priority::Normal => q.normal.push_front(m),
        }
    }

    pub fn dead_letter(&self, payload: Vec<u8>, reason: &str) {
        self.queues.lock().expect("queue lock").dead.push((payload, reason.to_string()));
    }

    pub fn dead(&self) -> Vec<(Vec<u8>, String)> {
        self.queues.lock().expect("queue lock").dead.clone()
    }

    /// Ready tasks in both queues.
    pub fn depth(&self) -> usize {
        let q = self.queues.lock().expect("queue lock");
        q.high.len() + q.normal.len()
    }

    pub fn event(&self, routing_key: &str, payload: Vec<u8>) {
        let _ = self.events_tx.send((routing_key.to_string(), payload));
    }

    /// The event stream; one reader (the coordinator) takes it.
    pub fn take_events(&self) -> Option<UnboundedReceiver<Event>> {
        self.events_rx.lock().expect("events lock").take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rush_tasks_first_then_in_order() {
        let q = MemoryQueue::default();
        q.publish(Priority::Normal, b"n1".to_vec());
        q.publish(Priority::Normal, b"n2".to_vec());
        q.publish(Priority::High, b"h1".to_vec());
        let order: Vec<Vec<u8>> = std::iter::from_fn(|| q.take().map(|m| m.payload)).collect();
        assert_eq!(order, vec![b"h1".to_vec(), b"n1".to_vec(), b"n2".to_vec()]);
        assert_eq!(q.depth(), 0);
    }

    #[test]
    fn a_task_that_keeps_failing_is_dead_lettered_after_the_limit() {
        let q = MemoryQueue::default();
        q.publish(Priority::Normal, b"poison".to_vec());
        q.publish(Priority::Normal, b"next".to_vec());
        for attempt in 1..=DELIVERY_LIMIT {
            let m = q.take().unwrap();
            assert_eq!((m.payload.as_slice(), m.deliveries), (&b"poison"[..], attempt), "requeued to the head");
            q.requeue(m);
        }
        assert_eq!(q.take().unwrap().payload, b"next");
        let dead = q.dead();
        assert_eq!(dead.len(), 1);
        assert!(dead[0].1.contains("delivery limit"));
    }

    #[test]
    fn events_reach_the_one_reader() {
        let q = MemoryQueue::default();
        let mut rx = q.take_events().unwrap();
        assert!(q.take_events().is_none());
        q.event("task.started", b"{}".to_vec());
        assert_eq!(rx.try_recv().unwrap().0, "task.started");
    }
}
