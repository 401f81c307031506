//! Task signatures: whoever can publish to the broker cannot make a worker obey.
//!
//! The coordinator signs each task message's bytes with HMAC-SHA256 under a key both it
//! and the workers are configured with (`FARM_TASK_KEY_FILE`); the signature travels in
//! the [`HEADER_SIGNATURE`] header as `v1=<hex>`. A worker verifies it before it parses
//! the message: an unsigned or altered task is dead-lettered with the reason.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::{Secret, ShortSecret};

/// The message header carrying the signature.
pub const HEADER_SIGNATURE: &str = "x-farm-signature";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the task carries no signature ({HEADER_SIGNATURE} header)")]
    Missing,
    #[error("the task's signature is malformed")]
    Malformed,
    #[error("the task's signature does not match its content: altered, or signed with another key")]
    Mismatch,
    #[error("the task key {0}")]
    ShortKey(ShortSecret),
}

/// The key tasks are signed with. Its bytes never appear in `Debug` output or logs.
#[derive(Clone, Debug)]
pub struct TaskKey(Secret);

impl TaskKey {
    /// A key from configuration text (a file's content, surrounding white space dropped).
    pub fn new(text: &str) -> Result<Self, SignatureError> {
        Secret::new(text).map(Self).map_err(SignatureError::ShortKey)
    }

    /// The key in the file at `path` (a Kubernetes secret mounted as a file).
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        Secret::from_file(path, "task key").map(Self)
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.0.mac()
    }

    /// The header value for `payload`.
    pub fn sign(&self, payload: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(payload);
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Checks `header` (the signature header's value, if any) against `payload`, in
    /// constant time.
    pub fn verify(&self, payload: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let tag = header.strip_prefix("v1=").and_then(|h| hex::decode(h).ok()).ok_or(SignatureError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> TaskKey {
        TaskKey::new(&c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn signed_tasks_verify_and_altered_ones_do_not() {
        let k = key('a');
        let payload = br#"{"job_id":"j1","source":"s3://rushes/a.mov"}"#;
        let sig = k.sign(payload);
        assert_eq!(k.verify(payload, Some(&sig)), Ok(()));
        let altered = br#"{"job_id":"j1","source":"s3://finance/a.mov"}"#;
        assert_eq!(k.verify(altered, Some(&sig)), Err(SignatureError::Mismatch));
        assert_eq!(key('b').verify(payload, Some(&sig)), Err(SignatureError::Mismatch));
        assert_eq!(k.verify(payload, None), Err(SignatureError::Missing));
        assert_eq!(k.verify(payload, Some("v1=zz")), Err(SignatureError::Malformed));
        assert_eq!(k.verify(payload, Some(&sig.replace("v1=", "v2="))), Err(SignatureError::Malformed));
        assert_eq!(TaskKey::new("short").unwrap_err(), SignatureError::ShortKey(ShortSecret(5)));
        assert_eq!(TaskKey::new("short").unwrap_err().to_string(), "the task key must be at least 32 bytes (got 5)");
        assert_eq!(format!("{k:?}"), "TaskKey(..)");
    }
}
