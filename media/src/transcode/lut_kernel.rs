//! The show's LUT applied in one pass over 10-bit 4:2:2 pictures: Y'CbCr decoded with the
//! source's matrix and range, the 3D LUT (tetrahedral), BT.709 limited-range Y'CbCr out.
//!
//! FFmpeg's route (two swscale conversions around `lut3d`) costs about twice as much CPU
//! as the whole pass here, on the decode thread, at the head of every rendition. The pass
//! runs with AVX2 and FMA (checked at run time); without them [`LutKernel::new`] says no
//! and the picture chain uses FFmpeg's `lut3d` instead (see `picture.rs`). Arithmetic is
//! single-precision float throughout; chroma is taken pair-wise as 4:2:2 stores it and
//! the output pair's chroma is the mean of its two pixels'.

use ffmpeg_next::color::{Range, Space};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;

use crate::lut::Cube;

/// Matrix coefficients and code ranges of one conversion.
#[derive(Debug, Clone, Copy)]
struct Coeffs {
    y_off: f32,
    y_scale: f32,
    c_scale: f32,
    /// Y'CbCr -> R'G'B' of the input matrix.
    rv: f32,
    gu: f32,
    gv: f32,
    bu: f32,
    /// R'G'B' -> BT.709 Y'CbCr out (chroma already halved for the pair mean).
    kr: f32,
    kg: f32,
    kb: f32,
    cb_s: f32,
    cr_s: f32,
}

impl Coeffs {
    /// `matrix` in zscale's names, as [`super::picture::ColourIn::zscale`] gives them.
    fn new(matrix: &str, full_range: bool) -> Self {
        let (kr, kb) = match matrix {
            "170m" | "470bg" => (0.299, 0.114),
            "2020_ncl" | "2020_cl" => (0.2627, 0.0593),
            _ => (0.2126, 0.0722),
        };
        let kg = 1.0 - kr - kb;
        let (y_off, y_scale, c_scale) = if full_range { (0.0, 1.0 / 1023.0, 1.0 / 1023.0) } else { (64.0, 1.0 / 876.0, 1.0 / 896.0) };
        let (or, ob) = (0.2126f32, 0.0722f32);
        Self {
            y_off,
            y_scale,
            c_scale,
            rv: 2.0 * (1.0 - kr),
            gu: -2.0 * kb * (1.0 - kb) / kg,
            gv: -2.0 * kr * (1.0 - kr) / kg,
            bu: 2.0 * (1.0 - kb),
            kr: or,
            kg: 1.0 - or - ob,
            kb: ob,
            cb_s: 0.5 / (2.0 * (1.0 - ob)),
            cr_s: 0.5 / (2.0 * (1.0 - or)),
        }
    }
}

/// A LUT ready for the pass: the lattice on the [0, 1] domain, as the parser's cube (for
/// the plain tail, through [`Cube::apply`]) and as RGBX floats (for the AVX2 pass).
pub struct LutKernel {
    unit: Cube,
    /// Whether rows go through the AVX2 pass (else pair by pair, in tests only).
    simd: bool,
    table: Vec<[f32; 4]>,
    k: Coeffs,
}

impl LutKernel {
    /// `None` when this CPU cannot run the pass (no AVX2 and FMA, or not x86-64).
    pub fn new(cube: &Cube, matrix: &str, full_range: bool) -> Option<Self> {
        if !Self::available() {
            return None;
        }
        Some(Self::build(cube, matrix, full_range))
    }

    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    fn build(cube: &Cube, matrix: &str, full_range: bool) -> Self {
        let unit = Cube { size: cube.size, domain_min: [0.0; 3], domain_max: [1.0; 3], table: cube.unit_lattice() };
        let table = unit.table.iter().map(|&[r, g, b]| [r, g, b, 0.0]).collect();
        Self { unit, simd: Self::available(), table, k: Coeffs::new(matrix, full_range) }
    }

    /// The pass over one picture, which must be `yuv422p10le`; the result is a new
    /// picture tagged BT.709 limited range, with the source's timing.
    pub fn apply(&self, src: &frame::Video) -> frame::Video {
        assert_eq!(src.format(), Pixel::YUV422P10LE, "the LUT pass takes 10-bit 4:2:2");
        let (w, h) = (src.width() as usize, src.height() as usize);
        let mut out = frame::Video::new(Pixel::YUV422P10LE, src.width(), src.height());
        // SAFETY: both frames are valid; av_frame_copy_props copies timing, aspect ratio,
        // tags and side data (what FFmpeg's own filters carry over), not the pictures.
        let copied = unsafe { ffmpeg_next::ffi::av_frame_copy_props(out.as_mut_ptr(), src.as_ptr()) };
        assert!(copied >= 0, "copying frame properties needs memory");
        out.set_color_space(Space::BT709);
        out.set_color_range(Range::MPEG);
        let cw = w.div_ceil(2);
        let (mut yo, mut uo, mut vo) = (vec![0u16; w], vec![0u16; cw], vec![0u16; cw]);
        for row in 0..h {
            let y = &plane(src, 0, row)[..w];
            let u = &plane(src, 1, row)[..cw];
            let v = &plane(src, 2, row)[..cw];
            self.row(y, u, v, &mut yo, &mut uo, &mut vo);
            plane_mut(&mut out, 0, row)[..w].copy_from_slice(&yo);
            plane_mut(&mut out, 1, row)[..cw].copy_from_slice(&uo);
            plane_mut(&mut out, 2, row)[..cw].copy_from_slice(&vo);
        }
        out
    }

    /// One row: whole groups of eight pixels with AVX2, the rest pair by pair.
    fn row(&self, y: &[u16], u: &[u16], v: &[u16], yo: &mut [u16], uo: &mut [u16], vo: &mut [u16]) {
        let done = self.row_simd(y, u, v, yo, uo, vo);
        for x in (done..y.len()).step_by(2) {
            let c = x / 2;
            let pair = if x + 1 < y.len() { 2 } else { 1 };
            let (ys, cb, cr) = self.pair(&y[x..x + pair], u[c], v[c]);
            yo[x..x + pair].copy_from_slice(&ys[..pair]);
            (uo[c], vo[c]) = (cb, cr);
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn row_simd(&self, y: &[u16], u: &[u16], v: &[u16], yo: &mut [u16], uo: &mut [u16], vo: &mut [u16]) -> usize {
        if !self.simd {
            return 0;
        }
        let whole = y.len() / 8 * 8;
        assert!(u.len() >= whole / 2 && v.len() >= whole / 2 && yo.len() >= whole && uo.len() >= whole / 2 && vo.len() >= whole / 2);
        // SAFETY: `simd` is set only where `available()` found AVX2 and FMA, and the
        // slices hold the `whole` pixels (and half as many chroma samples) the pass reads
        // and writes, as asserted above.
        unsafe { simd::row(&self.table, self.unit.size, &self.k, whole, y, u, v, yo, uo, vo) };
        whole
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn row_simd(&self, _: &[u16], _: &[u16], _: &[u16], _: &mut [u16], _: &mut [u16], _: &mut [u16]) -> usize {
        0
    }

    /// One or two pixels sharing a chroma pair, in plain arithmetic (the row's tail).
    fn pair(&self, y: &[u16], u: u16, v: u16) -> ([u16; 2], u16, u16) {
        let k = &self.k;
        let (uu, vv) = ((f32::from(u) - 512.0) * k.c_scale, (f32::from(v) - 512.0) * k.c_scale);
        let (mut ys, mut cb, mut cr) = ([0u16; 2], 0.0, 0.0);
        for (i, &luma) in y.iter().enumerate() {
            let yy = (f32::from(luma) - k.y_off) * k.y_scale;
            let [r, g, b] = self.unit.apply([yy + k.rv * vv, yy + k.gu * uu + k.gv * vv, yy + k.bu * uu]);
            let yl = k.kr * r + k.kg * g + k.kb * b;
            ys[i] = code(yl * 876.0 + 64.0);
            cb += (b - yl) * k.cb_s * 2.0 / y.len() as f32;
            cr += (r - yl) * k.cr_s * 2.0 / y.len() as f32;
        }
        (ys, code(cb * 896.0 + 512.0), code(cr * 896.0 + 512.0))
    }
}

fn code(v: f32) -> u16 {
    v.round().clamp(0.0, 1023.0) as u16
}

/// Row `row` of plane `index` as 16-bit samples.
fn plane(f: &frame::Video, index: usize, row: usize) -> &[u16] {
    let stride = f.stride(index);
    let bytes = &f.data(index)[row * stride..(row + 1) * stride];
    // SAFETY: u16 has no invalid bit patterns; FFmpeg aligns plane rows to at least 16
    // bytes, and align_to leaves any unaligned head in the prefix, checked empty.
    let (head, samples, _) = unsafe { bytes.align_to::<u16>() };
    assert!(head.is_empty(), "picture rows are 2-byte aligned");
    samples
}

fn plane_mut(f: &mut frame::Video, index: usize, row: usize) -> &mut [u16] {
    let stride = f.stride(index);
    let bytes = &mut f.data_mut(index)[row * stride..(row + 1) * stride];
    // SAFETY: as in `plane`.
    let (head, samples, _) = unsafe { bytes.align_to_mut::<u16>() };
    assert!(head.is_empty(), "picture rows are 2-byte aligned");
    samples
}

#[cfg(target_arch = "x86_64")]
#[path = "lut_kernel/simd.rs"]
mod simd;

#[cfg(test)]
#[path = "lut_kernel/tests.rs"]
mod tests;
