//! A later chunk's wait until its job is playable, on machines where it would compete with
//! the job's first chunk.
//!
//! Review starts when the first segment of every rendition exists, and the job's first
//! chunk alone makes them. A second worker on the same machine that starts the next chunk
//! at once takes CPU from it (its decoding, and the object store serving its reads, even
//! at a lower priority): measured on one 2-core machine with SeaweedFS, a 300 s source
//! (several chunks) became playable 0.3 s later than a 30 s one (one chunk), about a tenth.
//!
//! So the task of a job's first chunk leaves a marker when it starts, saying where it runs
//! (host and CPUs), and a later chunk's task that shares those CPUs waits before it starts
//! until the master playlist exists, at most `limit`. A worker on other CPUs or another
//! machine (a cluster, pods, or workers pinned to cores) never waits; a lone worker takes
//! the first chunk first, so it waits at most for the coordinator to write the master
//! playlist after that chunk's first segments.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use farm_storage::Sink;

/// 30 s: a first segment of 1080p takes a few seconds on a 2-core machine.
pub const DEFAULT_HOLD_SECONDS: u64 = 30;

/// Left in a job's output by the task of its first chunk when it starts.
pub use farm_contract::task::FIRST_CHUNK_STARTED;

/// How long a later chunk looks for the first chunk's marker: both tasks are handed out
/// at once, and the first one's worker writes it as it starts.
const MARKER_WAIT: Duration = Duration::from_secs(2);

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
    // SAFETY: cpu_set_t is plain data for which all zeros is the empty set; the kernel writes
    // at most its size into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above: `set` is ours and of the size passed.
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return Vec::new();
    }
    // SAFETY: `c` stays below CPU_SETSIZE, the set's capacity.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

/// Called by the task of a job's first chunk as it starts.
pub fn mark_first_chunk(sink: &dyn Sink) {
    let marker = serde_json::to_vec(&Placement::here()).expect("placement serialises");
    if let Err(e) = sink.put(FIRST_CHUNK_STARTED, &marker) {
        tracing::warn!(error = %e, "could not mark the first chunk as started");
    }
}

/// Where a later chunk's task waits before it starts.
pub struct PlayableGate<'a> {
    pub sink: &'a dyn Sink,
    pub cancel: &'a AtomicBool,
    pub limit: Duration,
}

impl PlayableGate<'_> {
    /// Returns once the job is playable, after `limit`, on cancellation, or at once when
    /// the first chunk does not run on these CPUs.
    pub fn wait(&self) {
        let started = Instant::now();
        let playable = || self.sink.get(farm_hls::MASTER).is_ok();
        let stop = |bound: Duration| started.elapsed() >= bound.min(self.limit) || self.cancel.load(Ordering::SeqCst);
        let first: Placement = loop {
            if playable() || stop(MARKER_WAIT) {
                return;
            }
            if let Some(p) = self.sink.get(FIRST_CHUNK_STARTED).ok().and_then(|m| serde_json::from_slice(&m).ok()) {
                break p;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !Placement::here().shares_cpus_with(&first) {
            return;
        }
        while !stop(self.limit) {
            if playable() {
                tracing::info!(waited = ?started.elapsed(), "job playable: chunk goes on");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::info!(waited = ?started.elapsed(), "chunk goes on before the job is playable");
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
