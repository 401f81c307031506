//! The mark's promises on synthetic pictures: under one code value per block on flat and
//! dark pictures, and read back through what a leak goes through (cropped, scaled to 360p,
//! contrast, brightness and gamma changed, noise, 8 bits), with the crop known to a tenth of
//! a per cent.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const SEED: [u8; 32] = *b"a job's mark seed, 32 bytes long";
const W: usize = 1280;
const H: usize = 720;

fn marked(plane: &[u8], position: u64, variant: Variant, frame: u64) -> Vec<u8> {
    let mut out = plane.to_vec();
    Pattern::new(&SEED, position).field(W, H).apply(&mut out, W, variant, frame);
    out
}

/// Every 16x16 block's mean absolute change.
fn block_changes(a: &[u8], b: &[u8]) -> Vec<f64> {
    let mut out = Vec::new();
    for by in (0..H).step_by(16) {
        for bx in (0..W).step_by(16) {
            let sum: u32 = (by..by + 16).flat_map(|y| (bx..bx + 16).map(move |x| y * W + x)).map(|i| u32::from(a[i].abs_diff(b[i]))).sum();
            out.push(f64::from(sum) / 256.0);
        }
    }
    out
}

#[test]
fn the_mark_moves_no_block_by_a_code_value_on_flat_grey_or_a_dark_gradient() {
    let grey = vec![128u8; W * H];
    let dark: Vec<u8> = (0..W * H).map(|i| (16 + (i % W) * 24 / W) as u8).collect();
    for (name, plane) in [("grey", &grey), ("dark gradient", &dark)] {
        for variant in [Variant::A, Variant::B] {
            let changes = block_changes(plane, &marked(plane, 7, variant, 3));
            let worst = changes.iter().cloned().fold(0.0, f64::max);
            let mean = changes.iter().sum::<f64>() / changes.len() as f64;
            assert!(worst < 1.0, "{name} {variant:?}: a block changed by {worst:.3} code values");
            // and the mark is there: about the pattern's mean magnitude
            assert!(mean > 0.3, "{name} {variant:?}: mean change {mean:.3}");
        }
    }
}

#[test]
fn patterns_differ_by_position_and_seed_and_stay_within_one() {
    let (a, b) = (Pattern::new(&SEED, 1), Pattern::new(&SEED, 2));
    assert_eq!(a, Pattern::new(&SEED, 1));
    assert_ne!(a, b);
    assert_ne!(a, Pattern::new(&[0; 32], 1));
    let field = a.field(416, 234);
    assert_eq!(field.values().len(), 416 * 234);
    assert!(field.values().iter().all(|v| (-1.0..=1.0).contains(v)));
    // a fair share of each sign
    let positive = a.signs.iter().filter(|&&s| s > 0.0).count();
    assert!((40..=104).contains(&positive), "{positive} of {CELLS}");
}

/// A textured picture: what a camera original's detail looks like to the mark.
fn texture(rng: &mut StdRng) -> Vec<u8> {
    (0..W * H)
        .map(|i| {
            let (x, y) = ((i % W) as f32, (i / W) as f32);
            let v = 120.0 + 50.0 * (x / 23.0).sin() * (y / 17.0).cos() + 30.0 * ((x + y) / 7.0).sin() + rng.gen_range(-12.0..12.0);
            v.clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// The window (x, y, width, height) of a `W` x `H` picture, bilinearly scaled to `dw` x `dh`.
fn crop_scale(src: &[f32], (cx, cy, cw, ch): (f32, f32, f32, f32), (dw, dh): (usize, usize)) -> Vec<f32> {
    let at = |x: f32, y: f32| {
        let (x, y) = (x.clamp(0.0, (W - 1) as f32), y.clamp(0.0, (H - 1) as f32));
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(W - 1), (y0 + 1).min(H - 1));
        let (tx, ty) = (x - x0 as f32, y - y0 as f32);
        let row = |y: usize| src[y * W + x0] * (1.0 - tx) + src[y * W + x1] * tx;
        row(y0) * (1.0 - ty) + row(y1) * ty
    };
    // each output pixel averages a 2x2 grid of samples over its footprint (a box filter)
    let (sx, sy) = (cw / dw as f32, ch / dh as f32);
    (0..dw * dh)
        .map(|i| {
            let (x, y) = (cx + (i % dw) as f32 * sx, cy + (i / dw) as f32 * sy);
            [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)].iter().map(|(fx, fy)| at(x + fx * sx, y + fy * sy)).sum::<f32>() / 4.0
        })
        .collect()
}

/// What a leak makes of a picture: 10 % cropped, scaled to 640x360, contrast, brightness
/// and gamma changed, noise, 8 bits.
fn leak(picture: &[u8], rng: &mut StdRng) -> Vec<f32> {
    let src: Vec<f32> = picture.iter().map(|&p| f32::from(p)).collect();
    let window = (0.05 * W as f32, 0.05 * H as f32, 0.9 * W as f32, 0.9 * H as f32);
    crop_scale(&src, window, (640, 360))
        .into_iter()
        .map(|v| {
            let v = 255.0 * ((0.85 * v + 14.0) / 255.0).clamp(0.0, 1.0).powf(0.85);
            let noise: f32 = (0..4).map(|_| rng.gen_range(-3.5..3.5)).sum();
            (v + noise).round().clamp(0.0, 255.0)
        })
        .collect()
}

/// The detector's side: the unmarked picture and the position's field, cropped and scaled
/// as it believes the leak was (a tenth of a per cent off; at half a per cent, the unmarked
/// picture's misaligned detail read as up to a quarter of the mark, the same in every frame).
fn expected(picture: &[u8], position: u64) -> (Vec<f32>, Field) {
    let window = (0.051 * W as f32, 0.049 * H as f32, 0.9 * W as f32, 0.9 * H as f32);
    let reference = crop_scale(&picture.iter().map(|&p| f32::from(p)).collect::<Vec<_>>(), window, (640, 360));
    let seen = Window { left: 0.051, top: 0.049, right: 0.951, bottom: 0.949 };
    (reference, Pattern::new(&SEED, position).field_in(seen, 640, 360))
}

#[test]
fn a_leaked_segment_reads_as_its_variant_and_an_unmarked_one_as_neither() {
    let mut rng = StdRng::seed_from_u64(19);
    let picture = texture(&mut rng);
    let mut unmarked = Vec::new();
    for position in 0..6u64 {
        let variant = if rng.gen_bool(0.5) { Variant::B } else { Variant::A };
        let (reference, field) = expected(&picture, position);
        let read: Vec<f64> = (0..3).map(|frame| amplitude(&leak(&marked(&picture, position, variant, frame), &mut rng), &reference, &field)).collect();
        let ratio = llr(&read);
        let right = match variant {
            Variant::A => ratio < -5.0,
            Variant::B => ratio > 5.0,
        };
        assert!(right, "position {position} {variant:?}: amplitudes {read:?}, llr {ratio}");
        // the leak's contrast (0.85, and the gamma) scales what is read, not its sign
        let mean = read.iter().sum::<f64>() / read.len() as f64;
        assert!(mean.abs() > 0.4 * f64::from(AMPLITUDE), "position {position}: {mean}");
        unmarked.extend((0..3).map(|_| amplitude(&leak(&picture, &mut rng), &reference, &field)));
    }
    let worst = unmarked.iter().map(|a| a.abs()).fold(0.0, f64::max);
    assert!(worst < 0.25 * f64::from(AMPLITUDE), "an unmarked picture read as marked: {unmarked:?}");
}

#[test]
fn another_positions_pattern_reads_as_neither() {
    let mut rng = StdRng::seed_from_u64(7);
    let picture = texture(&mut rng);
    let (reference, field) = expected(&picture, 3);
    let read: Vec<f64> = (0..4).map(|frame| amplitude(&leak(&marked(&picture, 4, Variant::A, frame), &mut rng), &reference, &field)).collect();
    let mean = read.iter().sum::<f64>() / read.len() as f64;
    assert!(mean.abs() < 0.25 * f64::from(AMPLITUDE), "{read:?}");
}
