//! Patches of a source picture at its own size, unscaled, tiled into one picture the size
//! of the probe's reference box: what the probe encodes to measure the source's native rate.
//!
//! One sample's mosaic holds `TILES` x `TILES` patches taken along one row of the source
//! picture; the samples take rows spread from top to bottom, so that the probe sees patches
//! from the whole picture (3 samples: 12 patches on a 4 x 3 grid). Measured on the quality
//! corpus's clips with detail, one reference-box window per sample missed the whole
//! picture's 1080p rate by 0.58x-1.47x at mid-height (0.33x-2.3x along the diagonal);
//! the mosaics, their seams divided out, by 0.95x-1.13x.

use ffmpeg_next as ffmpeg;
use ffmpeg::software::scaling;
use ffmpeg::{ffi, format, frame};

use crate::error::{Result, TranscodeError};
use crate::transcode::decode;

/// Patches per side of a mosaic.
const TILES: u32 = 2;

/// What a mosaic's seams cost: patches that do not continue each other make edges, and
/// motion across a patch's border cannot be predicted from outside it. Measured on the
/// quality benchmark's 1080p clips (x264 veryfast CRF 23, the whole 6 s picture against the
/// mosaics' estimate): the mosaics cost 1.29x-1.52x the whole picture's rate on clips with
/// detail and motion, 0.80x-0.91x on noise (which has no seams to speak of and is starved
/// either way).
const SEAMS: f64 = 1.35;

/// The rate of a whole `source`-sized picture from the rate of its `fit` mosaics.
pub fn native_kbps(mosaic_kbps: f64, source: (u32, u32), fit: (u32, u32)) -> f64 {
    let (w, h) = Mosaic::new(0, 1, fit).size();
    mosaic_kbps / SEAMS * f64::from(source.0) * f64::from(source.1) / (f64::from(w) * f64::from(h))
}

/// Makes one sample's mosaics.
pub struct Mosaic {
    /// The sample's row, of how many.
    row: u32,
    rows: u32,
    patch: (u32, u32),
    scaler: Option<scaling::Context>,
}

impl Mosaic {
    /// For sample `row` of `rows`, into a picture of at most `fit` (the reference box).
    pub fn new(row: usize, rows: usize, fit: (u32, u32)) -> Self {
        let patch = ((fit.0 / TILES) & !1, (fit.1 / TILES) & !1);
        Self { row: row as u32, rows: rows.max(1) as u32, patch, scaler: None }
    }

    /// The mosaic's size: a whole number of even patches.
    pub fn size(&self) -> (u32, u32) {
        (self.patch.0 * TILES, self.patch.1 * TILES)
    }

    /// Whether a `width` x `height` source is larger than the mosaic, so that its native
    /// rate tells more than the scaled one.
    pub fn fits_in(&self, (width, height): (u32, u32)) -> bool {
        let (w, h) = self.size();
        width >= w && height >= h && u64::from(width) * u64::from(height) * 100 > u64::from(w) * u64::from(h) * 105
    }

    /// The mosaic of `src`'s patches, 8-bit 4:2:0 like the probe's other picture.
    pub fn make(&mut self, src: &frame::Video) -> Result<frame::Video> {
        let fail = |e: String| TranscodeError::ffmpeg("making the probe's mosaic", "complexity-native", e);
        let (pw, ph) = self.patch;
        let (w, h) = self.size();
        let scaler = match &mut self.scaler {
            Some(s) => s,
            None => self.scaler.insert(
                scaling::Context::get(src.format(), pw, ph, format::Pixel::YUV420P, pw, ph, scaling::Flags::POINT).map_err(|e| fail(e.to_string()))?,
            ),
        };
        let mut mosaic = frame::Video::new(format::Pixel::YUV420P, w, h);
        let mut converted = frame::Video::new(format::Pixel::YUV420P, pw, ph);
        // A picture smaller than a patch (a source that changed its size after the first
        // frame) is an error, not an underflow.
        let (Some(room_x), Some(room_y)) = (src.width().checked_sub(pw), src.height().checked_sub(ph)) else {
            return Err(fail(format!("a {}x{} picture is smaller than a {pw}x{ph} patch", src.width(), src.height())));
        };
        let y = even(u64::from(room_y) * u64::from(2 * self.row + 1) / u64::from(2 * self.rows));
        for j in 0..TILES * TILES {
            let x = even(u64::from(room_x) * u64::from(2 * j + 1) / u64::from(2 * TILES * TILES));
            let patch = window(src, (x, y), (pw, ph)).ok_or_else(|| fail("the picture cannot be cropped".into()))?;
            scaler.run(&patch, &mut converted).map_err(|e| fail(e.to_string()))?;
            paste(&mut mosaic, &converted, ((j % TILES) * pw, (j / TILES) * ph));
        }
        mosaic.set_pts(src.pts());
        Ok(mosaic)
    }
}

fn even(x: u64) -> u32 {
    x as u32 & !1
}

/// A `w`x`h` window of `frame` at (`x`, `y`): the same picture buffers, no copy.
fn window(frame: &frame::Video, (x, y): (u32, u32), (w, h): (u32, u32)) -> Option<frame::Video> {
    if x + w > frame.width() || y + h > frame.height() {
        return None;
    }
    let (right, bottom) = (frame.width() - x - w, frame.height() - y - h);
    let mut shared = decode::share(frame);
    // `shared` is our own reference to the frame, and the crop fields set are plain
    // integers within its size (checked above).
    // SAFETY: av_frame_apply_cropping then only moves our reference's data pointers and size (it fails, checked, on formats it cannot crop).
    let ret = unsafe {
        let p = shared.as_mut_ptr();
        (*p).crop_left = x as usize;
        (*p).crop_top = y as usize;
        (*p).crop_right = right as usize;
        (*p).crop_bottom = bottom as usize;
        ffi::av_frame_apply_cropping(p, ffi::AV_FRAME_CROP_UNALIGNED as i32)
    };
    (ret >= 0 && shared.width() == w && shared.height() == h).then_some(shared)
}

/// Copies 4:2:0 `src` into `dst` at (`x`, `y`) (even, within `dst`).
fn paste(dst: &mut frame::Video, src: &frame::Video, (x, y): (u32, u32)) {
    for plane in 0..3 {
        let shift = u32::from(plane > 0);
        let (w, h) = ((src.width() >> shift) as usize, (src.height() >> shift) as usize);
        let (x, y) = ((x >> shift) as usize, (y >> shift) as usize);
        let (from, to) = (src.stride(plane), dst.stride(plane));
        let source = src.data(plane);
        let target = dst.data_mut(plane);
        for row in 0..h {
            target[(y + row) * to + x..][..w].copy_from_slice(&source[row * from..][..w]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: u32, h: u32) -> frame::Video {
        ffmpeg::init().unwrap();
        let mut f = frame::Video::new(format::Pixel::YUV420P, w, h);
        for plane in 0..3 {
            let (stride, rows) = (f.stride(plane), f.plane_height(plane) as usize);
            let data = f.data_mut(plane);
            for row in 0..rows {
                for col in 0..stride {
                    // every pixel says where it is: luma its column / 8, chroma its row
                    data[row * stride + col] = if plane == 0 { (col / 8) as u8 } else { row as u8 };
                }
            }
        }
        f
    }

    #[test]
    fn a_mosaic_tiles_unscaled_patches_from_along_the_samples_row() {
        let src = picture(1920, 1080);
        let mut m = Mosaic::new(1, 3, (640, 360));
        assert_eq!(m.size(), (640, 360));
        assert!(m.fits_in((1920, 1080)) && !m.fits_in((640, 360)) && !m.fits_in((3000, 300)));
        let out = m.make(&src).unwrap();
        assert_eq!((out.width(), out.height(), out.format()), (640, 360, format::Pixel::YUV420P));
        // patch j starts at x = (1920 - 320) * (2j + 1) / 8: 200, 600, 1000, 1400; the middle
        // row at y = (1080 - 180) * 3 / 6 = 450 (chroma row 225)
        let luma = |x: usize, y: usize| out.data(0)[y * out.stride(0) + x];
        assert_eq!([luma(0, 0), luma(320, 0), luma(0, 180), luma(320, 180)], [25, 75, 125, 175]);
        // unscaled: 8 pixels further in the mosaic are 8 further in the source
        assert_eq!(luma(8, 0), luma(0, 0) + 1);
        let chroma = |x: usize, y: usize| out.data(1)[y * out.stride(1) + x];
        assert_eq!([chroma(0, 0), chroma(0, 89), chroma(0, 90)], [225, (225 + 89) as u8, 225]);
    }

    #[test]
    fn a_picture_smaller_than_a_patch_is_refused() {
        let mut m = Mosaic::new(0, 3, (640, 360));
        m.make(&picture(1920, 1080)).unwrap();
        let err = m.make(&picture(300, 1080)).err().expect("no patch fits");
        assert!(err.to_string().contains("smaller than a 320x180 patch"), "{err}");
    }
}
