//! Time alignment on synthetic clips: moving blobs, a new scene every 4 s (or one scene of
//! blobs slowly brightening and darkening in place), the job at
//! 25 fps; leaks that start mid-clip, run at 30 fps, are cropped, scaled and have their
//! tones and noise changed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const RATE: f64 = 25.0;
const JOB_SECONDS: f64 = 40.0;
const SIZE: (usize, usize) = (160, 90);

/// A clip as a picture at any time and place: blobs over grey, drifting and redrawn every
/// scene (4 s), or pulsing in place through one scene.
struct Clip {
    scenes: Vec<Vec<[f32; 6]>>,
    scene_seconds: f64,
    pulse: bool,
}

impl Clip {
    fn new(seed: u64) -> Self {
        Self::with_scenes(seed, 4.0, 0.05)
    }

    /// One scene for the whole clip, its blobs in place, each brightening and darkening
    /// slowly (periods of 6 to 18 s): nothing moves, nothing cuts.
    fn pulsing(seed: u64) -> Self {
        Self { pulse: true, ..Self::with_scenes(seed, JOB_SECONDS + 1.0, 1.0) }
    }

    fn with_scenes(seed: u64, scene_seconds: f64, speed: f32) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let scenes = (0..(JOB_SECONDS / scene_seconds) as usize + 1)
            .map(|_| (0..6).map(|_| [rng.gen(), rng.gen(), rng.gen_range(-speed..speed), rng.gen_range(-speed..speed), rng.gen_range(0.08..0.25), rng.gen_range(-70.0..70.0)]).collect())
            .collect();
        Self { scenes, scene_seconds, pulse: false }
    }

    /// Luma at (`x`, `y`) in fractions of the picture, at `t` seconds.
    fn at(&self, x: f32, y: f32, t: f64) -> f32 {
        let blobs = &self.scenes[(t / self.scene_seconds) as usize];
        let t = (t % self.scene_seconds) as f32;
        let blob = |&[cx, cy, vx, vy, r, a]: &[f32; 6]| {
            let (cx, cy, a) = if self.pulse {
                // vx, vy in -1..1: the phase, and the period (6 to 18 s)
                (cx, cy, a * (std::f32::consts::TAU * t / (12.0 + 6.0 * vy) + 3.0 * vx).cos())
            } else {
                (cx + vx * t, cy + vy * t, a)
            };
            a * (-((x - cx).powi(2) + (y - cy).powi(2)) / (r * r)).exp()
        };
        110.0 + blobs.iter().map(blob).sum::<f32>()
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
fn a_slowly_changing_picture_with_no_cut_is_placed() {
    // Like a dark, grainy shot: nothing moves or cuts, and a second apart the picture has
    // hardly changed (against a rival a second away the margins were 0.14-0.23, five of six
    // under MIN_MARGIN; two seconds away 0.24-0.50). Its time is pinned a little less
    // tightly: to within four frames, the detector's search finding the frame itself.
    for seed in 3..=8 {
        let clip = Clip::pulsing(seed);
        let (job, from) = (clip.job(), 12.5);
        let found = align_in_time(&job, RATE, &clip.leak(from, 15.0, 7), 3).unwrap();
        assert!((found.offset - from).abs() <= 4.0 / RATE, "seed {seed}: placed at {found:?}");
        assert!(found.margin() > MIN_MARGIN, "seed {seed}: {found:?}");
    }
}

#[test]
fn where_the_job_repeats_every_moment_the_leak_matches_is_a_contender() {
    // The job shows the clip's first 12 s over and over (a looped shot): a leak of 8 s from
    // 3 s matches 3 s, 15 s and 27 s equally, and the pictures alone cannot choose.
    let clip = Clip::new(1);
    let period = (12.0 * RATE) as usize;
    let job: Vec<Thumb> = (0..(JOB_SECONDS * RATE) as usize).map(|k| Thumb::new(Luma::packed(&clip.picture(k % period, [0.0, 0.0, 1.0, 1.0], SIZE, |v| v), SIZE), k as f64 / RATE)).collect();
    let leak = clip.leak(3.0, 8.0, 7);
    let found = contenders(&job, RATE, &leak, 3, 4);
    let mut offsets: Vec<f64> = found.iter().map(|c| c.offset).collect();
    offsets.sort_by(f64::total_cmp);
    assert_eq!(offsets.len(), 3, "{found:?}");
    assert!(offsets.iter().zip([3.0, 15.0, 27.0]).all(|(o, at)| (o - at).abs() <= 3.0 / RATE), "{found:?}");
    assert!(found.iter().all(|c| c.agreement > 0.9 && c.margin() < MIN_MARGIN), "{found:?}");
    assert_eq!(align_in_time(&job, RATE, &leak, 3), Some(found[0]), "the best contender is the alignment");

    // Where the job does not repeat, the right offset is the only one.
    let found = contenders(&clip.job(), RATE, &leak, 3, 4);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!((found[0].offset - 3.0).abs() <= 3.0 / RATE, "{found:?}");
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
