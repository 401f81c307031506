//! The worker's error type. Which errors are worth retrying is decided here, once.

use farm_contract::ladder::LadderError;

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("cannot read source {path}")]
    SourceIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("source {0} does not exist")]
    SourceMissing(String),
    #[error("source {0} is empty (0 bytes)")]
    EmptySource(String),
    #[error("source {path} is not a media file this farm accepts: {detail}")]
    NotMedia { path: String, detail: String },
    #[error("source {0} has no video stream")]
    NoVideo(String),
    #[error("source {path} is not supported: {detail}")]
    Unsupported { path: String, detail: String },
    #[error("source {path} is damaged: {detail}")]
    Damaged { path: String, detail: String },
    #[error("{stage} failed for rendition {rendition}: {message}")]
    Ffmpeg { stage: &'static str, rendition: String, message: String },
    #[error("cannot read the LUT {path}")]
    LutIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not the LUT the job was checked with (changed since), or not a LUT at all.
    #[error("LUT {path}: {detail}")]
    Lut { path: String, detail: String },
    #[error("cannot prepare the picture chain: {0}")]
    Picture(String),
    /// The task's content keys do not cover what it writes, or are malformed: a retry
    /// carries the same keys, so it fails for good.
    #[error("the task's content keys: {0}")]
    Keys(String),
    #[error("cannot write {key}")]
    Output {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot assemble playlists: {0}")]
    Assemble(String),
    #[error("invalid ladder: {0}")]
    Ladder(#[from] LadderError),
    #[error("invalid range: {0}")]
    Range(String),
    #[error("cancelled")]
    Cancelled,
    /// A pipeline thread panicked: a bug or a corrupt frame; another worker may get past it.
    #[error("the {stage} stage crashed: {message}")]
    Panicked { stage: String, message: String },
    /// No frame advanced for this long: the task was stopped and handed back.
    #[error("no frame was encoded for {seconds} s: the task was stopped as stalled")]
    Stalled { seconds: u64 },
    #[error("the task ran past its {seconds} s deadline and was stopped")]
    Deadline { seconds: u64 },
}

impl TranscodeError {
    /// Network and storage trouble may pass; a bad source or a bad request will not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::SourceIo { .. } | Self::LutIo { .. } | Self::Output { .. } | Self::Cancelled | Self::Deadline { .. } | Self::Panicked { .. } | Self::Stalled { .. }
        )
    }

    pub fn ffmpeg(stage: &'static str, rendition: &str, err: impl std::fmt::Display) -> Self {
        Self::Ffmpeg { stage, rendition: rendition.into(), message: err.to_string() }
    }
}

impl TranscodeError {
    /// A thread's panic payload as an error of `stage`.
    pub fn panicked(stage: &str, payload: Box<dyn std::any::Any + Send>) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Self::Panicked { stage: stage.into(), message }
    }
}

pub type Result<T, E = TranscodeError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retryable() {
        let io = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(TranscodeError::SourceIo { path: "a".into(), source: io() }.is_retryable());
        assert!(TranscodeError::Output { key: "k".into(), source: io() }.is_retryable());
        assert!(!TranscodeError::EmptySource("a".into()).is_retryable());
        assert!(!TranscodeError::SourceMissing("s3://b/k".into()).is_retryable());
        assert!(!TranscodeError::NoVideo("a".into()).is_retryable());
        assert!(!TranscodeError::Damaged { path: "a".into(), detail: "x".into() }.is_retryable());
        assert!(!TranscodeError::Keys("no content key for key period 3".into()).is_retryable(), "a retry carries the same keys");
    }
}
