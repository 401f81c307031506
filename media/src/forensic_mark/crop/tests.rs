//! The crop window found on synthetic pictures (random blobs of many sizes), leaked cropped
//! unevenly, scaled to half size, with tones changed and noise added.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const JOB: (usize, usize) = (640, 360);
const LEAK: (usize, usize) = (320, 180);

/// A picture as luma at any place (fractions of the picture): blobs over grey.
struct Scene {
    blobs: Vec<[f64; 4]>,
}

impl Scene {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        Self { blobs: (0..60).map(|_| [rng.gen(), rng.gen(), rng.gen_range(0.01..0.12), rng.gen_range(-60.0..60.0)]).collect() }
    }

    fn at(&self, x: f64, y: f64) -> f64 {
        120.0 + self.blobs.iter().map(|&[cx, cy, r, a]| a * (-((x - cx).powi(2) + (y - cy).powi(2)) / (r * r)).exp()).sum::<f64>()
    }

    /// `window` of the picture at `size`, each pixel the mean of 3x3 points over it, tones
    /// mapped by `tone`, noise of `noise` code values at most, 8 bits.
    fn render(&self, window: [f64; 4], size: (usize, usize), tone: impl Fn(f64) -> f64, noise: f64, rng: &mut StdRng) -> Vec<u8> {
        let [left, top, right, bottom] = window;
        let (w, h) = size;
        let (dx, dy) = ((right - left) / w as f64, (bottom - top) / h as f64);
        (0..w * h)
            .map(|i| {
                let (x, y) = (left + (i % w) as f64 * dx, top + (i / w) as f64 * dy);
                let mean = (0..9).map(|k| self.at(x + (f64::from(k % 3) + 0.5) / 3.0 * dx, y + (f64::from(k / 3) + 0.5) / 3.0 * dy)).sum::<f64>() / 9.0;
                let jitter = if noise > 0.0 { rng.gen_range(-noise..noise) } else { 0.0 };
                (tone(mean) + jitter).round().clamp(0.0, 255.0) as u8
            })
            .collect()
    }
}

/// A leak's tones: gamma 0.85, contrast 0.9, brightness +12.
fn leaked_tone(v: f64) -> f64 {
    255.0 * (v / 255.0).clamp(0.0, 1.0).powf(0.85) * 0.9 + 12.0
}

#[test]
fn an_uneven_crop_is_found_to_a_tenth_of_a_per_cent_through_scaling_tones_and_noise() {
    let mut rng = StdRng::seed_from_u64(5);
    let truth = [0.06, 0.035, 0.97, 0.955];
    let scenes = [Scene::new(1), Scene::new(2)];
    let jobs: Vec<Vec<u8>> = scenes.iter().map(|s| s.render([0.0, 0.0, 1.0, 1.0], JOB, |v| v, 0.0, &mut rng)).collect();
    let leaks: Vec<Vec<u8>> = scenes.iter().map(|s| s.render(truth, LEAK, leaked_tone, 3.0, &mut rng)).collect();
    let pairs: Vec<(Luma, Luma)> = leaks.iter().zip(&jobs).map(|(l, j)| (Luma::packed(l, LEAK), Luma::packed(j, JOB))).collect();
    let (window, score) = find_window(&pairs, 1).unwrap();
    let found = [window.left, window.top, window.right, window.bottom];
    for (side, (f, t)) in found.iter().zip(truth).enumerate() {
        assert!((f64::from(*f) - t).abs() <= 0.001, "side {side}: found {found:?}, truth {truth:?}");
    }
    assert!(score > 0.95, "{score}");
}

#[test]
fn a_leak_of_another_picture_agrees_with_no_window() {
    let mut rng = StdRng::seed_from_u64(6);
    let job = Scene::new(1).render([0.0, 0.0, 1.0, 1.0], JOB, |v| v, 0.0, &mut rng);
    let other = Scene::new(3).render([0.05, 0.05, 0.95, 0.95], LEAK, leaked_tone, 3.0, &mut rng);
    let (_, score) = find_window(&[(Luma::packed(&other, LEAK), Luma::packed(&job, JOB))], 1).unwrap();
    assert!(score < 0.5, "{score}");
    assert!(find_window(&[], 1).is_none());
}
