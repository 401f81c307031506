//! A task's outcome decides what happens to its message, in one place.
//!
//! Success: ack. Trouble that may pass (storage or network, a worker shutting down):
//! requeue; the quorum queue's delivery limit dead-letters a task that keeps failing.
//! A permanent problem (the source is missing, damaged or unsupported, the task message is
//! invalid): dead-letter at once with the reason in the message headers, no retry storm.
//! Trouble that persists: the attempt that fails for the [`MAX_ATTEMPTS`]th time
//! dead-letters the task with the last reason instead of requeueing it, so the job fails
//! with a message. (The queue's own delivery limit, one above, only catches tasks whose
//! worker dies every time and cannot say why; the coordinator fails their job.)

use farm_media::TranscodeError;
pub use farm_contract::task::MAX_ATTEMPTS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    Requeue { reason: String },
    DeadLetter { reason: String },
}

/// What to do with a task after its `attempt`th run (1 for the first delivery).
pub fn decide(outcome: &Result<(), TranscodeError>, attempt: u32) -> Disposition {
    match outcome {
        Ok(()) => Disposition::Ack,
        Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => Disposition::Requeue { reason: reason(e) },
        Err(e) if e.is_retryable() => {
            Disposition::DeadLetter { reason: format!("gave up after {attempt} attempts: {}", reason(e)) }
        }
        Err(e) => Disposition::DeadLetter { reason: reason(e) },
    }
}

/// The error with its causes (a storage error names the object and what the server said).
fn reason(e: &TranscodeError) -> String {
    farm_service::report::with_causes(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_ack_requeue_or_dead_letter() {
        assert_eq!(decide(&Ok(()), 1), Disposition::Ack);
        let missing = TranscodeError::SourceMissing("s3://b/k.mov".into());
        assert_eq!(
            decide(&Err(missing), 1),
            Disposition::DeadLetter { reason: "source s3://b/k.mov does not exist".into() }
        );
        let refused = || {
            let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
            Err(TranscodeError::Output { key: "v0/seg_00001.ts".into(), source: io })
        };
        assert_eq!(
            decide(&refused(), 1),
            Disposition::Requeue { reason: "cannot write v0/seg_00001.ts: connection refused".into() }
        );
        assert!(matches!(decide(&Err(TranscodeError::Cancelled), 2), Disposition::Requeue { .. }));
    }

    #[test]
    fn a_retryable_failure_on_the_last_attempt_is_dead_lettered_with_its_reason() {
        let refused = || {
            let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
            Err(TranscodeError::Output { key: "k".into(), source: io })
        };
        assert!(matches!(decide(&refused(), MAX_ATTEMPTS - 1), Disposition::Requeue { .. }));
        assert_eq!(
            decide(&refused(), MAX_ATTEMPTS),
            Disposition::DeadLetter { reason: format!("gave up after {MAX_ATTEMPTS} attempts: cannot write k: connection refused") }
        );
        let late = TranscodeError::Deadline { seconds: 1500 };
        assert!(matches!(decide(&Err(late), MAX_ATTEMPTS), Disposition::DeadLetter { reason } if reason.contains("1500 s deadline")));
    }
}
