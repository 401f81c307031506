//! The detector on synthetic video: a moving scene marked A or B per position, leaked
//! cropped by 5 % a side, with tones changed and noise added, read position by position.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::forensic_mark::align::{align_in_time, Thumb};
use crate::forensic_mark::Variant;

const SEED: [u8; 32] = *b"a job's mark seed, 32 bytes long";
const SIZE: (usize, usize) = (320, 180);
const FRAMES: usize = 25;

/// Luma of a scene of soft blobs, each drifting its own way (no pan, which a crop could
/// pass for), at (`x`, `y`) in fractions of the picture.
fn scene(blobs: &[[f64; 6]], frame: usize, x: f64, y: f64) -> f64 {
    let t = frame as f64;
    120.0 + blobs.iter().map(|&[cx, cy, r, a, vx, vy]| a * (-((x - cx - vx * t).powi(2) + (y - cy - vy * t).powi(2)) / (r * r)).exp()).sum::<f64>()
}

fn render(blobs: &[[f64; 6]], frame: usize) -> Vec<u8> {
    let (w, h) = SIZE;
    (0..w * h).map(|i| scene(blobs, frame, ((i % w) as f64 + 0.5) / w as f64, ((i / w) as f64 + 0.5) / h as f64).round() as u8).collect()
}

/// `plane` seen through `window`, tones changed, noise added, 8 bits.
fn leaked(plane: &[u8], window: [f64; 4], rng: &mut StdRng) -> Vec<u8> {
    let job = Luma::packed(plane, SIZE);
    let [left, top, right, bottom] = window;
    let (w, h) = SIZE;
    (0..w * h)
        .map(|i| {
            let u = left + ((i % w) as f64 + 0.5) / w as f64 * (right - left);
            let v = top + ((i / w) as f64 + 0.5) / h as f64 * (bottom - top);
            let tone = 255.0 * (job.at(u * w as f64, v * h as f64) / 255.0).powf(1.1) * 1.05 + 4.0;
            (tone + rng.gen_range(-1.5..1.5)).round().clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// The job's positions 10 to 17, the pictures of 14 to 17 those of 10 to 13 again (a looped
/// shot) under their own patterns, and a leak of 10 to 13 showing `word`'s variants; with
/// `tail`, only that many frames at the end of each position are marked (a spliced H.264
/// rendition's A and B), else every frame.
fn looped_job_and_leak(word: &[Variant], tail: Option<usize>, rng: &mut StdRng) -> (Vec<PositionFrames>, Frames) {
    let blobs: Vec<[f64; 6]> = (0..50)
        .map(|_| [rng.gen(), rng.gen(), rng.gen_range(0.02..0.12), rng.gen_range(-60.0..60.0), rng.gen_range(-0.006..0.006), rng.gen_range(-0.006..0.006)])
        .collect();
    let mut positions = Vec::new();
    let mut leak = Frames { size: SIZE, ..Default::default() };
    for p in 0..2 * word.len() {
        let field = Pattern::new(&SEED, p as u64 + 10).field(SIZE.0, SIZE.1);
        let (mut a, mut b) = (Frames { size: SIZE, ..Default::default() }, Frames { size: SIZE, ..Default::default() });
        for k in 0..FRAMES {
            let frame = p * FRAMES + k;
            let plain = render(&blobs, frame % (word.len() * FRAMES));
            for (variant, out) in [(Variant::A, &mut a), (Variant::B, &mut b)] {
                let mut marked = plain.clone();
                if tail.is_none_or(|t| k + t >= FRAMES) {
                    field.apply(&mut marked, SIZE.0, variant, frame as u64);
                }
                if word.get(p) == Some(&variant) {
                    leak.planes.push(leaked(&marked, [0.05, 0.04, 0.95, 0.96], rng));
                    leak.times.push(frame as f64 / 25.0);
                }
                out.planes.push(marked);
                out.times.push(k as f64 / 25.0);
            }
        }
        positions.push(PositionFrames { position: p as u64 + 10, first_frame: (p * FRAMES) as u64, a: Arc::new(a), b: Arc::new(b) });
    }
    (positions, leak)
}

#[test]
fn each_position_reads_as_the_variant_the_leak_shows() {
    let mut rng = StdRng::seed_from_u64(19);
    let word = [Variant::B, Variant::A, Variant::A, Variant::B];
    let (positions, leak) = looped_job_and_leak(&word, None, &mut rng);
    let reading = read(&leak, 25.0, 0.0, &positions, &SEED).expect("the leak lies on the positions");
    let w = reading.window;
    assert!((w.left - 0.05).abs() < 0.01 && (w.bottom - 0.96).abs() < 0.01, "{w:?}");
    let read: Vec<(u64, bool)> = reading.observations.iter().map(|o| (o.position, o.llr > 0.0)).collect();
    let expected: Vec<(u64, bool)> = word.iter().enumerate().map(|(p, v)| (p as u64 + 10, *v == Variant::B)).collect();
    assert_eq!(read, expected, "{:?}", reading.observations);
    assert!(reading.observations.iter().all(|o| o.llr.abs() > 3.0), "{:?}", reading.observations);
    assert_eq!(reading.frames_read, word.len() * (FRAMES - 2 * EDGE_FRAMES), "every frame but those next to a cut");
}

/// Where only the last frames of each position are marked, those are read, and read right.
#[test]
fn where_only_the_tails_are_marked_the_tails_are_read() {
    let mut rng = StdRng::seed_from_u64(23);
    let word = [Variant::A, Variant::B, Variant::B, Variant::A];
    let (positions, leak) = looped_job_and_leak(&word, Some(3), &mut rng);
    let reading = read(&leak, 25.0, 0.0, &positions, &SEED).expect("the leak lies on the positions");
    let read: Vec<(u64, bool)> = reading.observations.iter().map(|o| (o.position, o.llr > 0.0)).collect();
    let expected: Vec<(u64, bool)> = word.iter().enumerate().map(|(p, v)| (p as u64 + 10, *v == Variant::B)).collect();
    assert_eq!(read, expected, "{:?}", reading.observations);
    // A leak picture is read as the job's frame it correlates best with, and a tail frame
    // much like its unmarked neighbour is sometimes taken for it (10 of 12 here): then it is
    // not read.
    assert!((2 * word.len()..=3 * word.len()).contains(&reading.frames_read), "the tails' frames, and no other: {}", reading.frames_read);
}

#[test]
fn where_the_job_repeats_the_marks_read_strongest_at_the_leaks_own_positions() {
    // The same pictures 4 s later carry other positions' patterns: read there, the leak's
    // marks hardly project on them. Read 0.6 s late, the pictures have moved on: what they
    // leave unexplained is large, and steady over a position's frames (its amplitudes are
    // as large as the mark's), but no pattern's.
    let mut rng = StdRng::seed_from_u64(23);
    let word = [Variant::A, Variant::B, Variant::B, Variant::A];
    let (positions, leak) = looped_job_and_leak(&word, None, &mut rng);
    let right = read(&leak, 25.0, 0.0, &positions, &SEED).unwrap();
    let twin = read(&leak, 25.0, 4.0, &positions, &SEED).unwrap();
    let late = read(&leak, 25.0, 0.6, &positions, &SEED).unwrap();
    assert_eq!(twin.observations.iter().map(|o| o.position).collect::<Vec<_>>(), [14, 15, 16, 17], "{twin:?}");
    assert!(right.agreement > 0.9 && twin.agreement > 0.9, "the pictures agree at both: {right:?} {twin:?}");
    println!("strength: right offset {:.3}, 4 s later {:.3}, 0.6 s later {:.3}", right.strength, twin.strength, late.strength);
    assert!(twin.strength < right.strength / 4.0 && late.strength < right.strength / 4.0, "{right:?} {twin:?} {late:?}");
}

/// A still picture of soft blobs large and small, `TEXTURE` pixels, zoomed into steadily.
const TEXTURE: (usize, usize) = (1280, 720);
/// The zoom's growth a second: a 5 % crop a side passes for 1.5 s of it.
const ZOOM_RATE: f64 = 0.0702;

fn texture(rng: &mut StdRng) -> Vec<u8> {
    let blobs: Vec<[f64; 4]> = (0..120).map(|_| [rng.gen(), rng.gen(), rng.gen_range(0.005..0.08), rng.gen_range(-50.0..50.0)]).collect();
    let (w, h) = TEXTURE;
    (0..w * h)
        .map(|i| {
            let (x, y) = (((i % w) as f64 + 0.5) / w as f64, ((i / w) as f64 + 0.5) / h as f64);
            let v: f64 = blobs.iter().map(|&[cx, cy, r, a]| a * (-((x - cx).powi(2) + (y - cy).powi(2)) / (r * r)).exp()).sum();
            (128.0 + v).round().clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// Frame `frame` of the zoom (25 a second) at the working size.
fn zoomed(texture: &[u8], frame: usize) -> Vec<u8> {
    let t = Luma::packed(texture, TEXTURE);
    let half = 0.5 / (ZOOM_RATE * frame as f64 / 25.0).exp();
    let (w, h) = SIZE;
    (0..w * h)
        .map(|i| {
            let u = 0.5 - half + ((i % w) as f64 + 0.5) / w as f64 * 2.0 * half;
            let v = 0.5 - half + ((i / w) as f64 + 0.5) / h as f64 * 2.0 * half;
            t.at(u * TEXTURE.0 as f64, v * TEXTURE.1 as f64).round() as u8
        })
        .collect()
}

#[test]
fn a_leak_of_a_steady_zoom_is_placed_where_its_marks_read() {
    // A crop of 5 % a side of a zoom is the zoom 1.5 s later, uncropped: the pictures place
    // the leak there, where it carries other positions' patterns. The marks read no
    // stronger than chance there; near it, at the leak's own time and crop, they read.
    let mut rng = StdRng::seed_from_u64(31);
    let texture = texture(&mut rng);
    let word = [Variant::A, Variant::B, Variant::B, Variant::A, Variant::B];
    let (first, count) = (4, 16);
    let mut positions = Vec::new();
    let mut leak = Frames { size: SIZE, ..Default::default() };
    for p in 0..count {
        let field = Pattern::new(&SEED, p as u64).field(SIZE.0, SIZE.1);
        let (mut a, mut b) = (Frames { size: SIZE, ..Default::default() }, Frames { size: SIZE, ..Default::default() });
        for k in 0..FRAMES {
            let frame = p * FRAMES + k;
            let plain = zoomed(&texture, frame);
            for (variant, out) in [(Variant::A, &mut a), (Variant::B, &mut b)] {
                let mut marked = plain.clone();
                field.apply(&mut marked, SIZE.0, variant, frame as u64);
                if p >= first && word.get(p - first) == Some(&variant) {
                    leak.planes.push(leaked(&marked, [0.05, 0.05, 0.95, 0.95], &mut rng));
                    leak.times.push((frame - first * FRAMES) as f64 / 25.0);
                }
                out.planes.push(marked);
                out.times.push(k as f64 / 25.0);
            }
        }
        positions.push(PositionFrames { position: p as u64, first_frame: (p * FRAMES) as u64, a: Arc::new(a), b: Arc::new(b) });
    }
    let job: Vec<Thumb> = positions.iter().flat_map(|p| (0..p.a.len()).map(|k| Thumb::new(p.a.luma(k), (p.first_frame as usize + k) as f64 / 25.0))).collect();
    let leak_thumbs: Vec<Thumb> = (0..leak.len()).map(|i| Thumb::new(leak.luma(i), leak.times[i])).collect();
    let placed = align_in_time(&job, 25.0, &leak_thumbs, 1).expect("placed");
    println!("the pictures place the leak at {:.2} s (it starts at {first} s)", placed.offset);
    assert!(placed.offset > first as f64 + 0.75, "{placed:?}");

    let there = read(&leak, 25.0, placed.offset, &positions, &SEED).unwrap();
    let right = read(&leak, 25.0, first as f64, &positions, &SEED).unwrap();
    println!(
        "strength (chance, standard errors above it): where the pictures place it {:.3} ({:.3}, {:.1}), at its own time {:.3} ({:.3}, {:.1})",
        there.strength, there.chance, there.above_chance, right.strength, right.chance, right.above_chance
    );
    assert!(there.above_chance < 3.0 && right.above_chance > 10.0, "{there:?} {right:?}");

    let (from, to) = near_span(&leak, placed.offset);
    assert!(from <= first as f64 && to >= placed.offset + 5.0, "{from} {to}");
    let (at, strength, _) = strongest_near(&leak, 25.0, placed.offset, &positions, &SEED).unwrap();
    println!("the marks read strongest at {at:.2} s ({strength:.3})");
    assert!((at - first as f64).abs() <= NEAR_STEP, "{at}");
    let reading = read(&leak, 25.0, at, &positions, &SEED).unwrap();
    let read: Vec<(u64, bool)> = reading.observations.iter().map(|o| (o.position, o.llr > 0.0)).collect();
    let expected: Vec<(u64, bool)> = word.iter().enumerate().map(|(p, v)| ((p + first) as u64, *v == Variant::B)).collect();
    assert_eq!(read, expected, "{reading:?}");
}

/// A reading with these figures (the rest alike).
fn reading(strength: f64, chance: f64, above_chance: f64, window: Window) -> Reading {
    Reading { observations: Vec::new(), window, agreement: 0.9, frames_read: 600, strength, chance, above_chance }
}

#[test]
fn a_reading_is_preferred_by_how_far_it_stands_above_chance_not_by_its_strength() {
    // leak-bench --clip dark-grain, viewer 3 of seed 5: its own offset, and the search's
    // strongest, through a window a quarter of the picture
    let own = reading(0.106, 0.064, 4.3, Window { left: 0.05, top: 0.05, right: 0.95, bottom: 0.95 });
    let small = reading(0.147, 0.147, -0.1, Window { left: 0.253, top: 0.0, right: 0.777, bottom: 0.512 });
    assert!(!small.reads_above(&own), "a stronger reading at chance must not replace one 4.3 standard errors above it");
    assert!(own.reads_above(&small));
    // a zoom's leak: where the pictures put it, and its own offset found by the search
    let pictures = reading(0.016, 0.015, 0.6, Window::WHOLE);
    let found = reading(0.171, 0.048, 18.1, Window { left: 0.044, top: 0.038, right: 0.956, bottom: 0.951 });
    assert!(found.reads_above(&pictures));
}

#[test]
fn of_a_leak_read_at_several_offsets_the_one_furthest_above_chance_is_kept() {
    // the dark, grainy leak above, read at its own offset and at one its repeating picture
    // leaves, there through a window a quarter of the picture: stronger, at chance
    let own = reading(0.106, 0.064, 4.3, Window { left: 0.05, top: 0.05, right: 0.95, bottom: 0.95 });
    let small = reading(0.147, 0.147, -0.1, Window { left: 0.253, top: 0.0, right: 0.777, bottom: 0.512 });
    let weak = reading(0.02, 0.019, 0.3, Window::WHOLE);
    let (at, kept) = furthest_above_chance([(3.5, small), (0.0, own), (7.0, weak)]).unwrap();
    assert_eq!((at, kept.above_chance), (0.0, 4.3));
    let ties = [(1.0, reading(0.1, 0.05, 2.0, Window::WHOLE)), (2.0, reading(0.2, 0.05, 2.0, Window::WHOLE))];
    assert_eq!(furthest_above_chance(ties).map(|(at, _)| at), Some(1.0), "the first of equals");
    assert!(furthest_above_chance(Vec::<(f64, Reading)>::new()).is_none());
}
