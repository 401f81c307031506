//! Time alignment on synthetic clips: moving blobs, a new scene every 4 s, the job at
//! 25 fps; leaks that start mid-clip, run at 30 fps, are cropped, scaled and have their
//! tones and noise changed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const RATE: f64 = 25.0;
const JOB_SECONDS: f64 = 40.0;
const SIZE: (usize, usize) = (160, 90);

/// A clip as a picture at any time and place: blobs drifting over grey, redrawn every 4 s.
struct Clip {
    scenes: Vec<Vec<[f32; 6]>>,
}

impl Clip {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let scenes = (0..(JOB_SECONDS / 4.0) as usize + 1)
            .map(|_| (0..6).map(|_| [rng.gen(), rng.gen(), rng.gen_range(-0.05..0.05), rng.gen_range(-0.05..0.05), rng.gen_range(0.08..0.25), rng.gen_range(-70.0..70.0)]).collect())
            .collect();
        Self { scenes }
    }

    /// Luma at (`x`, `y`) in fractions of the picture, at `t` seconds.
    fn at(&self, x: f32, y: f32, t: f64) -> f32 {
        let blobs = &self.scenes[(t / 4.0) as usize];
        let t = (t % 4.0) as f32;
        110.0 + blobs.iter().map(|&[cx, cy, vx, vy, r, a]| a * (-((x - cx - vx * t).powi(2) + (y - cy - vy * t).powi(2)) / (r * r)).exp()).sum::<f32>()
    }

    /// The picture of job frame `k`, showing `window` of it at `size`, tones mapped by `tone`.
    fn picture(&self, k: usize, window: [f32; 4], size: (usize, usize), tone: impl Fn(f32) -> f32) -> Vec<u8> {
        let t = k as f64 / RATE;
        let [left, top, right, bottom] = window;
        let (w, h) = size;
        (0..w * h)
            .map(|i| {
                let x = left + ((i % w) as f32 + 0.5) / w as f32 * (right - left);
                let y = top + ((i / w) as f32 + 0.5) / h as f32 * (bottom - top);
                tone(self.at(x, y, t)).round().clamp(0.0, 255.0) as u8
            })
            .collect()
    }

    fn job(&self) -> Vec<Thumb> {
        (0..(JOB_SECONDS * RATE) as usize).map(|k| Thumb::new(Luma::packed(&self.picture(k, [0.0, 0.0, 1.0, 1.0], SIZE, |v| v), SIZE), k as f64 / RATE)).collect()
    }

    /// A leak of `seconds` from job time `from`, at 30 fps and 128x72, cropped (6 % left,
    /// 4 % top, 2 % right and bottom), gamma 0.85, contrast 1.1, brightness +5, noise +-3.
    fn leak(&self, from: f64, seconds: f64, seed: u64) -> Vec<Thumb> {
        let mut rng = StdRng::seed_from_u64(seed);
        let size = (128, 72);
        (0..(seconds * 30.0) as usize)
            .map(|j| {
                let time = j as f64 / 30.0;
                let k = ((from + time) * RATE + 1e-9).floor() as usize;
                let mut picture = self.picture(k, [0.06, 0.04, 0.98, 0.98], size, |v| 255.0 * (v / 255.0).powf(0.85) * 1.1 + 5.0);
                for p in picture.iter_mut() {
                    *p = (f32::from(*p) + rng.gen_range(-3.0..3.0)).round().clamp(0.0, 255.0) as u8;
                }
                Thumb::new(Luma::packed(&picture, size), time)
            })
            .collect()
    }
}

#[test]
fn a_leak_from_the_middle_at_another_rate_cropped_and_toned_is_placed_to_within_three_frames() {
    let clip = Clip::new(1);
    let job = clip.job();
    for from in [0.0, 11.3, 23.02] {
        let leak = clip.leak(from, 15.0, 7);
        let found = align_in_time(&job, RATE, &leak, 3).unwrap();
        assert!((found.offset - from).abs() <= 3.0 / RATE, "leak from {from} s placed at {found:?}");
        assert!(found.agreement > 0.9 && found.margin() > MIN_MARGIN, "{found:?}");
    }
}

#[test]
fn a_leak_of_another_clip_and_a_still_picture_are_not_placed() {
    let job = Clip::new(1).job();
    let other = align_in_time(&job, RATE, &Clip::new(2).leak(5.0, 15.0, 7), 3).unwrap();
    assert!(other.margin() < MIN_MARGIN, "another clip: {other:?}");

    let still: Vec<Thumb> = (0..300).map(|j| Thumb::new(Luma::packed(&Clip::new(1).picture(100, [0.0, 0.0, 1.0, 1.0], SIZE, |v| v), SIZE), j as f64 / 30.0)).collect();
    let found = align_in_time(&job, RATE, &still, 3).unwrap();
    assert!(found.margin() < MIN_MARGIN, "a still picture: {found:?}");
}

#[test]
fn a_flat_leak_or_one_longer_than_the_job_has_no_alignment() {
    let job = Clip::new(1).job();
    let flat: Vec<Thumb> = (0..100).map(|j| Thumb::new(Luma::packed(&[128; 64 * 36], (64, 36)), j as f64 / 30.0)).collect();
    assert_eq!(align_in_time(&job, RATE, &flat, 1), None);
    let long = Clip::new(1).leak(0.0, JOB_SECONDS - 0.01, 7);
    assert!(align_in_time(&job[..500], RATE, &long, 3).is_none());
}
