//! Secrets from configuration (the task key, the forensic key): bytes that never appear in
//! `Debug` output or logs, long enough for HMAC-SHA256.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest secret accepted: 32 bytes, the HMAC-SHA256 block's half.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be at least {MIN_SECRET_BYTES} bytes (got {0})")]
pub struct ShortSecret(pub usize);

/// A secret's bytes, hidden from `Debug`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

impl Secret {
    /// A secret from configuration text (a file's content, surrounding white space dropped).
    pub fn new(text: &str) -> Result<Self, ShortSecret> {
        let bytes = text.trim().as_bytes().to_vec();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(ShortSecret(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The secret in the file at `path` (a Kubernetes secret mounted as a file); `what`
    /// names it in the error.
    pub fn from_file(path: &std::path::Path, what: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the {what} file {}: {e}", path.display()))?;
        Self::new(&text).map_err(|e| format!("{what} file {}: {e}", path.display()))
    }

    /// An HMAC-SHA256 keyed with the secret.
    pub fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused_and_none_is_shown() {
        assert_eq!(Secret::new("  short \n").unwrap_err(), ShortSecret(5));
        let s = Secret::new(&"s3cr3t".repeat(6)).unwrap();
        assert_eq!(format!("{s:?}"), "..");
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_secret_file_is_read_trimmed_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{}\n", "k".repeat(32))).unwrap();
        let mut a = Secret::from_file(&path, "task key").unwrap().mac();
        let mut b = Secret::new(&"k".repeat(32)).unwrap().mac();
        a.update(b"x");
        b.update(b"x");
        assert_eq!(a.finalize().into_bytes(), b.finalize().into_bytes());
        let missing = Secret::from_file(&dir.path().join("none"), "forensic key").unwrap_err();
        assert!(missing.starts_with("cannot read the forensic key file"), "{missing}");
    }
}
