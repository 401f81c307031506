//! The transcoding worker of the HLS review farm.
//!
//! Data flow of one task, one module per stage:
//! - [`consume`]: take tasks from RabbitMQ (rush queue first) or the embedded farm's
//!   in-process queue, run them, [`ack`] the outcome;
//! - [`admit`]: verify the coordinator's signature and the allow-lists before running anything;
//! - [`run`]: the task on its own thread, stopped on a stall, its deadline or a drain;
//!   [`events`]: `task.*` events and progress for the coordinator;
//! - [`fence`]: each attempt claims its task's output as it starts; an earlier attempt
//!   still running (a frozen worker thawed) has its writes refused from then on, and a
//!   task done is not run again;
//! - [`hold`]: a later chunk waits until its job is playable when it shares CPUs with the first;
//! - the task itself runs in `farm_media::job` (open the source, transcode, part manifest),
//!   writing through `farm_storage`'s sinks;
//! - [`watchdog`]: a task whose frames stop advancing is stopped, `/healthz` says so;
//! - [`metrics`]: the worker's Prometheus metrics and its `/metrics` + `/healthz` endpoint.

pub mod ack;
pub mod admit;
pub mod consume;
pub mod events;
pub mod fence;
pub mod hold;
pub mod link;
pub mod metrics;
pub mod run;
pub mod serve_config;
pub mod watchdog;
