//! Forensic marks (A/B watermarking): the imperceptible, keyed luma pattern that tells a
//! segment's variant A from its variant B, added to a rendition's pictures before encoding,
//! and read back from a leaked picture against the unmarked one.
//!
//! Each segment position of a watermarked job has its own pattern, keyed by the job's mark
//! seed (a secret the coordinator derives and sends only inside signed tasks) and the
//! position: a sign per cell of a [`GRID`] laid over the picture, joined smoothly between
//! cell centres. Variant A adds the pattern at [`AMPLITUDE`] code values, B subtracts it, so
//! the two are as far apart as a mark this faint can make them. The pattern is defined on
//! the picture's proportions, not its pixels: every rung carries the same one, and a leak
//! scaled to any size, or cropped by a few per cent, still lines up with it within a
//! fraction of a cell.
//!
//! A mark of less than one code value cannot be added to 8-bit pixels as such: each pixel
//! moves by a whole code value or not at all, with a chance equal to the mark's fraction
//! (a fixed dither from the pixel's place and frame, so encodes stay repeatable: a tile of
//! evenly spread thresholds, shifted from frame to frame). Averaged
//! over any block, the change is the mark: under one code value everywhere, on a flat grey
//! as on a dark gradient.
//!
//! Reading a leaked picture needs the unmarked picture at the leak's geometry. The leak's
//! luma is fitted to it by a quadratic (brightness, contrast and gamma changes), and what is
//! left is projected on the position's pattern: the estimate of the mark's signed
//! amplitude, positive for A. A segment's frames together give a log-likelihood ratio for
//! the code words' trace (`farm_hls::forensic`), positive for B.

pub mod align;
pub mod crop;
pub mod detect;
pub mod frames;

pub use farm_hls::forensic::Variant;
use sha2::{Digest, Sha256};

/// Cells of the pattern across and down the picture.
pub const GRID: (usize, usize) = (16, 9);

/// The pattern's peak, in 8-bit code values: the mean change of any block stays under one.
pub const AMPLITUDE: f32 = 0.8;

const CELLS: usize = GRID.0 * GRID.1;

/// The pattern of one segment position: a sign per cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    signs: [f32; CELLS],
}

impl Pattern {
    /// The pattern of `position` under the job's mark `seed`.
    pub fn new(seed: &[u8; 32], position: u64) -> Self {
        let digest = Sha256::new().chain_update(b"farm-forensic-mark-v1").chain_update(seed).chain_update(position.to_be_bytes()).finalize();
        let mut signs = [0.0; CELLS];
        for (i, s) in signs.iter_mut().enumerate() {
            *s = if digest[i / 8] >> (i % 8) & 1 == 1 { 1.0 } else { -1.0 };
        }
        Self { signs }
    }

    /// The pattern over a `width` x `height` picture, each value in [-1, 1].
    pub fn field(&self, width: usize, height: usize) -> Field {
        self.field_in(Window::WHOLE, width, height)
    }

    /// The pattern as seen in a `width` x `height` picture showing `window` of the marked
    /// one (a leak cropped and scaled).
    pub fn field_in(&self, window: Window, width: usize, height: usize) -> Field {
        let across = weights(width, GRID.0, window.left, window.right);
        let down = weights(height, GRID.1, window.top, window.bottom);
        let mut values = Vec::with_capacity(width * height);
        for &(j0, j1, s) in &down {
            for &(i0, i1, t) in &across {
                let top = self.signs[j0 * GRID.0 + i0] * (1.0 - t) + self.signs[j0 * GRID.0 + i1] * t;
                let bottom = self.signs[j1 * GRID.0 + i0] * (1.0 - t) + self.signs[j1 * GRID.0 + i1] * t;
                values.push(top * (1.0 - s) + bottom * s);
            }
        }
        Field { width, height, values }
    }
}

/// A luma plane: 8-bit, `stride` bytes a row.
#[derive(Clone, Copy)]
pub struct Luma<'a> {
    pub plane: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

impl<'a> Luma<'a> {
    /// A plane whose rows follow one another with no padding.
    pub fn packed(plane: &'a [u8], (width, height): (usize, usize)) -> Self {
        Self { plane, stride: width, width, height }
    }

    /// Bilinear luma at (`x`, `y`) in pixels (centres at half-integers), clamped at the edges.
    pub(crate) fn at(&self, x: f64, y: f64) -> f64 {
        let x = (x - 0.5).clamp(0.0, (self.width - 1) as f64);
        let y = (y - 0.5).clamp(0.0, (self.height - 1) as f64);
        let (x0, y0) = (x as usize, y as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let p = |x: usize, y: usize| f64::from(self.plane[y * self.stride + x]);
        let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
        let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// Part of a picture, in fractions of its width and height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

impl Window {
    pub const WHOLE: Window = Window { left: 0.0, top: 0.0, right: 1.0, bottom: 1.0 };
}

/// For each of `pixels` pixels along one axis of `cells` cells, showing `from` to `to` of
/// it: the two cells whose centres it lies between, and the smoothstep weight of the second.
fn weights(pixels: usize, cells: usize, from: f32, to: f32) -> Vec<(usize, usize, f32)> {
    (0..pixels)
        .map(|p| {
            let at = from + (p as f32 + 0.5) / pixels as f32 * (to - from);
            let u = (at * cells as f32 - 0.5).clamp(0.0, (cells - 1) as f32);
            let i0 = (u.floor() as usize).min(cells - 1);
            let t = u - i0 as f32;
            (i0, (i0 + 1).min(cells - 1), t * t * (3.0 - 2.0 * t))
        })
        .collect()
}

/// A pattern laid over a picture of one size.
#[derive(Debug, Clone)]
pub struct Field {
    pub width: usize,
    pub height: usize,
    values: Vec<f32>,
}

impl Field {
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Marks an 8-bit luma plane (`stride` bytes a row) of the field's size as `variant`;
    /// `frame` varies the dither from picture to picture.
    pub fn apply(&self, plane: &mut [u8], stride: usize, variant: Variant, frame: u64) {
        self.marking(variant).apply(plane, stride, frame);
    }

    /// The field as `variant` adds it, ready to mark pictures quickly: every frame of a
    /// segment position is marked with the same one.
    pub fn marking(&self, variant: Variant) -> Marking {
        self.marking_at(variant, AMPLITUDE)
    }

    /// [`Self::marking`] at another peak than [`AMPLITUDE`] (the mark benchmark's sweep).
    pub fn marking_at(&self, variant: Variant, amplitude: f32) -> Marking {
        let sign = match variant {
            Variant::A => amplitude,
            Variant::B => -amplitude,
        };
        let steps = self.values.iter().map(|f| (sign * f * DITHER_ONE as f32).round() as i16).collect();
        Marking { width: self.width, steps }
    }
}

/// Dither levels: the mark and the thresholds in 1/256ths of a code value.
const DITHER_ONE: i16 = 256;
const TILE: usize = 64;

/// A field with its variant's sign, in 1/256ths of a code value per pixel.
#[derive(Debug, Clone)]
pub struct Marking {
    width: usize,
    steps: Vec<i16>,
}

impl Marking {
    /// Adds the mark to an 8-bit luma plane (`stride` bytes a row): each pixel moves by a
    /// whole code value with a chance equal to the mark's fraction there, decided by a
    /// threshold from a fixed 64x64 tile of evenly spread levels, shifted with `frame`.
    pub fn apply(&self, plane: &mut [u8], stride: usize, frame: u64) {
        let tile = dither_tile();
        let shift = frame.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52;
        let (dx, dy) = ((shift as usize) % TILE, (shift as usize / TILE) % TILE);
        for (y, row) in self.steps.chunks_exact(self.width).enumerate() {
            let thresholds = &tile[(y + dy) % TILE * TILE..][..TILE];
            let pixels = &mut plane[y * stride..y * stride + self.width];
            for (x, (p, &m)) in pixels.iter_mut().zip(row).enumerate() {
                let step = (m + i16::from(thresholds[(x + dx) % TILE])) >> 8;
                *p = (i16::from(*p) + step).clamp(0, 255) as u8;
            }
        }
    }
}

/// Every level 0..256 sixteen times over a 64x64 tile, in a fixed shuffled order.
fn dither_tile() -> &'static [u8; TILE * TILE] {
    static TILE_LEVELS: std::sync::OnceLock<[u8; TILE * TILE]> = std::sync::OnceLock::new();
    TILE_LEVELS.get_or_init(|| {
        let mut levels = [0u8; TILE * TILE];
        for (i, l) in levels.iter_mut().enumerate() {
            *l = (i % 256) as u8;
        }
        let mut state: u64 = 0x5EED_0FF0_7E57;
        for i in (1..levels.len()).rev() {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            levels.swap(i, (z % (i as u64 + 1)) as usize);
        }
        levels
    })
}

/// The mark's signed amplitude in one leaked picture (luma, any scale), against the unmarked
/// picture at the same geometry and the position's field of that size: about
/// [`AMPLITUDE`] times the leak's contrast for A, as much below zero for B, near zero
/// for an unmarked picture or another position's pattern.
pub fn amplitude(leak: &[f32], reference: &[f32], field: &Field) -> f64 {
    project(&residual(leak, reference), field).0
}

/// `residual` projected on the field (its mean taken away): the coefficient, and the
/// correlation (the share of the residual's spread the field accounts for, signed).
fn project(residual: &[f64], field: &Field) -> (f64, f64) {
    let f = field.values();
    let mean = f.iter().map(|&v| f64::from(v)).sum::<f64>() / f.len().max(1) as f64;
    let (mut dot, mut norm, mut energy) = (0.0, 0.0, 0.0);
    for (r, &v) in residual.iter().zip(f) {
        let v = f64::from(v) - mean;
        dot += r * v;
        norm += v * v;
        energy += r * r;
    }
    if norm > 0.0 && energy > 0.0 { (dot / norm, dot / (norm * energy).sqrt()) } else { (0.0, 0.0) }
}

/// What is left of `leak` once the best quadratic of `reference` (brightness, contrast,
/// gamma) is taken away.
fn residual(leak: &[f32], reference: &[f32]) -> Vec<f64> {
    // normal equations of leak ≈ c0 + c1 r + c2 r², r scaled to [0, 1]
    let mut m = [[0.0f64; 3]; 3];
    let mut b = [0.0f64; 3];
    for (&l, &r) in leak.iter().zip(reference) {
        let r = f64::from(r) / 255.0;
        let basis = [1.0, r, r * r];
        for i in 0..3 {
            b[i] += basis[i] * f64::from(l);
            for j in 0..3 {
                m[i][j] += basis[i] * basis[j];
            }
        }
    }
    let c = solve3(m, b).unwrap_or([0.0; 3]);
    leak.iter()
        .zip(reference)
        .map(|(&l, &r)| {
            let r = f64::from(r) / 255.0;
            f64::from(l) - (c[0] + c[1] * r + c[2] * r * r)
        })
        .collect()
}

/// `m x = b` by Cramer's rule; `None` when `m` is singular (a flat reference).
fn solve3(m: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    if d.abs() < 1e-9 * m[0][0].abs().max(1.0).powi(3) {
        // a flat reference: only the brightness can be fitted
        return (m[0][0] > 0.0).then(|| [b[0] / m[0][0], 0.0, 0.0]);
    }
    let mut x = [0.0; 3];
    for (k, xk) in x.iter_mut().enumerate() {
        let mut mk = m;
        for i in 0..3 {
            mk[i][k] = b[i];
        }
        *xk = det(&mk) / d;
    }
    Some(x)
}

/// A segment position's frames as read: the log-likelihood ratio that it is variant B,
/// from the per-frame amplitudes' mean and spread (a Gaussian reading of each frame, the
/// spread measured on the frames themselves); 0 with fewer than two frames.
pub fn llr(amplitudes: &[f64]) -> f64 {
    let n = amplitudes.len() as f64;
    if amplitudes.len() < 2 {
        return 0.0;
    }
    let mean = amplitudes.iter().sum::<f64>() / n;
    let var = amplitudes.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
    // ln N(mean; -m, var/n) / N(mean; +m, var/n) with m = |mean|: -2 m mean n / var
    let var = var.max(1e-6 * mean * mean).max(1e-12);
    -2.0 * mean.abs() * mean * n / var
}

#[cfg(test)]
mod tests;
