//! Scrubbing thumbnails and the poster: a task's thumbnails tiled into JPEG sprites, and
//! the poster frame when it falls in the task's range. Runs on its own thread.
//!
//! Takes the pictures after the picture chain (so thumbnails show what the renditions
//! show); keeps only the frames it wants; hands on the keys of the sprites it wrote.
//! Sprites never straddle a block of `columns x rows` thumbnails, so two chunks never
//! write the same tiles.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use farm_contract::thumbnails::{Thumbnails, POSTER};
use farm_contract::timeline::FrameRate;
use ffmpeg_next as ffmpeg;
use ffmpeg::software::scaling;
use ffmpeg::{codec, encoder, format, frame, Rational};

use crate::error::{Result, TranscodeError};
use farm_storage::Sink;

const STAGE: &str = "thumbnails";
/// JPEG quantiser (FFmpeg's -q:v): 2 best .. 31 worst.
const JPEG_QUALITY: i32 = 4;
/// The poster is at most this wide.
const POSTER_WIDTH: u32 = 1280;

pub struct ThumbnailJob<'a> {
    pub spec: Thumbnails,
    pub rate: FrameRate,
    /// The thumbnails this task writes.
    pub wanted: Range<u64>,
    /// The poster's frame, when this task writes it, and its size.
    pub poster: Option<(u64, u32, u32)>,
    pub sink: &'a dyn Sink,
    pub input_complete: &'a AtomicBool,
}

/// Poster size for a picture of this display size: at most [`POSTER_WIDTH`] wide, even.
pub fn poster_size(display_width: u32, display_height: u32) -> (u32, u32) {
    let width = display_width.min(POSTER_WIDTH) & !1;
    let height = ((u64::from(width) * u64::from(display_height) / u64::from(display_width.max(1))) as u32).max(2) & !1;
    (width, height)
}

pub fn run(job: ThumbnailJob, frames: Receiver<frame::Video>) -> Result<Vec<String>> {
    let fail = |stage: &'static str| move |e: ffmpeg::Error| TranscodeError::ffmpeg(stage, STAGE, e);
    let mut next = job.wanted.start;
    let mut tiles: Vec<frame::Video> = Vec::new();
    let mut first_in_sprite = next;
    let mut written = Vec::new();
    for picture in frames {
        let n = picture.pts().unwrap_or(0).max(0) as u64;
        if let Some((_, w, h)) = job.poster.filter(|p| p.0 == n) {
            let poster = scale(&picture, w, h).map_err(fail("scaling the poster"))?;
            put(job.sink, POSTER, &jpeg(&poster)?)?;
        }
        while next < job.wanted.end && job.spec.frame_of(next, job.rate) < n {
            next += 1; // a frame the decoder never produced (cannot happen on a full grid)
        }
        if next >= job.wanted.end || job.spec.frame_of(next, job.rate) != n {
            continue;
        }
        if !tiles.is_empty() && next.is_multiple_of(job.spec.per_sprite()) {
            written.push(write_sprite(&job, first_in_sprite, &mut tiles)?);
        }
        if tiles.is_empty() {
            first_in_sprite = next;
        }
        tiles.push(scale(&picture, job.spec.width, job.spec.height).map_err(fail("scaling a thumbnail"))?);
        next += 1;
    }
    if !job.input_complete.load(Ordering::SeqCst) {
        return Err(TranscodeError::Cancelled);
    }
    if !tiles.is_empty() {
        written.push(write_sprite(&job, first_in_sprite, &mut tiles)?);
    }
    Ok(written)
}

/// Tiles the thumbnails row by row into one picture, encodes it, writes it; empties `tiles`.
fn write_sprite(job: &ThumbnailJob, first: u64, tiles: &mut Vec<frame::Video>) -> Result<String> {
    let spec = &job.spec;
    let count = tiles.len() as u64;
    let rows = count.div_ceil(u64::from(spec.columns)) as u32;
    let columns = spec.columns.min(count as u32);
    let mut sprite = frame::Video::new(format::Pixel::YUVJ420P, columns * spec.width, rows * spec.height);
    for plane in 0..3 {
        sprite.data_mut(plane).fill(if plane == 0 { 0 } else { 128 });
    }
    for (i, tile) in tiles.iter().enumerate() {
        let (x, y) = spec.tile(i as u64);
        blit(tile, &mut sprite, x, y);
    }
    tiles.clear();
    let key = Thumbnails::sprite_key(first, count);
    put(job.sink, &key, &jpeg(&sprite)?)?;
    Ok(key)
}

/// Copies `tile` (YUVJ420P) into `sprite` at (`x`, `y`), both even.
fn blit(tile: &frame::Video, sprite: &mut frame::Video, x: u32, y: u32) {
    for plane in 0..3 {
        let shift = u32::from(plane > 0);
        let (w, h) = ((tile.width() >> shift) as usize, (tile.height() >> shift) as usize);
        let (px, py) = ((x >> shift) as usize, (y >> shift) as usize);
        let (src_stride, dst_stride) = (tile.stride(plane), sprite.stride(plane));
        for row in 0..h {
            let src = &tile.data(plane)[row * src_stride..row * src_stride + w];
            let start = (py + row) * dst_stride + px;
            sprite.data_mut(plane)[start..start + w].copy_from_slice(src);
        }
    }
}

/// The picture scaled to `width` x `height`, full-range 4:2:0 as JPEG wants it.
fn scale(picture: &frame::Video, width: u32, height: u32) -> std::result::Result<frame::Video, ffmpeg::Error> {
    let mut scaler = scaling::Context::get(
        picture.format(),
        picture.width(),
        picture.height(),
        format::Pixel::YUVJ420P,
        width,
        height,
        scaling::Flags::BICUBIC,
    )?;
    let mut out = frame::Video::new(format::Pixel::YUVJ420P, width, height);
    scaler.run(picture, &mut out)?;
    Ok(out)
}

/// One picture as a baseline JPEG.
fn jpeg(picture: &frame::Video) -> Result<Vec<u8>> {
    let fail = |e: ffmpeg::Error| TranscodeError::ffmpeg("encoding a JPEG", STAGE, e);
    let codec = encoder::find(codec::Id::MJPEG).ok_or_else(|| TranscodeError::ffmpeg("encoding a JPEG", STAGE, "no MJPEG encoder"))?;
    let mut enc = codec::context::Context::new_with_codec(codec).encoder().video().map_err(fail)?;
    enc.set_width(picture.width());
    enc.set_height(picture.height());
    enc.set_format(format::Pixel::YUVJ420P);
    enc.set_time_base(Rational(1, 25));
    enc.set_color_range(ffmpeg::color::Range::JPEG);
    enc.set_flags(codec::Flags::QSCALE);
    enc.set_global_quality(JPEG_QUALITY * ffmpeg::ffi::FF_QP2LAMBDA);
    let mut enc = enc.open().map_err(fail)?;
    let mut input = picture.clone();
    input.set_pts(Some(0));
    // SAFETY: `input` is our own frame, borrowed mutably; a plain field write. With QSCALE
    // the encoder takes each picture's quantiser from here.
    unsafe {
        (*input.as_mut_ptr()).quality = JPEG_QUALITY * ffmpeg::ffi::FF_QP2LAMBDA;
    }
    enc.send_frame(&input).map_err(fail)?;
    enc.send_eof().map_err(fail)?;
    let packets = super::encode::video_packets(&mut enc, "encoding a JPEG", STAGE)?;
    let data: Vec<u8> = packets.iter().flat_map(|p| p.data().unwrap_or_default().iter().copied()).collect();
    if data.is_empty() {
        return Err(TranscodeError::ffmpeg("encoding a JPEG", STAGE, "the MJPEG encoder gave no picture"));
    }
    Ok(data)
}

fn put(sink: &dyn Sink, key: &str, data: &[u8]) -> Result<()> {
    sink.put(key, data).map_err(|source| TranscodeError::Output { key: key.into(), source })
}
