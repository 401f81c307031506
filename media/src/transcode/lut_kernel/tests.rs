use super::*;

/// A 17-point LUT that moves every channel differently (a log-to-display-like curve with
/// cross-talk), so a wrong corner or weight shows.
fn show_lut() -> Cube {
    let n = 17;
    let last = (n - 1) as f32;
    let mut table = Vec::new();
    for b in 0..n {
        for g in 0..n {
            for r in 0..n {
                let (r, g, b) = (r as f32 / last, g as f32 / last, b as f32 / last);
                table.push([r.powf(0.6), (0.2 * r + 0.8 * g).powf(0.7), (0.9 * b + 0.1 * g).sqrt()]);
            }
        }
    }
    Cube { size: n, domain_min: [0.0; 3], domain_max: [1.0; 3], table }
}

/// Pseudo-random 10-bit samples over the whole code range, and a smooth stretch.
fn samples(len: usize, seed: u32) -> Vec<u16> {
    let mut s = seed;
    (0..len)
        .map(|i| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if i % 3 == 0 { (i * 7 % 1024) as u16 } else { (s >> 22) as u16 }
        })
        .collect()
}

/// What the pass should give, worked out independently: f64 matrices from the standards'
/// Kr and Kb, the LUT through `Cube::apply` (the parser's reference interpolation).
fn expected(cube: &Cube, kr: f64, kb: f64, full: bool, y: &[u16], u: u16, v: u16) -> (Vec<f64>, f64, f64) {
    let kg = 1.0 - kr - kb;
    let (yo, ys, cs) = if full { (0.0, 1023.0, 1023.0) } else { (64.0, 876.0, 896.0) };
    let (cb, cr) = ((f64::from(u) - 512.0) / cs, (f64::from(v) - 512.0) / cs);
    let (mut luma, mut sb, mut sr) = (Vec::new(), 0.0, 0.0);
    for &l in y {
        let yy = (f64::from(l) - yo) / ys;
        let r = yy + 2.0 * (1.0 - kr) * cr;
        let b = yy + 2.0 * (1.0 - kb) * cb;
        let g = (yy - kr * r - kb * b) / kg;
        let o = cube.apply([r as f32, g as f32, b as f32]).map(f64::from);
        let y709 = 0.2126 * o[0] + 0.7152 * o[1] + 0.0722 * o[2];
        luma.push(y709 * 876.0 + 64.0);
        sb += (o[2] - y709) / 1.8556;
        sr += (o[0] - y709) / 1.5748;
    }
    let n = y.len() as f64;
    (luma, sb / n * 896.0 + 512.0, sr / n * 896.0 + 512.0)
}

fn check_against_reference(kernel: &LutKernel, cube: &Cube, kr: f64, kb: f64, full: bool, simd: bool) {
    let w = 64;
    let (y, u, v) = (samples(w, 1), samples(w / 2, 2), samples(w / 2, 3));
    let (mut yo, mut uo, mut vo) = (vec![0; w], vec![0; w / 2], vec![0; w / 2]);
    if simd {
        kernel.row(&y, &u, &v, &mut yo, &mut uo, &mut vo);
    } else {
        for x in (0..w).step_by(2) {
            let (ys, cb, cr) = kernel.pair(&y[x..x + 2], u[x / 2], v[x / 2]);
            (yo[x], yo[x + 1], uo[x / 2], vo[x / 2]) = (ys[0], ys[1], cb, cr);
        }
    }
    for x in (0..w).step_by(2) {
        let (luma, cb, cr) = expected(cube, kr, kb, full, &y[x..x + 2], u[x / 2], v[x / 2]);
        for i in 0..2 {
            let clamped = luma[i].clamp(0.0, 1023.0);
            assert!((f64::from(yo[x + i]) - clamped).abs() <= 1.0, "luma at {}: {} vs {clamped:.2}", x + i, yo[x + i]);
        }
        assert!((f64::from(uo[x / 2]) - cb.clamp(0.0, 1023.0)).abs() <= 1.0, "Cb at {x}: {} vs {cb:.2}", uo[x / 2]);
        assert!((f64::from(vo[x / 2]) - cr.clamp(0.0, 1023.0)).abs() <= 1.0, "Cr at {x}: {} vs {cr:.2}", vo[x / 2]);
    }
}

#[test]
fn the_plain_pass_matches_an_independent_reference_for_each_matrix_and_range() {
    let cube = show_lut();
    for (matrix, kr, kb) in [("709", 0.2126, 0.0722), ("170m", 0.299, 0.114), ("2020_ncl", 0.2627, 0.0593)] {
        for full in [false, true] {
            check_against_reference(&LutKernel::build(&cube, matrix, full), &cube, kr, kb, full, false);
        }
    }
}

#[test]
fn the_avx2_pass_matches_the_same_reference() {
    if !LutKernel::available() {
        eprintln!("this CPU has no AVX2 and FMA: the picture chain uses FFmpeg's lut3d, nothing to compare");
        return;
    }
    let cube = show_lut();
    for (matrix, kr, kb) in [("709", 0.2126, 0.0722), ("170m", 0.299, 0.114)] {
        for full in [false, true] {
            check_against_reference(&LutKernel::new(&cube, matrix, full).unwrap(), &cube, kr, kb, full, true);
        }
    }
}

#[test]
fn a_whole_picture_with_an_odd_width_goes_through_with_padding_untouched() {
    // 21 pixels: two groups of eight, then two pairs and a lone pixel; rows are padded.
    let (w, h) = (21u32, 3u32);
    let mut src = frame::Video::new(Pixel::YUV422P10LE, w, h);
    for row in 0..h as usize {
        plane_mut(&mut src, 0, row)[..21].copy_from_slice(&samples(21, row as u32));
        plane_mut(&mut src, 1, row)[..11].copy_from_slice(&samples(11, 10 + row as u32));
        plane_mut(&mut src, 2, row)[..11].copy_from_slice(&samples(11, 20 + row as u32));
    }
    src.set_pts(Some(42));
    let cube = show_lut();
    let kernel = LutKernel::build(&cube, "709", false);
    let out = kernel.apply(&src);
    assert_eq!((out.width(), out.height(), out.pts(), out.format()), (w, h, Some(42), Pixel::YUV422P10LE));
    assert_eq!((out.color_space(), out.color_range()), (Space::BT709, Range::MPEG));
    for row in 0..h as usize {
        let (y, u, v) = (plane(&src, 0, row), plane(&src, 1, row), plane(&src, 2, row));
        for x in (0..21).step_by(2) {
            let pair = if x + 1 < 21 { 2 } else { 1 };
            let (luma, cb, cr) = expected(&cube, 0.2126, 0.0722, false, &y[x..x + pair], u[x / 2], v[x / 2]);
            for (i, want) in luma.iter().enumerate().take(pair) {
                let got = f64::from(plane(&out, 0, row)[x + i]);
                assert!((got - want.clamp(0.0, 1023.0)).abs() <= 1.0, "row {row} x {}: {got} vs {want:.2}", x + i);
            }
            assert!((f64::from(plane(&out, 1, row)[x / 2]) - cb.clamp(0.0, 1023.0)).abs() <= 1.0, "row {row} Cb {x}");
            assert!((f64::from(plane(&out, 2, row)[x / 2]) - cr.clamp(0.0, 1023.0)).abs() <= 1.0, "row {row} Cr {x}");
        }
    }
}

#[test]
fn an_identity_lut_on_bt709_keeps_in_gamut_pictures() {
    let n = 2;
    let table = (0..8).map(|i| [(i & 1) as f32, ((i >> 1) & 1) as f32, ((i >> 2) & 1) as f32]).collect();
    let cube = Cube { size: n, domain_min: [0.0; 3], domain_max: [1.0; 3], table };
    let kernel = LutKernel::build(&cube, "709", false);
    // Grey ramp and a mid colour pair: in gamut, so the round trip is exact to a code.
    for (y, u, v) in [([64u16, 940], 512u16, 512u16), ([300, 310], 480, 560), ([500, 500], 600, 450)] {
        let (ys, cb, cr) = kernel.pair(&y, u, v);
        assert!(ys.iter().zip(y).all(|(a, b)| a.abs_diff(b) <= 1), "{ys:?} vs {y:?}");
        assert!(cb.abs_diff(u) <= 1 && cr.abs_diff(v) <= 1, "({cb}, {cr}) vs ({u}, {v})");
    }
}

/// The kernel against FFmpeg's own route (swscale to planar 16-bit RGB, `lut3d`
/// tetrahedral, back), both run as the picture filter runs them, on a picture with smooth
/// gradients and grain: they must agree as closely as two 10-bit renderings can.
#[test]
fn the_pass_agrees_with_ffmpegs_lut3d_route() {
    use super::super::filter::PictureFilter;
    use super::super::picture::{ColourWork, PicturePlan};
    if !LutKernel::available() {
        eprintln!("this CPU has no AVX2 and FMA: the picture chain uses FFmpeg's lut3d, nothing to compare");
        return;
    }
    let (w, h) = (256u32, 64u32);
    let mut src = frame::Video::new(Pixel::YUV422P10LE, w, h);
    let grain = samples((w * h) as usize, 7);
    for row in 0..h as usize {
        let y: Vec<u16> = (0..w as usize).map(|x| (64 + x * 876 / 256) as u16 + grain[row * 256 + x] % 24).collect();
        let u: Vec<u16> = (0..w as usize / 2).map(|x| (200 + x * 5 + row) as u16).collect();
        let v: Vec<u16> = (0..w as usize / 2).map(|x| (800 - x * 4 - row) as u16).collect();
        plane_mut(&mut src, 0, row)[..w as usize].copy_from_slice(&y);
        plane_mut(&mut src, 1, row)[..w as usize / 2].copy_from_slice(&u);
        plane_mut(&mut src, 2, row)[..w as usize / 2].copy_from_slice(&v);
    }
    src.set_pts(Some(0));
    src.set_color_range(Range::MPEG);
    let cube = show_lut();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("show.cube");
    std::fs::write(&file, cube.canonical_text()).unwrap();
    let run = |plan: PicturePlan| {
        let mut filter = PictureFilter::new(plan, &src, ffmpeg_next::Rational(1, 25)).unwrap();
        // The buffer source takes the frame's references: hand it a reference of its own.
        filter.push(&super::super::decode::share(&src)).unwrap();
        filter.flush().unwrap();
        filter.pull().expect("a picture out")
    };
    let work = ColourWork::Lut { matrix: "709", full_range: false };
    let ffmpeg = run(PicturePlan { before: work.chain(Some(&file)), lut: None, after: None, colour: work.clone() });
    let kernel = LutKernel::new(&cube, "709", false).unwrap();
    let ours = run(PicturePlan { before: Some("format=yuv422p10le".into()), lut: Some(kernel), after: None, colour: work });
    assert_eq!(ours.format(), ffmpeg.format());
    for (p, width, bound) in [(0, w as usize, 50.0), (1, w as usize / 2, 50.0), (2, w as usize / 2, 50.0)] {
        let mut se = 0.0;
        for row in 0..h as usize {
            let (a, b) = (&plane(&ours, p, row)[..width], &plane(&ffmpeg, p, row)[..width]);
            se += a.iter().zip(b).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum::<f64>();
        }
        let mse = se / (width * h as usize) as f64;
        let psnr = 10.0 * (1023.0f64.powi(2) / mse.max(1e-9)).log10();
        println!("plane {p}: {psnr:.1} dB from FFmpeg's lut3d route");
        assert!(psnr >= bound, "plane {p}: {psnr:.1} dB from FFmpeg's lut3d route (bound {bound})");
    }
}
