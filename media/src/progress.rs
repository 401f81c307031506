//! Progress of long work: a bar on a terminal, plain log lines otherwise.
//!
//! The pipeline reports frames done (slowest rendition) a few times a second and every
//! segment it writes; a [`Progress`] decides what to show. The farm's workers will report
//! to the coordinator through the same trait.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use farm_contract::manifest::SegmentRecord;
use indicatif::{ProgressBar, ProgressStyle};

pub trait Progress: Sync {
    /// `done` frames of `total` (an estimate, when the container states one).
    fn frames(&self, done: u64, total: Option<u64>);
    fn segment(&self, _record: &SegmentRecord) {}
    fn finish(&self) {}
}

/// A progress bar (frames, %, fps, ETA) when stderr is a terminal; otherwise a log line
/// every `interval`.
pub struct Console {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Mutex<Option<Instant>>,
    interval: Duration,
}

impl Console {
    pub fn new(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} frames {percent}% {fps} ETA {eta}",
                )
                .expect("valid template")
                .with_key("fps", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1} fps", state.per_sec());
                })
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar
        });
        Self { bar, started: Instant::now(), last_line: Mutex::new(None), interval: Duration::from_secs(5) }
    }
}

impl Progress for Console {
    fn frames(&self, done: u64, total: Option<u64>) {
        if let Some(bar) = &self.bar {
            if let Some(total) = total {
                bar.set_length(total.max(done));
            }
            bar.set_position(done);
            return;
        }
        let mut last = self.last_line.lock().expect("progress lock");
        if last.is_some_and(|t| t.elapsed() < self.interval) {
            return;
        }
        *last = Some(Instant::now());
        let elapsed = self.started.elapsed().as_secs_f64();
        let fps = if elapsed > 0.0 { done as f64 / elapsed } else { 0.0 };
        match total {
            Some(total) if total > 0 => {
                let pct = 100.0 * done as f64 / total as f64;
                let eta = eta_seconds(done, total, self.started.elapsed())
                    .map_or_else(|| "unknown".to_string(), |s| format!("{s:.0} s"));
                tracing::info!(done, total, fps = format!("{fps:.1}"), "progress {pct:.1}%, eta {eta}");
            }
            _ => tracing::info!(done, fps = format!("{fps:.1}"), "progress"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Estimated seconds left at the rate seen so far.
pub fn eta_seconds(done: u64, total: u64, elapsed: Duration) -> Option<f64> {
    if done == 0 || total <= done {
        return (total <= done).then_some(0.0);
    }
    Some(elapsed.as_secs_f64() * (total - done) as f64 / done as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_scales_with_work_left() {
        assert_eq!(eta_seconds(0, 100, Duration::from_secs(5)), None);
        assert_eq!(eta_seconds(50, 100, Duration::from_secs(10)), Some(10.0));
        assert_eq!(eta_seconds(100, 100, Duration::from_secs(10)), Some(0.0));
    }
}
