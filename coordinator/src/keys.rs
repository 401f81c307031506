//! Content keys of encrypted review copies: the coordinator makes one random AES-128 key
//! per job and key period when it accepts the job, stores it wrapped by the master key
//! (AES-256-GCM, bound to the job and period so a wrapped key cannot be moved to another
//! row), and unwraps it only to hand it on (to a chunk's signed task, to a share's key
//! request). The master key comes from the file `FARM_MASTER_KEY_FILE` names and is never
//! logged, printed or stored.
//!
//! Forensic watermarking's secrets are derived from it, not stored: a job's mark seed
//! (HMAC-SHA256 of the job id under a label of its own), handed to the job's tasks like its
//! content keys, and the key its shares' code words come from.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use farm_contract::task::{MarkSeed, PeriodKey, TaskKeys, TaskPart};
use farm_hls::forensic::ForensicKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use farm_hls::encryption::{ContentKey, Iv};
use sqlx::Row;

use crate::db::Store;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the master key file {path}: {message}")]
    MasterKey { path: String, message: String },
    #[error("the content key of job {job} period {period} does not unwrap: wrong master key, or the row was altered")]
    Unwrap { job: String, period: u32 },
    #[error("the system's random source failed: {0}")]
    Random(String),
}

/// The key content keys are wrapped with: 32 bytes. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct MasterKey {
    wrapping: Aes256Gcm,
    deriving: Hmac<Sha256>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

const WRAP_VERSION: &str = "v1";

impl MasterKey {
    /// From a file of 64 hex digits (`openssl rand -hex 32`) or of exactly 32 bytes.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bad = |message: String| KeyError::MasterKey { path: path.display().to_string(), message };
        let data = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let text = std::str::from_utf8(&data).map(str::trim).unwrap_or("");
        let bytes = match hex::decode(text) {
            Ok(b) if b.len() == 32 => b,
            _ if data.len() == 32 => data,
            _ => return Err(bad("must hold 64 hex digits (openssl rand -hex 32) or exactly 32 bytes".into())),
        };
        Ok(Self::from_bytes(&bytes))
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            wrapping: Aes256Gcm::new_from_slice(bytes).expect("32 bytes"),
            deriving: <Hmac<Sha256> as Mac>::new_from_slice(bytes).expect("HMAC takes keys of any length"),
        }
    }

    /// 32 bytes for `label` and `job`, neither readable from the other (length-prefixed
    /// parts, so that no label and job pair reads as another).
    fn derive(&self, label: &str, job: &str) -> [u8; 32] {
        let mut mac = self.deriving.clone();
        for part in [label, job] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// The secret `job`'s forensic marks are keyed with (the same every time: the detector
    /// derives it again).
    pub fn mark_seed(&self, job: &str) -> MarkSeed {
        MarkSeed(self.derive("farm-mark-seed-v1", job))
    }

    /// The key shares' code words come from.
    pub fn forensic_key(&self) -> ForensicKey {
        ForensicKey::new(&hex::encode(self.derive("farm-forensic-codebook-v1", ""))).expect("64 hex digits are long enough")
    }

    /// `v1:` and hex of a fresh 96-bit nonce and the sealed key (16 bytes and a 16-byte tag).
    pub fn wrap(&self, job: &str, period: u32, key: &ContentKey) -> Result<String, KeyError> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let aad = binding(job, period);
        let sealed = self.wrapping.encrypt(Nonce::from_slice(&nonce), Payload { msg: &key.0, aad: &aad }).expect("sealing 16 bytes");
        Ok(format!("{WRAP_VERSION}:{}{}", hex::encode(nonce), hex::encode(sealed)))
    }

    pub fn unwrap(&self, job: &str, period: u32, wrapped: &str) -> Result<ContentKey, KeyError> {
        let fail = || KeyError::Unwrap { job: job.to_string(), period };
        let body = wrapped.strip_prefix("v1:").ok_or_else(fail)?;
        let bytes = hex::decode(body).map_err(|_| fail())?;
        if bytes.len() != 12 + 16 + 16 {
            return Err(fail());
        }
        let (nonce, sealed) = bytes.split_at(12);
        let aad = binding(job, period);
        let plain = self.wrapping.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).map_err(|_| fail())?;
        Ok(ContentKey(plain.try_into().map_err(|_| fail())?))
    }
}

/// What a wrapped key is bound to: its job and period.
fn binding(job: &str, period: u32) -> Vec<u8> {
    format!("farm-content-key\0{job}\0{period}").into_bytes()
}

/// A new random content key.
pub fn new_content_key() -> Result<ContentKey, KeyError> {
    let mut key = [0u8; 16];
    getrandom::getrandom(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(ContentKey(key))
}

/// A new job's keys: wrapped for [`Store::insert`], and as they are for its first task
/// messages; empty when jobs are not encrypted.
#[derive(Default)]
pub struct NewKeys {
    pub period_seconds: u32,
    pub wrapped: Vec<(u32, String)>,
    pub plain: Option<JobKeys>,
}

/// The unwrapped keys of a job, to hand on to its tasks.
pub struct JobKeys {
    pub period_seconds: u32,
    pub keys: std::collections::BTreeMap<u32, ContentKey>,
    /// The job's mark seed, handed on only when the job is watermarked.
    pub mark_seed: MarkSeed,
}

impl JobKeys {
    /// The key of segment `index` of `rendition` (starting `start_ms` into the job on the
    /// nominal cuts) and its IV, as the worker that sealed it derived them.
    fn key_and_iv(&self, rendition: &str, index: u64, start_ms: u64) -> Option<(u32, &ContentKey, Iv)> {
        let period = farm_hls::encryption::period_of(start_ms as f64 / 1000.0, self.period_seconds);
        let key = self.keys.get(&period)?;
        Some((period, key, Iv::derive(key, rendition, index)))
    }

    /// The playlist's key attribute for that segment.
    pub fn playlist_key(&self, job: &str, rendition: &str, index: u64, start_ms: u64) -> Option<m3u8_rs::Key> {
        let (period, _, iv) = self.key_and_iv(rendition, index, start_ms)?;
        Some(farm_hls::encryption::playlist_key(job, period, &hex::encode(iv.0)))
    }

    /// A sealed segment's plain bytes (`None`: no key, or not sealed with it).
    pub fn open(&self, rendition: &str, index: u64, start_ms: u64, sealed: &[u8]) -> Option<Vec<u8>> {
        let (_, key, iv) = self.key_and_iv(rendition, index, start_ms)?;
        farm_hls::encryption::decrypt(key, &iv, sealed)
    }

    /// The keys of the periods a task's range touches, for its message.
    pub fn for_part(&self, part: &TaskPart) -> TaskKeys {
        let period = |s: f64| farm_hls::encryption::period_of(s, self.period_seconds);
        let (first, last) = match *part {
            TaskPart::Video { start, end, .. } => (period(start), end.map(|e| period((e - 1e-6).max(start)))),
            TaskPart::Whole | TaskPart::Audio => (0, None),
        };
        let keys = self
            .keys
            .iter()
            .filter(|(p, _)| **p >= first && last.is_none_or(|l| **p <= l))
            .map(|(p, k)| PeriodKey { period: *p, key: hex::encode(k.0) })
            .collect();
        TaskKeys { period_seconds: self.period_seconds, keys }
    }
}

/// Every key of a job, unwrapped; `None` for a job without keys (or without a master key).
pub async fn job_keys(store: &Store, master: Option<&MasterKey>, job: &str) -> anyhow::Result<Option<JobKeys>> {
    let Some(master) = master else { return Ok(None) };
    let rows = sqlx::query("SELECT period, period_seconds, wrapped FROM content_keys WHERE job_id = $1 ORDER BY period").bind(job).fetch_all(&store.pool).await?;
    let mut out = JobKeys { period_seconds: 0, keys: Default::default(), mark_seed: master.mark_seed(job) };
    for row in &rows {
        let period = u32::try_from(row.try_get::<i64, _>("period")?)?;
        out.period_seconds = u32::try_from(row.try_get::<i64, _>("period_seconds")?)?;
        out.keys.insert(period, master.unwrap(job, period, &row.try_get::<String, _>("wrapped")?)?);
    }
    Ok((!rows.is_empty()).then_some(out))
}

/// Keys for the periods of `duration_seconds` of a new job, `period_seconds` each.
pub fn for_new_job(master: &MasterKey, job: &str, duration_seconds: f64, period_seconds: u32) -> Result<NewKeys, KeyError> {
    let mut new = NewKeys { period_seconds, wrapped: Vec::new(), plain: None };
    let mut plain = JobKeys { period_seconds, keys: Default::default(), mark_seed: master.mark_seed(job) };
    for p in 0..farm_hls::encryption::periods_in(duration_seconds, period_seconds) {
        let key = new_content_key()?;
        new.wrapped.push((p, master.wrap(job, p, &key)?));
        plain.keys.insert(p, key);
    }
    new.plain = Some(plain);
    Ok(new)
}

/// Whether the job was encrypted (it has content keys stored).
pub async fn is_encrypted(store: &Store, job: &str) -> anyhow::Result<bool> {
    let row = sqlx::query("SELECT period FROM content_keys WHERE job_id = $1 LIMIT 1").bind(job).fetch_optional(&store.pool).await?;
    Ok(row.is_some())
}

/// The content key of a job's period, unwrapped; `None` when the job has none stored.
pub async fn job_key(store: &Store, master: &MasterKey, job: &str, period: u32) -> anyhow::Result<Option<ContentKey>> {
    Ok(period_key(store, master, job, period).await?.map(|(key, _)| key))
}

/// [`job_key`] with the seconds of media a period of this job spans.
pub async fn period_key(store: &Store, master: &MasterKey, job: &str, period: u32) -> anyhow::Result<Option<(ContentKey, u32)>> {
    let row = sqlx::query("SELECT wrapped, period_seconds FROM content_keys WHERE job_id = $1 AND period = $2")
        .bind(job)
        .bind(i64::from(period))
        .fetch_optional(&store.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let wrapped: String = row.try_get("wrapped")?;
    let seconds = u32::try_from(row.try_get::<i64, _>("period_seconds")?)?;
    Ok(Some((master.unwrap(job, period, &wrapped)?, seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_unwrap_only_for_their_job_and_period_under_their_master_key() {
        let master = MasterKey::from_bytes(&[9; 32]);
        let key = new_content_key().unwrap();
        let wrapped = master.wrap("j1", 3, &key).unwrap();
        assert!(wrapped.starts_with("v1:") && !wrapped.contains(&hex::encode(key.0)), "{wrapped}");
        assert_eq!(master.unwrap("j1", 3, &wrapped).unwrap(), key);
        assert!(master.unwrap("j2", 3, &wrapped).is_err(), "moved to another job");
        assert!(master.unwrap("j1", 4, &wrapped).is_err(), "moved to another period");
        assert!(MasterKey::from_bytes(&[8; 32]).unwrap("j1", 3, &wrapped).is_err(), "another master key");
        let mut flipped = wrapped.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert!(master.unwrap("j1", 3, std::str::from_utf8(&flipped).unwrap()).is_err(), "an altered byte");
        assert_ne!(master.wrap("j1", 3, &key).unwrap(), wrapped, "a fresh nonce every time");
        assert_ne!(new_content_key().unwrap(), key);
        assert_eq!(format!("{master:?} {key:?}"), "MasterKey(..) ContentKey(..)");
    }

    #[test]
    fn the_master_key_file_is_hex_or_raw_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let hex_file = dir.path().join("hex");
        std::fs::write(&hex_file, format!("{}\n", "ab".repeat(32))).unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [0xab; 32]).unwrap();
        let (a, b) = (MasterKey::load(&hex_file).unwrap(), MasterKey::load(&raw).unwrap());
        let key = ContentKey([1; 16]);
        assert_eq!(b.unwrap("j", 0, &a.wrap("j", 0, &key).unwrap()).unwrap(), key, "the same 32 bytes either way");
        let short = dir.path().join("short");
        std::fs::write(&short, "abcd").unwrap();
        let err = MasterKey::load(&short).unwrap_err().to_string();
        assert!(err.contains("64 hex digits") && !err.contains("abcd"), "{err}");
        assert!(MasterKey::load(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_task_gets_the_keys_of_the_periods_its_range_touches() {
        let keys = JobKeys { period_seconds: 10, keys: (0..6).map(|p| (p, ContentKey([p as u8; 16]))).collect(), mark_seed: MarkSeed([0; 32]) };
        let periods = |part: TaskPart| keys.for_part(&part).keys.iter().map(|k| k.period).collect::<Vec<_>>();
        assert_eq!(periods(TaskPart::Video { start: 20.0, end: Some(40.0), audio: true }), [2, 3]);
        assert_eq!(periods(TaskPart::Video { start: 20.0, end: Some(30.0), audio: true }), [2], "a chunk ending on a boundary");
        assert_eq!(periods(TaskPart::Video { start: 24.0, end: Some(31.0), audio: false }), [2, 3]);
        assert_eq!(periods(TaskPart::Video { start: 36.0, end: None, audio: true }), [3, 4, 5]);
        assert_eq!(periods(TaskPart::Whole), [0, 1, 2, 3, 4, 5]);
        let part = keys.for_part(&TaskPart::Video { start: 0.0, end: Some(5.0), audio: true });
        assert_eq!((part.period_seconds, part.keys[0].key.as_str()), (10, "00000000000000000000000000000000"));
    }

    #[test]
    fn mark_seeds_and_the_codebook_key_are_derived_apart_per_job_and_master_key() {
        let (master, other) = (MasterKey::from_bytes(&[5; 32]), MasterKey::from_bytes(&[6; 32]));
        assert_eq!(master.mark_seed("j1"), master.mark_seed("j1"), "the detector derives the same seed");
        assert_ne!(master.mark_seed("j1"), master.mark_seed("j2"));
        assert_ne!(master.mark_seed("j1"), other.mark_seed("j1"));
        let book = |key: &ForensicKey| (0..64).map(|p| farm_hls::forensic::Codebook::new(key, "j1").variant("sh1", p)).collect::<Vec<_>>();
        assert_eq!(book(&master.forensic_key()), book(&master.forensic_key()));
        assert_ne!(book(&master.forensic_key()), book(&other.forensic_key()));
        assert_ne!(master.mark_seed("").0, master.derive("farm-forensic-codebook-v1", ""), "a label of its own");
        assert_eq!(format!("{:?} {:?}", master.mark_seed("j1"), master.forensic_key()), "MarkSeed(..) ForensicKey(..)");
    }

    #[test]
    fn a_new_job_gets_one_key_per_period() {
        let master = MasterKey::from_bytes(&[3; 32]);
        let keys = for_new_job(&master, "j9", 25.0, 10).unwrap();
        assert_eq!(keys.wrapped.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [0, 1, 2]);
        let plain: Vec<ContentKey> = keys.wrapped.iter().map(|(p, w)| master.unwrap("j9", *p, w).unwrap()).collect();
        assert!(plain[0] != plain[1] && plain[1] != plain[2]);
        let handed_on = keys.plain.unwrap();
        assert_eq!((handed_on.period_seconds, handed_on.keys.values().cloned().collect::<Vec<_>>()), (10, plain), "what tasks get is what is stored");
    }
}
