//! Where a leak's picture sits in the job's: the crop window, found to a tenth of a per cent,
//! the precision the mark's reading needs (see the module above).
//!
//! The leak's frames, each paired with the job's frame shown at the same moment (from
//! [`super::align`]), are compared with the job's pictures cropped to a candidate window and
//! sampled (bilinear) at the leak's pixels; the window's four sides move, one at a time, by
//! a step while the correlation grows, and the step halves from 2 % of the picture down to
//! 0.025 %. Correlation ignores brightness and contrast, and mild gamma barely moves it. The
//! search starts from the whole picture, so crops of up to about 10 % a side are found.

use super::{Luma, Window};

/// The first and last step of the search, as fractions of the picture.
const FIRST_STEP: f64 = 0.02;
const LAST_STEP: f64 = 0.00025;

/// The window that the `pairs` of (leak, job) frames agree on, and the mean correlation
/// there; `every` takes every n-th leak pixel across and down (1: all). None without pairs.
pub fn find_window(pairs: &[(Luma, Luma)], every: usize) -> Option<(Window, f64)> {
    if pairs.is_empty() {
        return None;
    }
    let mut sides = [0.0, 0.0, 1.0, 1.0];
    let mut best = agreement(pairs, sides, every);
    let mut step = FIRST_STEP;
    while step >= LAST_STEP {
        let mut moved = true;
        while moved {
            moved = false;
            for side in 0..4 {
                for delta in [step, -step] {
                    let mut tried = sides;
                    tried[side] += delta;
                    if !plausible(tried) {
                        continue;
                    }
                    let score = agreement(pairs, tried, every);
                    if score > best {
                        (sides, best, moved) = (tried, score, true);
                    }
                }
            }
        }
        step /= 2.0;
    }
    let [left, top, right, bottom] = sides.map(|s| s as f32);
    Some((Window { left, top, right, bottom }, best))
}

/// A window inside the picture that keeps at least half of it each way.
fn plausible([left, top, right, bottom]: [f64; 4]) -> bool {
    left >= 0.0 && top >= 0.0 && right <= 1.0 && bottom <= 1.0 && right - left >= 0.5 && bottom - top >= 0.5
}

/// Mean over the pairs of the correlation between the leak's pixels and the job's picture
/// sampled where `sides` put them.
fn agreement(pairs: &[(Luma, Luma)], sides: [f64; 4], every: usize) -> f64 {
    pairs.iter().map(|(leak, job)| correlation(leak, job, sides, every.max(1))).sum::<f64>() / pairs.len() as f64
}

pub(crate) fn correlation(leak: &Luma, job: &Luma, [left, top, right, bottom]: [f64; 4], every: usize) -> f64 {
    let (mut n, mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for y in (0..leak.height).step_by(every) {
        let v = top + (y as f64 + 0.5) / leak.height as f64 * (bottom - top);
        for x in (0..leak.width).step_by(every) {
            let u = left + (x as f64 + 0.5) / leak.width as f64 * (right - left);
            let a = f64::from(leak.plane[y * leak.stride + x]);
            let b = job.at(u * job.width as f64, v * job.height as f64);
            (n, sa, sb, saa, sbb, sab) = (n + 1.0, sa + a, sb + b, saa + a * a, sbb + b * b, sab + a * b);
        }
    }
    let cov = sab - sa * sb / n;
    let spread = ((saa - sa * sa / n) * (sbb - sb * sb / n)).sqrt();
    if spread > 0.0 { cov / spread } else { 0.0 }
}

#[cfg(test)]
mod tests;
