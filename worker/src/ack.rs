//! A task's outcome decides what happens to its message, in one place.
//!
//! Success: ack. Trouble that may pass (storage or network, a worker shutting down):
//! requeue; the quorum queue's delivery limit dead-letters a task that keeps failing.
//! A permanent problem (the source is missing, damaged or unsupported, the task message is
//! invalid): dead-letter at once with the reason in the message headers, no retry storm.

use crate::error::TranscodeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    Requeue { reason: String },
    DeadLetter { reason: String },
}

pub fn decide(outcome: &Result<(), TranscodeError>) -> Disposition {
    match outcome {
        Ok(()) => Disposition::Ack,
        Err(e) if e.is_retryable() => Disposition::Requeue { reason: e.to_string() },
        Err(e) => Disposition::DeadLetter { reason: e.to_string() },
    }
}

/// Header names on dead-lettered task messages.
pub const HEADER_ERROR: &str = "x-farm-error";
pub const HEADER_JOB: &str = "x-farm-job";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_ack_requeue_or_dead_letter() {
        assert_eq!(decide(&Ok(())), Disposition::Ack);
        let missing = TranscodeError::SourceMissing("s3://b/k.mov".into());
        assert_eq!(
            decide(&Err(missing)),
            Disposition::DeadLetter { reason: "source s3://b/k.mov does not exist".into() }
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(
            decide(&Err(TranscodeError::Output { key: "a".into(), source: io })),
            Disposition::Requeue { .. }
        ));
        assert!(matches!(decide(&Err(TranscodeError::Cancelled)), Disposition::Requeue { .. }));
    }
}
