//! Listening for the joins in a split job's audio, independently of the worker: the
//! audio rendition is decoded with the `ffmpeg` CLI and compared with a reference (the
//! source's own sound, or a one-pass encode of it).
//!
//! AAC is lossy, so the decoded audio never equals the reference; what a join must not do
//! is stand out. A chunk that encoded its first or last frames without the signal around
//! them (no pre- or post-roll), or that is off by some samples, leaves an error at the join
//! of the order of the signal itself (measured: 0.1 on a 0.125 sine), where the codec's own
//! error elsewhere is about 0.003.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// Sample rate the sound is compared at.
pub const RATE: u32 = 48_000;

/// The first channel of `input`'s audio (a file or an HLS playlist), decoded to 48 kHz
/// float samples.
pub fn first_channel(input: &Path) -> Result<Vec<f32>> {
    track_first_channel(input, 0)
}

/// The first channel of `input`'s audio track `track` (from 0), as [`first_channel`].
pub fn track_first_channel(input: &Path, track: usize) -> Result<Vec<f32>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(input)
        .args(["-map", &format!("0:a:{track}"), "-af", "pan=mono|c0=c0", "-ar", &RATE.to_string(), "-f", "f32le", "-"])
        .output()
        .context("running ffmpeg")?;
    ensure!(out.status.success(), "ffmpeg could not decode {}: {}", input.display(), String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// The error of `decoded` against `reference`, measured after lining them up (the AAC
/// encoder's priming delays the decoded sound by some samples).
#[derive(Debug, Clone)]
pub struct JoinErrors {
    /// Samples `decoded` lags `reference` by.
    pub delay: usize,
    /// Largest error within 50 ms of each join, in the order given.
    pub at_joins: Vec<f32>,
    /// The 90th percentile, over the 0.1 s windows away from the joins, of each window's
    /// largest error: the codec's own error.
    pub elsewhere: f32,
}

impl JoinErrors {
    /// No join stands out: each one's error is within `factor` times the codec's own.
    pub fn check(&self, factor: f32) -> Result<()> {
        for (i, e) in self.at_joins.iter().enumerate() {
            ensure!(*e <= factor * self.elsewhere, "join {i}: error {e} against {} elsewhere ({self:?})", self.elsewhere);
        }
        Ok(())
    }
}

/// Compares around the joins at `joins` seconds.
pub fn join_errors(decoded: &[f32], reference: &[f32], joins: &[f64]) -> Result<JoinErrors> {
    let rate = RATE as usize;
    ensure!(reference.len() > rate && decoded.len() > rate, "less than a second of sound");
    // The delay that fits best over a stretch from 0.1 s to 0.6 s.
    let fit = |delay: usize| -> f64 {
        (rate / 10..rate * 6 / 10).map(|i| f64::from((decoded[i + delay] - reference[i]).abs())).sum()
    };
    let delay = (0..=4096).min_by(|a, b| fit(*a).total_cmp(&fit(*b))).expect("a delay");
    let error: Vec<f32> = reference.iter().zip(&decoded[delay..]).map(|(r, d)| (d - r).abs()).collect();
    let window_max = |from: usize, to: usize| error[from.min(error.len())..to.min(error.len())].iter().copied().fold(0.0, f32::max);
    let near = rate / 20;
    let at_joins: Vec<f32> = joins
        .iter()
        .map(|s| {
            let at = (s * rate as f64) as usize;
            window_max(at.saturating_sub(near), at + near)
        })
        .collect();
    let window = rate / 10;
    let mut elsewhere: Vec<f32> = (0..error.len() / window)
        .map(|w| (w * window, (w + 1) * window))
        .filter(|(from, to)| joins.iter().all(|s| {
            let at = (s * rate as f64) as usize;
            *to + near <= at || *from >= at + near
        }))
        .map(|(from, to)| window_max(from, to))
        .collect();
    ensure!(!elsewhere.is_empty(), "no window away from the joins");
    elsewhere.sort_by(f32::total_cmp);
    let elsewhere = elsewhere[elsewhere.len() * 9 / 10];
    Ok(JoinErrors { delay, at_joins, elsewhere })
}

/// Amplitude of the `freq` Hz component of `samples` (48 kHz), by a Goertzel filter: a sine
/// of amplitude A gives about A.
pub fn tone_level(samples: &[f32], freq: f64) -> f32 {
    let n = samples.len().max(1) as f64;
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(RATE);
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    (2.0 * power.sqrt() / n) as f32
}
