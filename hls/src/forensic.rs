//! Forensic code words (A/B watermarking): which variant, A or B, a share's playlists list at
//! each segment position, and whom the variants read from a leaked copy point to.
//!
//! Every share of a watermarked job has a code word: one bit per segment position, from
//! HMAC-SHA256 under the farm's forensic key over the job, the share and the position.
//! Without the key the words are indistinguishable from fair coin tosses, independent from
//! share to share and from position to position; the accusation rules rest on that alone.
//!
//! A trace hands in what the detector read at each position; [`accuse`] holds the rules
//! that name shares from it, and what they promise.

pub mod accuse;
pub mod by_word;

pub use accuse::{ln_tail_bound, trace, Observation, Verdict, VerdictKind, FALSE_ACCUSATION, LLR_LIMIT};

use farm_contract::secret::{Secret, ShortSecret};
use hmac::Mac;

/// Positions per HMAC: its 32 bytes are 256 bits.
const BLOCK: u64 = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForensicError {
    #[error("the forensic key {0}")]
    ShortKey(ShortSecret),
}

/// The secret code words come from. Its bytes never appear in `Debug` output or logs.
#[derive(Clone, Debug)]
pub struct ForensicKey(Secret);

impl ForensicKey {
    /// A key from configuration text (a file's content, surrounding white space dropped).
    pub fn new(text: &str) -> Result<Self, ForensicError> {
        Secret::new(text).map(Self).map_err(ForensicError::ShortKey)
    }
}

/// The variant of a segment position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    A,
    B,
}

/// The code words of one job's shares.
pub struct Codebook<'a> {
    key: &'a ForensicKey,
    job: &'a str,
}

impl<'a> Codebook<'a> {
    pub fn new(key: &'a ForensicKey, job: &'a str) -> Self {
        Self { key, job }
    }

    /// The variant `share`'s playlists list at `position` (A before the first marked one).
    pub fn variant(&self, share: &str, position: u64) -> Variant {
        if position < farm_contract::manifest::FIRST_MARKED_SEGMENT {
            return Variant::A;
        }
        match bit(&self.block(share, position / BLOCK), position % BLOCK) {
            true => Variant::B,
            false => Variant::A,
        }
    }

    /// A short name of `share`'s word for the audit trail: it tells words apart without
    /// giving away any of their bits (the first 8 bytes of the SHA-256 of its first block).
    pub fn word_id(&self, share: &str) -> String {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(self.block(share, 0))[..8])
    }

    /// 256 positions of `share`'s word. Every part is length-prefixed, so that no job and
    /// share pair reads as another.
    fn block(&self, share: &str, block: u64) -> [u8; 32] {
        let mut mac = self.key.0.mac();
        for part in [b"farm-forensic-ab-v1".as_slice(), self.job.as_bytes(), share.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&block.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// `share`'s word at `positions` (ascending) as signs: +1 for B.
    fn signs(&self, share: &str, positions: &[u64]) -> Vec<f64> {
        let mut block = (u64::MAX, [0u8; 32]);
        positions
            .iter()
            .map(|&p| {
                if block.0 != p / BLOCK {
                    block = (p / BLOCK, self.block(share, p / BLOCK));
                }
                if bit(&block.1, p % BLOCK) { 1.0 } else { -1.0 }
            })
            .collect()
    }
}

fn bit(bytes: &[u8; 32], index: u64) -> bool {
    bytes[(index / 8) as usize] >> (index % 8) & 1 == 1
}

#[cfg(test)]
mod tests;
