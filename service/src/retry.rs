//! Backoff for loops that reconnect: doubling from 0.5 s to at most 30 s, back to the start
//! after a session that lasted (so a flapping broker is not hammered, a recovered one is
//! rejoined at once next time); [`reconnecting`] is such a loop.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Runs `session` again and again until one ends cleanly or `shutdown` is cancelled; after
/// each error logs `lost` with the error and waits the backoff (cut short by shutdown).
pub async fn reconnecting<F, Fut, E>(lost: &'static str, shutdown: &CancellationToken, mut session: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        let started = Instant::now();
        let Err(error) = session().await else { return };
        let wait = backoff.next(started);
        tracing::warn!(error = format!("{error:#}"), retry_in = ?wait, "{lost}");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, next: initial }
    }

    /// The wait before the next attempt; a session that ran for longer than `max` since
    /// `started` counts as a success, and the wait starts over.
    pub fn next(&mut self, started: Instant) -> Duration {
        if started.elapsed() > self.max {
            self.next = self.initial;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_bound_and_starts_over_after_a_long_session() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let now = Instant::now();
        let waits: Vec<u64> = (0..6).map(|_| b.next(now).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 4000, 4000]);
        let long_ago = now - Duration::from_secs(5);
        assert_eq!(b.next(long_ago), Duration::from_millis(500));
    }
}
