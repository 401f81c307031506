//! The farm's queues: topology, confirmed publishing, dead-lettering, and the embedded
//! farm's in-process queue.
//!
//! - [`topology`]: exchange and queue names under one prefix, and their declaration;
//! - [`publish`]: confirmed publish for tasks, events and dead letters;
//! - [`memory`]: the embedded farm's in-process queue (rush first, delivery limit).

pub mod memory;
pub mod publish;
pub mod topology;

pub use memory::MemoryQueue;
pub use publish::{dead_letter, dead_letter_request, publish_confirmed, PublishError};
pub use topology::{declare, declare_submissions, routing_key, Topology, SUBMIT_DELIVERY_LIMIT, SUBMIT_KEY};
