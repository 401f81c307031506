//! What every farm binary does at start and stop.
//!
//! - [`logging`]: plain text on a terminal, no colour codes in files, JSON for Kubernetes;
//! - [`shutdown`]: the first SIGTERM or Ctrl-C starts a graceful stop, a second exits at once;
//! - [`retry`]: the one backoff for reconnecting loops (broker sessions, event streams);
//! - [`secret`]: constant-time comparison of presented secrets;
//! - [`report`]: an error with its causes, on one line.

pub mod logging;
pub mod report;
pub mod retry;
pub mod secret;
pub mod shutdown;
