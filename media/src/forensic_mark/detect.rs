//! Reading a leak's variants: for each segment position a leak covers, how strongly its
//! pictures say A or B (a log-likelihood ratio for the code words' trace).
//!
//! The leak has already been placed on the job's timeline to within a few frames
//! ([`super::align`]). There is no unmarked encode to read it against: A adds the mark and B
//! takes it away, so the mean of A's and B's pictures of a frame is the unmarked picture
//! (to within the encodes' own differences). The job's frame each leak picture shows is
//! found among its neighbours on the timeline by correlation inside the crop window
//! ([`super::crop`]); each picture is then read against that frame's reference, sampled
//! where the window puts the leak's pixels, and the pattern of its position laid out the
//! same way ([`super::amplitude`]). Only the frames that carry the mark are read: those
//! where A's and B's pictures differ. A rendition's A and B are one encode's bytes but for
//! the last pictures of each position (`crate::transcode::tails`), which are read; where
//! every picture differs (a job made before the tails, each variant encoded whole; HEVC
//! renditions until 2026-12-04), all but the frames next to a segment's cut (the encoders'
//! first and last pictures of a segment differ most).
//!
//! A leak of a steady zoom or pan may have been placed a second or more off: its crop
//! looks like the shot a little later, uncropped. How strongly the marks read, against
//! what patterns no leak carries would read ([`Reading::chance`]), tells; then
//! [`strongest_near`] reads near that offset, the crop found again at each.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use farm_hls::forensic::Observation;

use super::crop::{correlation, find_window};
use super::frames::Frames;
use super::{llr, project, residual, Field, Luma, Pattern, Window};

/// How far from the aligned frame the leak's picture is looked for, each way.
const SEARCH_FRAMES: i64 = 3;
/// Frames at each end of a segment that are not read when every frame is marked.
const EDGE_FRAMES: usize = 2;
/// How thoroughly a leak is read.
struct Effort {
    /// Leak pictures its crop window is found on.
    window_pairs: usize,
    /// Every how many pixels across and down pictures are compared (the window, each
    /// picture's frame).
    every: usize,
    /// Patterns no leak carries read at each position for [`Reading::chance`] (none:
    /// chance and above_chance are left at 0).
    nulls: u64,
}

/// A leak's reading for the trace.
const FULL: Effort = Effort { window_pairs: 24, every: 2, nulls: 4 };
/// The readings [`strongest_near`] compares (a quarter of the pixels, no chance): only their
/// strength is kept, and the offset chosen is read again in full. The window is found on
/// as many pairs as in full: where only the tails are marked, a window found on a third of
/// them read a steady zoom's leak at its own offset at 0.028, under what other offsets
/// read (up to 0.057); on all of them, 0.171 against at most 0.048.
const QUICK: Effort = Effort { window_pairs: 24, every: 4, nulls: 0 };
/// Set in a position number, one no job reaches: its pattern is one no leak carries.
const NO_POSITION: u64 = 1 << 63;

/// One segment position of the job as the detector needs it: A's and B's pictures (at the
/// working size, as many of each; shared, so a caller reading a leak at several offsets
/// decodes each once) and the job frame number of the first.
pub struct PositionFrames {
    pub position: u64,
    pub first_frame: u64,
    pub a: Arc<Frames>,
    pub b: Arc<Frames>,
}

/// What a leak was read as.
#[derive(Debug)]
pub struct Reading {
    pub observations: Vec<Observation>,
    pub window: Window,
    /// Mean correlation of the leak's pictures with the job's inside the window.
    pub agreement: f64,
    /// Leak pictures read.
    pub frames_read: usize,
    /// How strongly the marks read, A's or B's alike: for each position, the size of the
    /// correlation of its pattern with what the job's pictures leave unexplained in the
    /// leak's, averaged over the position's frames (grain and coding noise average out, a
    /// mark stays); the mean over positions. At a wrong offset the leak does not carry
    /// the patterns read, and a picture shown at another moment leaves a large, steady
    /// residual that any pattern explains little of. It depends on the leak, the job's
    /// pictures and the mark seed alone, never on a code word: choosing among offsets by it
    /// leaves the trace's false-accusation bound as it is.
    pub strength: f64,
    /// The same measure with patterns no position of any job has, laid out alike: what
    /// [`Self::strength`] comes to where the leak carries no pattern read (a wrong offset,
    /// a wrong crop, another clip): per position, the mean over four such patterns.
    pub chance: f64,
    /// How far the strength stands above chance, in standard errors of their difference
    /// over the positions read (0 with fewer than two): a few where the leak carries no
    /// pattern read, more the more positions carry one.
    pub above_chance: f64,
}

impl Reading {
    /// Whether the marks read further above chance here than in `other`, a reading of the
    /// same leak at another offset or through another crop window. Not by strength: a
    /// smaller window leaves fewer pixels to average, and every pattern reads stronger
    /// through it, those no leak carries too. A dark, grainy leak read 0.106 at its own
    /// offset (chance 0.064, 4.3 standard errors above) and 0.147 through a window a
    /// quarter of the picture 3.5 s off (chance as much: -0.1 standard errors above); taken
    /// by its strength, the second lost the leak.
    pub fn reads_above(&self, other: &Reading) -> bool {
        self.above_chance > other.above_chance
    }
}

/// Of readings of one leak (at several offsets, or through several crop windows), the one
/// whose marks read furthest above chance ([`Reading::reads_above`]), with what it was read
/// at; the first of equals.
pub fn furthest_above_chance<T>(readings: impl IntoIterator<Item = (T, Reading)>) -> Option<(T, Reading)> {
    readings.into_iter().fold(None, |best, (at, reading)| match best {
        Some((_, ref kept)) if !reading.reads_above(kept) => best,
        _ => Some((at, reading)),
    })
}

/// Reads `leak`, shown on the job's timeline at `offset` (job time = leak time + offset) at
/// `rate` frames a second, against the `positions` it covers; marks keyed by `seed`. None
/// when no leak picture falls on those positions.
pub fn read(leak: &Frames, rate: f64, offset: f64, positions: &[PositionFrames], seed: &[u8; 32]) -> Option<Reading> {
    read_with(&FULL, leak, rate, offset, positions, seed, None)
}

/// [`read`] through a crop window already found ([`strongest_near`]'s, on an excerpt of the
/// leak), not found again.
pub fn read_in(window: Window, leak: &Frames, rate: f64, offset: f64, positions: &[PositionFrames], seed: &[u8; 32]) -> Option<Reading> {
    read_with(&FULL, leak, rate, offset, positions, seed, Some(window))
}

fn read_with(effort: &Effort, leak: &Frames, rate: f64, offset: f64, positions: &[PositionFrames], seed: &[u8; 32], given: Option<Window>) -> Option<Reading> {
    let by_frame: HashMap<u64, (usize, usize)> = positions
        .iter()
        .enumerate()
        .flat_map(|(p, pf)| (0..pf.a.len().min(pf.b.len())).map(move |k| (pf.first_frame + k as u64, (p, k))))
        .collect();
    let a_of = |frame: u64| by_frame.get(&frame).map(|&(p, k)| positions[p].a.luma(k));
    let marked: Vec<Vec<bool>> = positions.iter().map(marked_frames).collect();
    let predicted = |i: usize| ((leak.times[i] + offset) * rate).round() as i64;
    let nearest = |i: usize, sides: [f64; 4], every: usize| -> Option<(u64, f64)> {
        (predicted(i) - SEARCH_FRAMES..=predicted(i) + SEARCH_FRAMES)
            .filter_map(|f| u64::try_from(f).ok())
            .filter_map(|f| a_of(f).map(|a| (f, correlation(&leak.luma(i), &a, sides, every))))
            .max_by(|x, y| x.1.total_cmp(&y.1))
    };
    let covered = |i: usize| (predicted(i) - SEARCH_FRAMES..=predicted(i) + SEARCH_FRAMES).any(|f| u64::try_from(f).is_ok_and(|f| by_frame.contains_key(&f)));
    let on_positions: Vec<usize> = (0..leak.len()).filter(|&i| covered(i)).collect();
    if on_positions.is_empty() {
        return None;
    }
    // The window: first on the whole picture, then again with each leak picture's own frame.
    let sampled: Vec<usize> = on_positions.iter().step_by((on_positions.len() / effort.window_pairs).max(1)).copied().collect();
    let sides_of = |w: Window| [w.left, w.top, w.right, w.bottom].map(f64::from);
    let (window, agreement) = match given {
        Some(window) => {
            let agreements: Vec<f64> = sampled.iter().filter_map(|&i| nearest(i, sides_of(window), 2 * effort.every)).map(|(_, c)| c).collect();
            (window, agreements.iter().sum::<f64>() / agreements.len().max(1) as f64)
        }
        None => {
            let mut found = (Window::WHOLE, 0.0);
            for _ in 0..2 {
                let sides = sides_of(found.0);
                let pairs: Vec<(Luma, Luma)> = sampled.iter().filter_map(|&i| nearest(i, sides, 2 * effort.every).map(|(f, _)| (leak.luma(i), a_of(f).expect("found")))).collect();
                found = find_window(&pairs, effort.every)?;
            }
            found
        }
    };
    let sides = sides_of(window);
    let (lw, lh) = leak.size;
    // By position index: its pattern laid out as the leak sees it, each frame's amplitude,
    // and the frames' residuals summed.
    let mut read: BTreeMap<usize, (Field, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for &i in &on_positions {
        let Some((frame, _)) = nearest(i, sides, effort.every) else { continue };
        let (p, k) = by_frame[&frame];
        let pf = &positions[p];
        if !marked[p][k] {
            continue;
        }
        let (field, amplitudes, summed) = read.entry(p).or_insert_with(|| (Pattern::new(seed, pf.position).field_in(window, lw, lh), Vec::new(), vec![0.0; lw * lh]));
        let reference = reference(&pf.a.luma(k), &pf.b.luma(k), sides, leak.size);
        let pixels: Vec<f32> = leak.planes[i].iter().map(|&v| f32::from(v)).collect();
        let residual = residual(&pixels, &reference);
        amplitudes.push(project(&residual, field).0);
        summed.iter_mut().zip(&residual).for_each(|(s, r)| *s += r);
    }
    let frames_read = read.values().map(|(_, a, _)| a.len()).sum();
    read.retain(|_, (_, amplitudes, _)| amplitudes.len() >= 2);
    let observations = read.iter().map(|(&p, (_, amplitudes, _))| Observation { position: positions[p].position, llr: llr(amplitudes) }).collect();
    // Each position's strength, and the mean of what patterns no leak carries read there.
    let by_position: Vec<(f64, f64)> = read
        .iter()
        .map(|(&p, (field, _, summed))| {
            let unused = |j: u64| Pattern::new(seed, positions[p].position | NO_POSITION | j << 48).field_in(window, lw, lh);
            let chance = (0..effort.nulls).map(|j| project(summed, &unused(j)).1.abs()).sum::<f64>() / effort.nulls.max(1) as f64;
            (project(summed, field).1.abs(), chance)
        })
        .collect();
    let n = by_position.len().max(1) as f64;
    let (strength, chance) = (by_position.iter().map(|b| b.0).sum::<f64>() / n, by_position.iter().map(|b| b.1).sum::<f64>() / n);
    let spread = (by_position.iter().map(|(s, c)| (s - c - (strength - chance)).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let above_chance = if effort.nulls > 0 && by_position.len() > 1 && spread > 0.0 { (strength - chance) / (spread / n.sqrt()) } else { 0.0 };
    Some(Reading { observations, window, agreement, frames_read, strength, chance, above_chance })
}

/// Which of a position's frames carry its mark and are read: those where A's and B's
/// pictures differ; where every one does, all but the [`EDGE_FRAMES`] at each end.
fn marked_frames(pf: &PositionFrames) -> Vec<bool> {
    let n = pf.a.len().min(pf.b.len());
    let differ: Vec<bool> = (0..n).map(|k| pf.a.planes[k] != pf.b.planes[k]).collect();
    if differ.iter().all(|&d| d) {
        (0..n).map(|k| k >= EDGE_FRAMES && k + EDGE_FRAMES < n).collect()
    } else {
        differ
    }
}

/// How far each way from the offset the pictures gave [`strongest_near`] looks (seconds).
pub const NEAR_SECONDS: f64 = 4.0;
/// Between the offsets it tries (seconds): a position's marks still read a frame or two off
/// its time, and the crop found there follows it.
const NEAR_STEP: f64 = 0.25;
/// The part of the leak read at each of them (seconds, from its middle).
const EXCERPT_SECONDS: f64 = 16.0;

/// Where a leak of a steady zoom or pan sits, when its pictures do not say: a crop of such a
/// shot looks like the shot a little later (or earlier) uncropped, so the offset the
/// pictures gave may be a second or more off, and every offset within [`NEAR_SECONDS`] of
/// `around`, [`NEAR_STEP`] apart, is read on an excerpt of the leak with its own crop
/// window found again, and the one whose marks read strongest returned with that
/// [`Reading::strength`] and the crop window found there. `positions` must cover
/// [`near_span`]. Like the strength, the choice never looks at a code word.
///
/// The window is the one to read the whole leak through ([`read_in`]): in a zoom a crop a
/// little off passes for a frame or two later, and where only the tails are marked that is
/// the difference between reading them and reading their unmarked neighbours. Found again
/// on the whole of a steady zoom's leak it came out 0.5 % of the width narrower each side
/// than on the excerpt, and the marks read no stronger than chance through it (0.016,
/// chance 0.015), where through the excerpt's they read 0.17.
pub fn strongest_near(leak: &Frames, rate: f64, around: f64, positions: &[PositionFrames], seed: &[u8; 32]) -> Option<(f64, f64, Window)> {
    let excerpt = excerpt(leak);
    let steps = (NEAR_SECONDS / NEAR_STEP).round() as i64;
    (-steps..=steps)
        .map(|k| around + k as f64 * NEAR_STEP)
        .filter_map(|offset| read_with(&QUICK, &excerpt, rate, offset, positions, seed, None).map(|r| (offset, r.strength, r.window)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The job's times (seconds) whose positions [`strongest_near`] reads around `around`.
pub fn near_span(leak: &Frames, around: f64) -> (f64, f64) {
    let (from, to) = excerpt_times(leak);
    (from + around - NEAR_SECONDS, to + around + NEAR_SECONDS)
}

/// The leak's pictures shown in its middle [`EXCERPT_SECONDS`], their times kept.
fn excerpt(leak: &Frames) -> Frames {
    let (from, to) = excerpt_times(leak);
    leak.shown(from..=to)
}

fn excerpt_times(leak: &Frames) -> (f64, f64) {
    let (first, last) = (leak.times.first().copied().unwrap_or(0.0), leak.times.last().copied().unwrap_or(0.0));
    let middle = (first + last) / 2.0;
    ((middle - EXCERPT_SECONDS / 2.0).max(first), (middle + EXCERPT_SECONDS / 2.0).min(last))
}

/// The mean of A's and B's pictures, sampled where `sides` put the leak's pixels.
fn reference(a: &Luma, b: &Luma, [left, top, right, bottom]: [f64; 4], (lw, lh): (usize, usize)) -> Vec<f32> {
    let mut out = Vec::with_capacity(lw * lh);
    for y in 0..lh {
        let v = top + (y as f64 + 0.5) / lh as f64 * (bottom - top);
        for x in 0..lw {
            let u = left + (x as f64 + 0.5) / lw as f64 * (right - left);
            let (ax, ay, bx, by) = (u * a.width as f64, v * a.height as f64, u * b.width as f64, v * b.height as f64);
            out.push(((a.at(ax, ay) + b.at(bx, by)) / 2.0) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests;
