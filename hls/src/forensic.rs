//! Forensic code words (A/B watermarking): which variant, A or B, a share's playlists list at
//! each segment position, and whom the variants read from a leaked copy point to.
//!
//! Every share of a watermarked job has a code word: one bit per segment position, from
//! HMAC-SHA256 under the farm's forensic key over the job, the share and the position.
//! Without the key the words are indistinguishable from fair coin tosses, independent from
//! share to share and from position to position; the accusation rules rest on that alone.
//!
//! A trace hands in, for each position the detector read, a log-likelihood ratio (positive:
//! variant B). A share's score is the sum of the ratios signed by its word (+ where its word
//! says B). An innocent share's word is independent of the leak, so its score is the ratios
//! summed with random signs, whatever the detector's errors: by Chernoff's bound it reaches
//! `t` with probability at most `min over λ ≥ 0 of exp(-λt) Π cosh(λ x)` over the ratios `x`
//! ([`ln_tail_bound`]; never more than Hoeffding's `exp(-t² / 2V)`, `V` the sum of the
//! squared ratios, and as tight as `2^-L` when `L` positions all agree). A share is accused
//! when that bound, times the number of shares, is under `epsilon`: a trace names an
//! innocent share with probability at most `epsilon` ([`FALSE_ACCUSATION`] by default).
//!
//! One share accused is a match; two or more, a collusion. Two viewers who mix their copies
//! segment by segment keep the positions where their words agree and mix the rest, so each
//! agrees with the leak at about three positions in four instead of all: with equally sure
//! readings, a lone leaker is named once `L (ln 2 - H(p))` passes `ln(shares / epsilon)`,
//! each of two colluders mixing half and half once `L (ln 2 - H(q))` does, `q = (1 + 2p) / 4`
//! (`L` positions read, a fraction `p` misread, `H` the entropy in nats): 26 positions for a
//! lone leaker among 50 shares at `1e-6`, 136 for a pair (Hoeffding's bound wanted 36 and 142). A shorter mixed leak names one of
//! the two, or nobody; never a third share beyond `epsilon`.
//! (A partner rule, scoring other shares over the positions where their words agree with an
//! accused one's, was tried: its exponent under Hoeffding's bound is the same `L (1 - 2p)² / 8`, and in simulation it
//! named no partner the plain rule had missed.)

pub mod by_word;

use farm_contract::secret::{Secret, ShortSecret};
use hmac::Mac;
use serde::Serialize;

/// The default bound on naming an innocent share in one trace.
pub const FALSE_ACCUSATION: f64 = 1e-6;

/// Largest log-likelihood ratio one position may carry: a detector's certainty about one
/// position must not outweigh the rest of the leak.
pub const LLR_LIMIT: f64 = 10.0;

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

/// What the detector read at one segment position of the job's timeline.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    pub position: u64,
    /// ln(P(seen | B) / P(seen | A)): positive when the position looks like variant B.
    pub llr: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Match,
    NoMatch,
    Collusion,
}

/// A trace's answer: the shares named, and one minus the bound on the probability that an
/// innocent share would have been named on this evidence (0 when nobody is named).
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub verdict: VerdictKind,
    pub shares: Vec<String>,
    pub confidence: f64,
    /// Positions the detector read (after merging repeats).
    pub positions: usize,
}

/// Whom `observations` point to among `shares`, naming an innocent share with probability
/// at most `epsilon`.
pub fn trace(book: &Codebook, shares: &[String], observations: &[Observation], epsilon: f64) -> Verdict {
    let (positions, llr) = merge(observations);
    let v: f64 = llr.iter().map(|x| x * x).sum();
    let mut verdict = Verdict { verdict: VerdictKind::NoMatch, shares: Vec::new(), confidence: 0.0, positions: positions.len() };
    if shares.is_empty() || v <= 0.0 {
        return verdict;
    }
    let (budget, ln_n) = ((shares.len() as f64 / epsilon).ln(), (shares.len() as f64).ln());
    // each accused share with the ln of the bound on an innocent scoring as high
    let accused: Vec<(&String, f64)> = shares
        .iter()
        .filter_map(|share| {
            let score: f64 = book.signs(share, &positions).iter().zip(&llr).map(|(s, x)| s * x).sum();
            let exponent = if score > 0.0 { -ln_tail_bound(score, &llr) } else { 0.0 };
            (exponent > budget).then_some((share, ln_n - exponent))
        })
        .collect();
    let worst = accused.iter().map(|(_, bound)| *bound).fold(f64::NEG_INFINITY, f64::max);
    verdict.verdict = match accused.len() {
        0 => return verdict,
        1 => VerdictKind::Match,
        _ => VerdictKind::Collusion,
    };
    verdict.shares = accused.into_iter().map(|(share, _)| share.clone()).collect();
    verdict.confidence = (1.0 - worst.exp()).max(0.0);
    verdict
}

/// The ln of Chernoff's bound on the probability that `x` summed with independent fair
/// random signs reaches `t > 0`: `min over λ ≥ 0 of -λt + Σ ln cosh(λ x)`. Any `λ` gives a
/// valid bound; the search starts at Hoeffding's (`t / Σx²`), so the answer is never above
/// `-t² / 2Σx²`.
pub fn ln_tail_bound(t: f64, x: &[f64]) -> f64 {
    let v: f64 = x.iter().map(|x| x * x).sum();
    if t <= 0.0 || v <= 0.0 {
        return 0.0;
    }
    let f = |l: f64| -l * t + x.iter().map(|x| ln_cosh(l * x)).sum::<f64>();
    // the slope of f, increasing in λ, at most 0 at Hoeffding's λ (tanh y <= y)
    let slope = |l: f64| -t + x.iter().map(|x| x.abs() * (l * x.abs()).tanh()).sum::<f64>();
    let (mut lo, mut hi) = (t / v, 2.0 * t / v);
    while slope(hi) < 0.0 && hi < lo * 1e6 {
        hi *= 2.0;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if slope(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    f(lo).min(f(hi)).min(0.0)
}

/// ln cosh(y), without overflow: |y| + ln(1 + e^-2|y|) - ln 2.
fn ln_cosh(y: f64) -> f64 {
    let a = y.abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

/// The observations by position, ascending, repeats summed, each ratio within the limit.
fn merge(observations: &[Observation]) -> (Vec<u64>, Vec<f64>) {
    let mut by = std::collections::BTreeMap::new();
    for o in observations.iter().filter(|o| !o.llr.is_nan()) {
        *by.entry(o.position).or_insert(0.0) += o.llr.clamp(-LLR_LIMIT, LLR_LIMIT);
    }
    by.into_iter().map(|(p, x): (u64, f64)| (p, x.clamp(-LLR_LIMIT, LLR_LIMIT))).unzip()
}

#[cfg(test)]
mod tests;
