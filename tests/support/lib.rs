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

/// Takes `lock`, the turn of tests that must not overlap: a test that failed holding it
/// poisons it, and the next one still takes its turn.
pub fn turn(lock: &'static std::sync::Mutex<()>) -> std::sync::MutexGuard<'static, ()> {
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
