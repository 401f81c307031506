//! Whom a leak's readings point to: the accusation rules over the shares' code words, each
//! bounded in the chance of naming an innocent share.
//!
//! A trace hands in, for each position the detector read, a log-likelihood ratio (positive:
//! variant B). Every rule below sums ratios with weights that do not depend on the word of
//! the share it tests, signed by that word (+ where it says B). An innocent share's word is
//! independent of the leak and of every other word, so its sum is the weighted ratios with
//! fair random signs, whatever the detector's errors and whoever leaked: by Chernoff's bound
//! it reaches `t` with probability at most `min over λ ≥ 0 of exp(-λt) Π cosh(λ c)` over
//! the weighted ratios `c` ([`ln_tail_bound`]; never more than Hoeffding's
//! `exp(-t² / 2V)`, `V` the sum of their squares, and as tight as `2^-L` when `L` positions
//! all agree). Each of two rules tests each share once, and names it when that bound, times
//! the number of shares, is under half of `epsilon`: a trace names an innocent share with
//! probability at most `epsilon` ([`FALSE_ACCUSATION`] by default), with any number of
//! shares and any detector.
//!
//! - **Plain rule**: a share's ratios, unweighted.
//! - **Partner rule**: a share's ratios weighted by the word of its partner, the other share
//!   that agrees best with the leak: 1 where the leak reads against the partner's word,
//!   [`PARTNER_AGREEING_WEIGHT`] where it reads with it. The partner is chosen from the leak
//!   and the other shares' words only, never the tested share's own.
//!
//! One share named is a match; two or more, a collusion. With equally sure readings, a
//! fraction `p` misread, `L` positions read, `n` shares and `H` the entropy in nats, the
//! plain rule names a lone leaker once `L (ln 2 - H(p))` passes `ln(2n / epsilon)`: 27
//! clean positions among 50 shares at `1e-6`. Two viewers who mix their copies segment by
//! segment, half and half, keep the positions where their words agree and mix the rest:
//! each agrees with the leak at three positions in four, which the plain rule needs 141
//! clean positions to tell from chance. The partner rule reads the pair better: against
//! one colluder's word the leak reads otherwise at a quarter of the positions, and there
//! the other colluder's word agrees with it every time, an innocent's half of the time. Its
//! evidence for each of the two reaches the threshold on average from about 90 clean
//! positions among 50 shares (97 with 1 % misread, 104 with 2 %, 130 with 5 %), near the
//! 85 that the likelihood ratio of that pair would take (its exponent, 0.216 L, for clean
//! readings); the evidence varies from leak to leak, so a given certainty takes more: in
//! simulation among 60 shares at 1 % misread, both were named in 72 of 100 mixes of 120
//! positions, 92 of 150, 100 of 180 (the plain rule alone: 4 of 100 at 120). A shorter
//! mixed leak names one of the two, or nobody; never a third share beyond `epsilon`. (A
//! partner rule that scored the other shares over the positions where their words agree
//! with an accused one's was tried before this one: its exponent is the plain rule's, and
//! it named no partner the plain rule had missed.)

use serde::Serialize;

use super::Codebook;

/// The default bound on naming an innocent share in one trace.
pub const FALSE_ACCUSATION: f64 = 1e-6;

/// Largest log-likelihood ratio one position may carry: a detector's certainty about one
/// position must not outweigh the rest of the leak.
pub const LLR_LIMIT: f64 = 10.0;

/// The partner rule's weight of the positions where the leak reads as the partner's word
/// does (1 where it reads otherwise): near the best for a half-and-half mix of two copies
/// read with up to 5 % misread (0.2 and 0.3 give exponents within 5 % of 0.25's).
pub const PARTNER_AGREEING_WEIGHT: f64 = 0.25;

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
    let words: Vec<Vec<f64>> = shares.iter().map(|share| book.signs(share, &positions)).collect();
    let scores: Vec<f64> = words.iter().map(|word| dot(word, &llr)).collect();
    // for each share named, the ln of its bound times the number of shares (under ln ε/2)
    let mut named = plain_rule(&scores, &llr, epsilon / 2.0);
    partner_rule(&words, &scores, &llr, epsilon / 2.0, &mut named);
    let worst = named.iter().flatten().fold(f64::NEG_INFINITY, |a, b| a.max(*b));
    verdict.shares = shares.iter().zip(&named).filter(|(_, bound)| bound.is_some()).map(|(share, _)| share.clone()).collect();
    verdict.verdict = match verdict.shares.len() {
        0 => return verdict,
        1 => VerdictKind::Match,
        _ => VerdictKind::Collusion,
    };
    // the weakest share's bound, times the shares and the two rules
    verdict.confidence = (1.0 - 2.0 * worst.exp()).max(0.0);
    verdict
}

/// The plain rule at `epsilon`: each share's `scores` (its word against the ratios), one
/// test per share.
fn plain_rule(scores: &[f64], llr: &[f64], epsilon: f64) -> Vec<Option<f64>> {
    let tests = (scores.len() as f64).ln();
    scores.iter().map(|&score| accused(score, llr, tests, epsilon)).collect()
}

/// The partner rule at `epsilon`, for the shares not `named` yet: each share's word against
/// the ratios weighted by its partner's word, the other share that agrees best with the
/// leak (the highest of the plain rule's `scores`). The partner is chosen from the leak and
/// the other words alone, so each share has one test, whoever its partner turns out to be.
fn partner_rule(words: &[Vec<f64>], scores: &[f64], llr: &[f64], epsilon: f64, named: &mut [Option<f64>]) {
    let tests = (words.len() as f64).ln();
    for (v, word) in words.iter().enumerate() {
        if named[v].is_some() {
            continue;
        }
        // the first of the best, so that ties are broken without looking at `v`'s word
        let partner = (0..words.len()).filter(|&u| u != v).reduce(|best, u| if scores[u] > scores[best] { u } else { best });
        let Some(partner) = partner else { continue };
        let c: Vec<f64> = llr
            .iter()
            .zip(&words[partner])
            .map(|(x, s)| if s * x < 0.0 { *x } else { PARTNER_AGREEING_WEIGHT * x })
            .collect();
        named[v] = accused(dot(word, &c), &c, tests, epsilon);
    }
}

/// The ln of the bound on an innocent share's word scoring `score` against `x` in any of
/// `e^ln_tests` tests, when it is under `epsilon`.
fn accused(score: f64, x: &[f64], ln_tests: f64, epsilon: f64) -> Option<f64> {
    let ln_bound = ln_tests + ln_tail_bound(score, x);
    (ln_bound < epsilon.ln()).then_some(ln_bound)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
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
pub(super) fn merge(observations: &[Observation]) -> (Vec<u64>, Vec<f64>) {
    let mut by = std::collections::BTreeMap::new();
    for o in observations.iter().filter(|o| !o.llr.is_nan()) {
        *by.entry(o.position).or_insert(0.0) += o.llr.clamp(-LLR_LIMIT, LLR_LIMIT);
    }
    by.into_iter().map(|(p, x): (u64, f64)| (p, x.clamp(-LLR_LIMIT, LLR_LIMIT))).unzip()
}

