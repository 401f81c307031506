//! The audio task's pause until a job is playable, on machines where it would compete with
//! the first video chunk.
//!
//! Review starts when the first segment of every rendition exists. After its first segment
//! the audio task has done its share of that, and the rest of the audio is not needed until
//! the video chunks catch up, minutes later. Going on at once, it reads the rest of the
//! original's audio (thousands of small ranged GETs for PCM between video frames, or the
//! whole file) while the first video chunk encodes. Measured on one 2-core machine with
//! SeaweedFS, that made a 300 s source playable 6 to 9 s later than a 30 s one.
//!
//! So the task of a job's first video chunk leaves a marker when it starts, saying where it
//! runs (host and CPUs), and an audio task that shares those CPUs waits after its first
//! segment until the master playlist exists, at most `limit`. A worker on other CPUs or
//! another machine (a cluster, or workers pinned to cores) never waits, nor does a lone
//! worker that took the audio before anyone took the first chunk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sink::Sink;

/// 30 s: a first video segment of 1080p takes 10 to 15 s on a 2-core machine.
pub const DEFAULT_AUDIO_HOLD_SECONDS: u64 = 30;

/// Left in a job's output by the task of its first video chunk when it starts.
pub const FIRST_VIDEO_STARTED: &str = "parts/first-video.started";

/// Where a task runs: the host and the CPUs it may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub host: String,
    pub cpus: Vec<usize>,
}

impl Placement {
    /// This thread's placement.
    pub fn here() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Self { host, cpus: allowed_cpus() }
    }

    /// Whether work placed here and there takes CPU time from each other.
    pub fn shares_cpus_with(&self, other: &Placement) -> bool {
        self.host == other.host && self.cpus.iter().any(|c| other.cpus.contains(c))
    }
}

fn allowed_cpus() -> Vec<usize> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

/// Called by the task of a job's first video chunk as it starts.
pub fn mark_first_video(sink: &dyn Sink) {
    let marker = serde_json::to_vec(&Placement::here()).expect("placement serialises");
    if let Err(e) = sink.put(FIRST_VIDEO_STARTED, &marker) {
        tracing::warn!(error = %e, "could not mark the first video chunk as started");
    }
}

/// Where an audio task waits after its first segment.
pub struct PlayableGate<'a> {
    pub sink: &'a dyn Sink,
    pub cancel: &'a AtomicBool,
    pub limit: Duration,
}

impl PlayableGate<'_> {
    /// Returns once the job is playable, after `limit`, on cancellation, or at once when
    /// no task on these CPUs has the first video chunk.
    pub fn wait(&self) {
        let first_video: Option<Placement> =
            self.sink.get(FIRST_VIDEO_STARTED).ok().and_then(|m| serde_json::from_slice(&m).ok());
        match first_video {
            Some(there) if Placement::here().shares_cpus_with(&there) => {}
            _ => return,
        }
        let started = Instant::now();
        while started.elapsed() < self.limit && !self.cancel.load(Ordering::SeqCst) {
            if self.sink.get(crate::playlist::MASTER).is_ok() {
                tracing::info!(waited = ?started.elapsed(), "job playable: audio goes on");
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        tracing::info!(waited = ?started.elapsed(), "audio goes on before the job is playable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_work_on_the_same_cpus_of_the_same_host_competes() {
        let at = |host: &str, cpus: &[usize]| Placement { host: host.into(), cpus: cpus.to_vec() };
        assert!(at("a", &[0, 1]).shares_cpus_with(&at("a", &[1])));
        assert!(!at("a", &[0]).shares_cpus_with(&at("a", &[1])), "pinned to other cores");
        assert!(!at("a", &[0, 1]).shares_cpus_with(&at("b", &[0, 1])), "another machine or pod");
        let here = Placement::here();
        assert!(!here.cpus.is_empty() && here.shares_cpus_with(&here), "{here:?}");
    }
}
