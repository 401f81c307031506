//! Stall detection: a task whose frames stop advancing is stopped and handed back, and
//! the worker's `/healthz` says it is stuck meanwhile.
//!
//! Takes the pipeline's progress (frames done, segments written); answers how long the task
//! in hand has gone without either. Progress reports alone do not count: a stuck pipeline
//! can keep reporting the same frame count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Default for `FARM_STALL_SECONDS`: a 1080p segment takes seconds, a later chunk waits at
/// most 30 s for its job to be playable before its first frame.
pub const DEFAULT_STALL_SECONDS: u64 = 120;

/// When the task in hand last advanced.
#[derive(Debug)]
pub struct Heartbeat {
    epoch: Instant,
    last_ms: AtomicU64,
    frames: AtomicU64,
    busy: AtomicBool,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self { epoch: Instant::now(), last_ms: AtomicU64::new(0), frames: AtomicU64::new(0), busy: AtomicBool::new(false) }
    }
}

impl Heartbeat {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A task starts: the clock starts from now.
    pub fn start(&self) {
        self.frames.store(0, Ordering::Relaxed);
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.busy.store(true, Ordering::Relaxed);
    }

    pub fn stop(&self) {
        self.busy.store(false, Ordering::Relaxed);
    }

    /// The pipeline reports `done` frames; returns whether that is more than before.
    pub fn frames(&self, done: u64) -> bool {
        let advanced = self.frames.fetch_max(done, Ordering::Relaxed) < done;
        if advanced {
            self.beat();
        }
        advanced
    }

    /// Something was written (a segment): the task advances.
    pub fn beat(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long the task in hand has not advanced, if it is over `limit`.
    pub fn stalled(&self, limit: Duration) -> Option<Duration> {
        if !self.busy.load(Ordering::Relaxed) || limit.is_zero() {
            return None;
        }
        let idle = Duration::from_millis(self.now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)));
        (idle > limit).then_some(idle)
    }

    /// Resolves once the task in hand has not advanced for `limit` (checked every second).
    pub async fn stall(&self, limit: Duration) -> Duration {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(idle) = self.stalled(limit) {
                return idle;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14, defect 5: progress reports with the same frame count kept a stuck task alive.
    #[test]
    fn only_advancing_frames_count() {
        let h = Heartbeat::default();
        assert_eq!(h.stalled(Duration::from_millis(1)), None, "idle worker");
        h.start();
        assert!(h.frames(10));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!h.frames(10), "the same count again");
        assert!(h.stalled(Duration::from_millis(20)).is_some());
        assert!(h.frames(11));
        assert_eq!(h.stalled(Duration::from_millis(20)), None);
        h.stop();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(h.stalled(Duration::from_millis(20)), None);
        assert_eq!(h.stalled(Duration::ZERO), None, "0 turns the watchdog off");
    }
}
