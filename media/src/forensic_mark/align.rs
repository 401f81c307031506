//! When a leaked copy plays on the job's timeline: the first step of reading its marks.
//!
//! A leak need not start at 0, and its frame rate may differ from the job's. Both pictures
//! are reduced to [`Thumb`]s: the luma of the picture's central part averaged over a coarse
//! grid, each thumb normalised to zero mean and unit spread, so that a crop of up to 10 %,
//! scaling, and brightness, contrast and mild gamma changes move a thumb little. The
//! offset is the one at which the leak's thumbs, each compared with the job's frame shown
//! at that moment, agree best (mean correlation), to within a few frames: a crop moves the
//! thumbs' centre, and slow motion can pass for that move (the frame itself is found when
//! the picture is aligned). Its confidence is the margin over the best offset more than
//! [`RIVAL_SECONDS`] away: a still picture agrees everywhere and gives none. Two seconds,
//! not one: a picture that changes slowly (a dark, grainy shot) still looks much like
//! itself a second later, and against so near a rival its right offset stood out by
//! 0.14-0.23 in the tests. Where the job's picture repeats (a looped shot, a slow periodic
//! change, a still), offsets far apart agree as well as the right one: they are all
//! [`contenders`], and the marks decide (each position has its own pattern, so only the
//! right offset reads strongly).
//!
//! On the synthetic clips of the tests: a leak of the clip 0.98 agreement, margin 0.34;
//! a leak of another clip margin 0.04; a still picture 0.002; blobs slowly brightening
//! and darkening in place, with no cut, 0.24-0.50.

use super::Luma;

/// Cells across and down a thumb.
pub const THUMB_GRID: (usize, usize) = (8, 6);

/// The part of the picture a thumb covers, on each side of the centre, as a fraction of the
/// width or height: a crop of up to 10 % leaves it inside the leak, shifted by at most a
/// tenth of the picture (under a cell).
const CENTRE: f32 = 0.3;

/// The margin over the rival offset below which the pictures alone do not place a leak (a
/// repeating or still picture, a clip the job does not contain): offsets agreeing within
/// it of the best are all [`contenders`].
pub const MIN_MARGIN: f64 = 0.2;

/// Offsets closer than this to the best one (seconds) do not count as its rival: they are
/// the same moment of a slowly changing picture, give or take.
const RIVAL_SECONDS: f64 = 2.0;

/// A frame's coarse, normalised luma, and when it is shown (seconds from the start of its
/// file or of the job).
#[derive(Debug, Clone)]
pub struct Thumb {
    pub time: f64,
    cells: [f32; THUMB_GRID.0 * THUMB_GRID.1],
    /// False for a picture with no detail (flat): it says nothing about time.
    textured: bool,
}

impl Thumb {
    /// The thumb of a luma plane shown at `time`.
    pub fn new(luma: Luma, time: f64) -> Self {
        let Luma { plane, stride, width, height } = luma;
        let (gw, gh) = THUMB_GRID;
        let mut cells = [0f32; THUMB_GRID.0 * THUMB_GRID.1];
        let span = |n: usize, i: usize, of: usize| {
            let at = |k: usize| ((0.5 - CENTRE + 2.0 * CENTRE * k as f32 / of as f32) * n as f32) as usize;
            at(i)..at(i + 1).max(at(i) + 1).min(n)
        };
        for cy in 0..gh {
            let rows = span(height, cy, gh);
            for cx in 0..gw {
                let cols = span(width, cx, gw);
                let (mut sum, mut count) = (0u64, 0u64);
                for y in rows.clone() {
                    sum += plane[y * stride + cols.start..y * stride + cols.end].iter().map(|&v| u64::from(v)).sum::<u64>();
                    count += cols.len() as u64;
                }
                cells[cy * gw + cx] = sum as f32 / count.max(1) as f32;
            }
        }
        let textured = normalise(&mut cells);
        Self { time, cells, textured }
    }

    /// How alike two thumbs are: their correlation, in [-1, 1].
    fn likeness(&self, other: &Thumb) -> f32 {
        self.cells.iter().zip(&other.cells).map(|(a, b)| a * b).sum::<f32>() / self.cells.len() as f32
    }
}

/// Zero mean and unit spread; false (and left flat) when there is no spread to speak of.
fn normalise(cells: &mut [f32]) -> bool {
    let n = cells.len() as f32;
    let mean = cells.iter().sum::<f32>() / n;
    let spread = (cells.iter().map(|c| (c - mean).powi(2)).sum::<f32>() / n).sqrt();
    let textured = spread > 0.5;
    for c in cells.iter_mut() {
        *c = if textured { (*c - mean) / spread } else { 0.0 };
    }
    textured
}

/// Where a leak sits on the job's timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeAlignment {
    /// Job time = leak time + offset, to within a few frames.
    pub offset: f64,
    /// Mean correlation of the leak's thumbs with the job's at that offset.
    pub agreement: f64,
    /// The best agreement of any offset more than [`RIVAL_SECONDS`] away.
    pub rival: f64,
}

impl TimeAlignment {
    /// How far the alignment stands out from its rival.
    pub fn margin(&self) -> f64 {
        self.agreement - self.rival
    }
}

/// The offset at which `leak` (thumbs in its own time) best matches `job` (thumbs of every
/// frame at `rate` frames a second, in order, the first at time 0), trying every frame of
/// the job as the leak's start; every `stride`-th leak thumb is compared. None when the leak
/// has no textured thumb or is longer than the job.
pub fn align_in_time(job: &[Thumb], rate: f64, leak: &[Thumb], stride: usize) -> Option<TimeAlignment> {
    contenders(job, rate, leak, stride, 1).into_iter().next()
}

/// The offsets the pictures cannot tell apart, best first: [`align_in_time`]'s, then the
/// best one more than [`RIVAL_SECONDS`] from every offset before it, and so on, while it
/// agrees within [`MIN_MARGIN`] of the best; at most `most`. One offset when the best stands
/// out; several when the job's picture repeats (a looped shot, a still one, a slow
/// periodic change), for the marks to decide (a wrong offset reads other positions'
/// patterns, which the leak does not carry). Each one's rival is the best agreement of any
/// offset more than [`RIVAL_SECONDS`] away from it.
pub fn contenders(job: &[Thumb], rate: f64, leak: &[Thumb], stride: usize, most: usize) -> Vec<TimeAlignment> {
    let Some((scores, first)) = scores(job, rate, leak, stride) else { return Vec::new() };
    let apart = (RIVAL_SECONDS * rate).ceil() as usize;
    let rival_of = |at: usize| scores.iter().enumerate().filter(|(k, _)| k.abs_diff(at) > apart).map(|(_, &s)| s).fold(f64::NEG_INFINITY, f64::max);
    let mut found: Vec<TimeAlignment> = Vec::new();
    let mut starts: Vec<usize> = Vec::new();
    while found.len() < most.max(1) {
        let far = scores.iter().enumerate().filter(|(k, _)| starts.iter().all(|s| k.abs_diff(*s) > apart));
        let Some((at, &agreement)) = far.max_by(|a, b| a.1.total_cmp(b.1)) else { break };
        if found.first().is_some_and(|best| agreement < best.agreement - MIN_MARGIN) {
            break;
        }
        let rival = rival_of(at);
        found.push(TimeAlignment { offset: at as f64 / rate - first, agreement, rival: if rival.is_finite() { rival } else { 0.0 } });
        starts.push(at);
    }
    found
}

/// How alike each of `leak`'s thumbs is to the job's frame shown at its time plus `offset`:
/// None for a flat thumb (it says nothing) or one off the job's timeline.
pub fn likeness_at(job: &[Thumb], rate: f64, leak: &[Thumb], offset: f64) -> Vec<Option<f32>> {
    let frame = |t: &Thumb| usize::try_from(((t.time + offset) * rate).round() as i64).ok().and_then(|f| job.get(f));
    leak.iter().map(|t| frame(t).filter(|_| t.textured).map(|j| j.likeness(t))).collect()
}

/// The agreement of every candidate start (job frame shown when the first sampled leak
/// thumb is), and that thumb's time in the leak.
fn scores(job: &[Thumb], rate: f64, leak: &[Thumb], stride: usize) -> Option<(Vec<f64>, f64)> {
    let sampled: Vec<&Thumb> = leak.iter().step_by(stride.max(1)).filter(|t| t.textured).collect();
    let (first, last) = (sampled.first()?.time, sampled.last()?.time);
    let span_frames = ((last - first) * rate).ceil() as usize;
    if span_frames >= job.len() {
        return None;
    }
    // Each sampled thumb with the job frames it comes after the first one's.
    let after: Vec<(usize, &Thumb)> = sampled.iter().map(|t| (((t.time - first) * rate + 1e-6).floor() as usize, *t)).collect();
    let score = |start: usize| -> f64 {
        let total: f32 = after.iter().map(|&(k, t)| job[(start + k).min(job.len() - 1)].likeness(t)).sum();
        f64::from(total) / after.len() as f64
    };
    Some(((0..job.len() - span_frames).map(score).collect(), first))
}

#[cfg(test)]
mod tests;
