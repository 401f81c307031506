//! The LUT pass over eight pixels at a time with AVX2 and FMA.
//!
//! Per group: luma and the two chroma pairs to float, R'G'B' by the input matrix, the
//! lattice cell and the tetrahedron (from the largest and smallest fraction, branch-free),
//! then per pixel four RGBX corners blended two pixels to a register, and back to BT.709
//! Y'CbCr, chroma pairs averaged with a horizontal add.

use std::arch::x86_64::*;

use super::Coeffs;

/// The pass over the first `whole` pixels of a row (`whole` a multiple of 8).
///
/// # Safety
/// The CPU must have AVX2 and FMA; `y` and `yo` must hold at least `whole` samples, the
/// chroma slices at least `whole / 2`; `table` must be the `n`-point lattice (`n >= 2`).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
// SAFETY: unsafe for the target feature and the unchecked loads and stores; the caller
// meets the contract above (`LutKernel::row_simd` asserts the lengths, checks the CPU).
pub unsafe fn row(table: &[[f32; 4]], n: usize, k: &Coeffs, whole: usize, y: &[u16], u: &[u16], v: &[u16], yo: &mut [u16], uo: &mut [u16], vo: &mut [u16]) {
    debug_assert!(table.len() == n * n * n && whole.is_multiple_of(8) && y.len() >= whole && u.len() >= whole / 2);
    let lp = table.as_ptr() as *const f32;
    let mut x = 0;
    while x < whole {
        let (r, g, b) = rgb(k, n, y.as_ptr().add(x), u.as_ptr().add(x / 2), v.as_ptr().add(x / 2));
        let (idx, wts) = tetrahedra(n, r, g, b);
        let mut px = [_mm256_setzero_ps(); 4];
        for (pair, out) in px.iter_mut().enumerate() {
            let (p, q) = (2 * pair, 2 * pair + 1);
            let sel = _mm256_setr_epi32(p as i32, p as i32, p as i32, p as i32, q as i32, q as i32, q as i32, q as i32);
            let mut acc = _mm256_setzero_ps();
            for c in 0..4 {
                // Lattice indices are clamped to the table (see `tetrahedra`), times 4 floats.
                let lo = _mm_loadu_ps(lp.add(idx[c][p] as usize));
                let e = _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(lo), _mm_loadu_ps(lp.add(idx[c][q] as usize)));
                acc = _mm256_fmadd_ps(e, _mm256_permutevar8x32_ps(wts[c], sel), acc);
            }
            *out = acc;
        }
        store(k, px, yo.as_mut_ptr().add(x), uo.as_mut_ptr().add(x / 2), vo.as_mut_ptr().add(x / 2));
        x += 8;
    }
}

/// Eight pixels' R'G'B', clamped to [0, 1] and scaled to lattice units.
#[inline]
#[target_feature(enable = "avx2,fma")]
// SAFETY: called from `row` only (AVX2 and FMA present), with pointers to the group's 8
// luma and 4 + 4 chroma samples, inside the slices `row` was given.
unsafe fn rgb(k: &Coeffs, n: usize, y: *const u16, u: *const u16, v: *const u16) -> (__m256, __m256, __m256) {
    let dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    let yi = _mm256_cvtepu16_epi32(_mm_loadu_si128(y as *const __m128i));
    let ui = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(_mm_cvtepu16_epi32(_mm_loadl_epi64(u as *const __m128i))), dup);
    let vi = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(_mm_cvtepu16_epi32(_mm_loadl_epi64(v as *const __m128i))), dup);
    let yy = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(yi), _mm256_set1_ps(k.y_off)), _mm256_set1_ps(k.y_scale));
    let mid = _mm256_set1_ps(512.0);
    let uu = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(ui), mid), _mm256_set1_ps(k.c_scale));
    let vv = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(vi), mid), _mm256_set1_ps(k.c_scale));
    let scale = _mm256_set1_ps((n - 1) as f32);
    let unit = |a: __m256| _mm256_mul_ps(_mm256_min_ps(_mm256_max_ps(a, _mm256_setzero_ps()), _mm256_set1_ps(1.0)), scale);
    let r = unit(_mm256_fmadd_ps(vv, _mm256_set1_ps(k.rv), yy));
    let g = unit(_mm256_fmadd_ps(uu, _mm256_set1_ps(k.gu), _mm256_fmadd_ps(vv, _mm256_set1_ps(k.gv), yy)));
    let b = unit(_mm256_fmadd_ps(uu, _mm256_set1_ps(k.bu), yy));
    (r, g, b)
}

/// The four corners (as float offsets into the table) and weights of each pixel's
/// tetrahedron: from the cell's origin along the largest fraction's axis, then away from
/// the smallest's, to the far corner; ties pick red, green, blue in that order.
#[inline]
#[target_feature(enable = "avx2,fma")]
// SAFETY: unsafe for the target feature only (called from `row`); touches no memory but
// its own arrays.
unsafe fn tetrahedra(n: usize, r: __m256, g: __m256, b: __m256) -> ([[i32; 8]; 4], [__m256; 4]) {
    let nf = n as f32;
    let lim = _mm256_set1_ps(nf - 2.0);
    let floor = |a: __m256| _mm256_min_ps(_mm256_floor_ps(a), lim);
    let (ir, ig, ib) = (floor(r), floor(g), floor(b));
    let (fr, fg, fb) = (_mm256_sub_ps(r, ir), _mm256_sub_ps(g, ig), _mm256_sub_ps(b, ib));
    let f1 = _mm256_max_ps(_mm256_max_ps(fr, fg), fb);
    let f3 = _mm256_min_ps(_mm256_min_ps(fr, fg), fb);
    let f2 = _mm256_sub_ps(_mm256_add_ps(_mm256_add_ps(fr, fg), fb), _mm256_add_ps(f1, f3));
    let (one, sn, sn2) = (_mm256_set1_ps(1.0), _mm256_set1_ps(nf), _mm256_set1_ps(nf * nf));
    let red_max = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(fr, fg), _mm256_cmp_ps::<_CMP_GE_OQ>(fr, fb));
    let smax = _mm256_blendv_ps(_mm256_blendv_ps(sn2, sn, _mm256_cmp_ps::<_CMP_GE_OQ>(fg, fb)), one, red_max);
    let blue_min = _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(fb, fg), _mm256_cmp_ps::<_CMP_LE_OQ>(fb, fr));
    let smin = _mm256_blendv_ps(_mm256_blendv_ps(one, sn, _mm256_cmp_ps::<_CMP_LE_OQ>(fg, fr)), sn2, blue_min);
    let base = _mm256_fmadd_ps(_mm256_fmadd_ps(ib, sn, ig), sn, ir);
    let all = _mm256_set1_ps(1.0 + nf + nf * nf);
    let corners = [base, _mm256_add_ps(base, smax), _mm256_sub_ps(_mm256_add_ps(base, all), smin), _mm256_add_ps(base, all)];
    let mut idx = [[0i32; 8]; 4];
    for (i, c) in corners.iter().enumerate() {
        // Exact: offsets stay below 4 * 65^3, well inside f32's integers.
        _mm256_storeu_si256(idx[i].as_mut_ptr() as *mut __m256i, _mm256_cvtps_epi32(_mm256_mul_ps(*c, _mm256_set1_ps(4.0))));
    }
    (idx, [_mm256_sub_ps(one, f1), _mm256_sub_ps(f1, f2), _mm256_sub_ps(f2, f3), f3])
}

/// Eight R'G'B' results (as four RGBX|RGBX pairs) to BT.709 10-bit limited Y'CbCr.
#[inline]
#[target_feature(enable = "avx2,fma")]
// SAFETY: called from `row` only, with pointers to the group's 8 luma and 4 + 4 chroma
// output samples, inside the slices `row` was given.
unsafe fn store(k: &Coeffs, px: [__m256; 4], yo: *mut u16, uo: *mut u16, vo: *mut u16) {
    // px: p0|p1, p2|p3, p4|p5, p6|p7 -> R, G, B vectors in pixel order.
    let a = _mm256_permute2f128_ps::<0x20>(px[0], px[2]);
    let b = _mm256_permute2f128_ps::<0x31>(px[0], px[2]);
    let c = _mm256_permute2f128_ps::<0x20>(px[1], px[3]);
    let d = _mm256_permute2f128_ps::<0x31>(px[1], px[3]);
    let (t0, t1) = (_mm256_unpacklo_ps(a, b), _mm256_unpacklo_ps(c, d));
    let (t2, t3) = (_mm256_unpackhi_ps(a, b), _mm256_unpackhi_ps(c, d));
    let r = _mm256_shuffle_ps::<0b01_00_01_00>(t0, t1);
    let g = _mm256_shuffle_ps::<0b11_10_11_10>(t0, t1);
    let bl = _mm256_shuffle_ps::<0b01_00_01_00>(t2, t3);
    let yl = _mm256_fmadd_ps(r, _mm256_set1_ps(k.kr), _mm256_fmadd_ps(g, _mm256_set1_ps(k.kg), _mm256_mul_ps(bl, _mm256_set1_ps(k.kb))));
    let cb = _mm256_mul_ps(_mm256_sub_ps(bl, yl), _mm256_set1_ps(k.cb_s));
    let cr = _mm256_mul_ps(_mm256_sub_ps(r, yl), _mm256_set1_ps(k.cr_s));
    let code = |a: __m256, scale: f32, off: f32| {
        let v = _mm256_fmadd_ps(a, _mm256_set1_ps(scale), _mm256_set1_ps(off));
        _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1023.0)))
    };
    let y16 = _mm256_permute4x64_epi64::<0b00_00_10_00>(_mm256_packus_epi32(code(yl, 876.0, 64.0), code(yl, 876.0, 64.0)));
    _mm_storeu_si128(yo as *mut __m128i, _mm256_castsi256_si128(y16));
    // Pair sums: cb01 cb23 cr01 cr23 | cb45 cb67 cr45 cr67.
    let sums = code(_mm256_hadd_ps(cb, cr), 896.0, 512.0);
    let c16 = _mm256_packus_epi32(sums, sums);
    let c16 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(c16, _mm256_setr_epi32(0, 4, 1, 5, 0, 0, 0, 0)));
    _mm_storel_epi64(uo as *mut __m128i, c16);
    _mm_storel_epi64(vo as *mut __m128i, _mm_srli_si128::<8>(c16));
}
