//! Helpers for the end-to-end tests and benchmarks: generated sources, the real worker
//! binary, and independent checks of HLS output with `ffprobe`.

pub mod amqp;
pub mod corpus;
pub mod farm;
pub mod fixtures;
pub mod hls;
pub mod keys;
pub mod keystone;
pub mod leak;
pub mod picture;
pub mod probe;
pub mod s3;
pub mod sound;
pub mod services;
pub mod worker;
