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
//! same way ([`super::amplitude`]). Frames next to a segment's cut are left out (the
//! encoders' first and last pictures of a segment differ most).

use std::collections::{BTreeMap, HashMap};

use farm_hls::forensic::Observation;

use super::crop::{correlation, find_window};
use super::frames::Frames;
use super::{llr, project, residual, Field, Luma, Pattern, Window};

/// How far from the aligned frame the leak's picture is looked for, each way.
const SEARCH_FRAMES: i64 = 3;
/// Frames at each end of a segment that are not read.
const EDGE_FRAMES: usize = 2;
/// Leak pictures the crop window is found on.
const WINDOW_PAIRS: usize = 24;

/// One segment position of the job as the detector needs it: A's and B's pictures (at the
/// working size, as many of each) and the job frame number of the first.
pub struct PositionFrames {
    pub position: u64,
    pub first_frame: u64,
    pub a: Frames,
    pub b: Frames,
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
}

/// Reads `leak`, shown on the job's timeline at `offset` (job time = leak time + offset) at
/// `rate` frames a second, against the `positions` it covers; marks keyed by `seed`. None
/// when no leak picture falls on those positions.
pub fn read(leak: &Frames, rate: f64, offset: f64, positions: &[PositionFrames], seed: &[u8; 32]) -> Option<Reading> {
    let by_frame: HashMap<u64, (usize, usize)> = positions
        .iter()
        .enumerate()
        .flat_map(|(p, pf)| (0..pf.a.len().min(pf.b.len())).map(move |k| (pf.first_frame + k as u64, (p, k))))
        .collect();
    let a_of = |frame: u64| by_frame.get(&frame).map(|&(p, k)| positions[p].a.luma(k));
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
    let sampled: Vec<usize> = on_positions.iter().step_by((on_positions.len() / WINDOW_PAIRS).max(1)).copied().collect();
    let mut sides = [0.0, 0.0, 1.0, 1.0];
    let mut found = (Window::WHOLE, 0.0);
    for _ in 0..2 {
        let pairs: Vec<(Luma, Luma)> = sampled.iter().filter_map(|&i| nearest(i, sides, 4).map(|(f, _)| (leak.luma(i), a_of(f).expect("found")))).collect();
        found = find_window(&pairs, 2)?;
        let w = found.0;
        sides = [w.left, w.top, w.right, w.bottom].map(f64::from);
    }
    let (window, agreement) = found;
    let (lw, lh) = leak.size;
    // By position index: its pattern laid out as the leak sees it, each frame's amplitude,
    // and the frames' residuals summed.
    let mut read: BTreeMap<usize, (Field, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for &i in &on_positions {
        let Some((frame, _)) = nearest(i, sides, 2) else { continue };
        let (p, k) = by_frame[&frame];
        let pf = &positions[p];
        if k < EDGE_FRAMES || k + EDGE_FRAMES >= pf.a.len() {
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
    let strength = read.values().map(|(field, _, summed)| project(summed, field).1.abs()).sum::<f64>() / read.len().max(1) as f64;
    Some(Reading { observations, window, agreement, frames_read, strength })
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
