//! How hard a source is to encode: fast probe encodes of a few samples, for per-title ladders.
//!
//! Takes an open source and the job's ladder; decodes a few short samples spread over the
//! source (through the same decoder and frame numbering as the transcode, no review
//! chain), each from the keyframe at or before its point, so that a long-GOP source needs
//! no run-up; encodes each with x264 (one encoder thread per sample, so that a sample's
//! encode overlaps the next one's decode) scaled into the reference box at the quality
//! target, and as a [`mosaic`] of patches at the source's own size at the quality target
//! and `SLOPE_CRF_STEP` above it (how fast the rate falls with the CRF); and hands on the
//! estimated average rates as a [`Complexity`]: keyframe and other frames are measured
//! apart and weighed as the ladder's GOP weighs them, so that samples shorter than a GOP
//! do not count keyframes too often.
//!
//! The probe delays a job's first segment, so it is kept under 0.5 s: 15 frames decoded
//! (on 2 cores, 1080p25 sources of the quality corpus: 0.11-0.41 s as 6 s ProRes 422 HQ,
//! the mosaic encodes included; decoding is most of it). It is deterministic: one x264
//! thread per encode, and the same samples and patches whatever the timing.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::Instant;

use farm_contract::ladder::per_title::{Complexity, NativeRate, REFERENCE_BOX, SLOPE_CRF_STEP};
use farm_contract::ladder::{fit_in_box, FittedRendition, Ladder};
use farm_contract::timeline::Grid;
use ffmpeg_next as ffmpeg;
use ffmpeg::software::scaling;
use ffmpeg::{format, frame, picture};

mod mosaic;

use crate::error::{Result, TranscodeError};
use crate::source::Source;
use crate::transcode::{decode, encode, picture::PictureSetup, seek};
use mosaic::Mosaic;

/// Samples per source and frames per sample.
pub const SAMPLES: u64 = 3;
pub const SAMPLE_FRAMES: u64 = 5;

/// Where the samples start: spread over the source, away from its very ends.
pub fn sample_starts(total_frames: u64) -> Vec<u64> {
    if total_frames <= SAMPLES * SAMPLE_FRAMES {
        return vec![0];
    }
    let span = total_frames - SAMPLE_FRAMES;
    (0..SAMPLES).map(|i| span * (2 * i + 1) / (2 * SAMPLES)).collect()
}

/// Bytes of keyframes and of other frames, and how many of each.
#[derive(Default, Clone, Copy)]
struct Sizes {
    key: (u64, u64),
    other: (u64, u64),
}

impl Sizes {
    fn add(&mut self, o: Sizes) {
        self.key = (self.key.0 + o.key.0, self.key.1 + o.key.1);
        self.other = (self.other.0 + o.other.0, self.other.1 + o.other.1);
    }

    /// The average rate (kb/s) with keyframes weighed as a GOP of `gop` frames weighs them,
    /// so that samples shorter than a GOP do not count keyframes too often.
    fn kbps(&self, gop: f64, fps: f64) -> Option<f64> {
        let (key, other) = (avg(self.key)?, avg(self.other).or(avg(self.key))?);
        Some((key + (gop - 1.0) * other) / gop * 8.0 * fps / 1000.0)
    }
}

/// What the samples' encodes measured: the picture scaled into the reference box, and
/// mosaics of it at the source's own size (`native`, with that size; `native_step` at the
/// higher CRF); where each started.
#[derive(Default)]
struct Tally {
    scaled: Sizes,
    native: Sizes,
    native_step: Sizes,
    native_size: Option<(u32, u32)>,
    firsts: Vec<u64>,
}

pub fn measure(source: &mut Source, ladder: &Ladder) -> Result<Complexity> {
    let started = Instant::now();
    let info = source.info.clone();
    let grid = Grid::new(info.rate, ladder.cuts(), ladder.gop_ms());
    let (w, h) = info.display_size();
    let (width, height) = fit_in_box(w, h, REFERENCE_BOX.0, REFERENCE_BOX.1);
    let crf = ladder.per_title.crf;
    let reference = FittedRendition { name: "complexity".into(), width, height, bitrate_kbps: 0, maxrate_kbps: 0, bufsize_kbits: 0, crf: Some(crf), ladder_kbps: None, codec: Default::default() };
    let total = info.frames_expected().unwrap_or(SAMPLE_FRAMES);
    let tally = samples(source, &grid, &reference, ladder, &sample_starts(total))?;
    let (gop, fps) = (grid.gop_frames.max(1) as f64, info.rate.as_f64());
    let Some(kbps) = tally.scaled.kbps(gop, fps) else {
        return Err(TranscodeError::Damaged { path: source.name(), detail: "no picture could be decoded for the complexity probe".into() });
    };
    let fit = (reference.width, reference.height);
    let native = tally.native_size.zip(tally.native.kbps(gop, fps)).map(|((w, h), mosaic_kbps)| NativeRate {
        kbps: round1(mosaic::native_kbps(mosaic_kbps, (w, h), fit)),
        width: w,
        height: h,
        step_kbps: tally.native_step.kbps(gop, fps).map(|k| round1(mosaic::native_kbps(k, (w, h), fit))),
    });
    Ok(Complexity {
        kbps: round1(kbps),
        crf,
        width,
        height,
        frames: (tally.scaled.key.1 + tally.scaled.other.1) as u32,
        samples: tally.firsts,
        seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        native,
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn avg((bytes, count): (u64, u64)) -> Option<f64> {
    (count > 0).then(|| bytes as f64 / count as f64)
}

/// Decodes `SAMPLE_FRAMES` from each start in turn (one demuxer) while every sample has
/// its own encoder thread: a sample's encode finishes while the next one decodes.
fn samples(source: &mut Source, grid: &Grid, reference: &FittedRendition, ladder: &Ladder, starts: &[u64]) -> Result<Tally> {
    let cancel = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut encoders = Vec::new();
        let mut decoded = Ok(());
        let mut tally = Tally::default();
        for (index, &start) in starts.iter().enumerate() {
            // From the keyframe at or before the start, so that a long-GOP source needs no
            // run-up; two starts in one GOP make one sample.
            let first = match seek::seek_to_keyframe(source, start) {
                Ok(Some(key)) if tally.firsts.last() != Some(&key) => key,
                Ok(_) => continue,
                Err(e) => {
                    decoded = Err(e);
                    break;
                }
            };
            tally.firsts.push(first);
            // Two frames of slack: the decoder moves on to the next sample while this
            // one's encoder drains, without holding more than a few source frames.
            let (tx, rx) = sync_channel::<frame::Video>(2);
            let (of, fit) = (starts.len(), (reference.width, reference.height));
            encoders.push(scope.spawn(move || encode_sample(rx, grid, reference, ladder, first, Mosaic::new(index, of, fit))));
            decoded = decode_sample(source, reference, first, tx, &cancel);
            if decoded.is_err() {
                break;
            }
        }
        for encoder in encoders {
            let encoded = encoder.join().map_err(|_| TranscodeError::Cancelled)??;
            tally.scaled.add(encoded.scaled);
            tally.native.add(encoded.native);
            tally.native_step.add(encoded.native_step);
            tally.native_size = tally.native_size.or(encoded.native_size);
        }
        decoded.map(|()| tally)
    })
}

/// Sends the sample's frames from `first` to its encoder (the sender is dropped at the end).
fn decode_sample(source: &mut Source, reference: &FittedRendition, first: u64, tx: SyncSender<frame::Video>, cancel: &AtomicBool) -> Result<()> {
    let plain = PictureSetup::prepare(None, None, Default::default(), first, reference.height).map_err(|e| TranscodeError::Picture(e.to_string()))?;
    let request = decode::DecodeRequest {
        picture: &plain,
        first_frame: first,
        end_frame: Some(first + SAMPLE_FRAMES),
        decode_video: true,
        threads: 0,
        sample: true,
        audio_from: None,
        audio_until: None,
    };
    decode::run(source, &request, Vec::new(), &decode::Outputs { video: vec![tx], audio: Vec::new() }, cancel).map(|_| ())
}

/// One probe encoder: the scaler into its rendition's size and x264 at its CRF.
struct Probe {
    r: FittedRendition,
    scaler: scaling::Context,
    encoder: ffmpeg::encoder::Video,
    sizes: Sizes,
}

impl Probe {
    fn open(like: &frame::Video, r: FittedRendition, grid: &Grid, ladder: &Ladder) -> Result<Self> {
        let scaler = scaling::Context::get(like.format(), like.width(), like.height(), format::Pixel::YUV420P, r.width, r.height, scaling::Flags::BICUBIC)
            .map_err(|e| TranscodeError::ffmpeg("creating the scaler", &r.name, e))?;
        let encoder = encode::open_h264(&r, &ladder.x264, grid, like, 1, true, farm_contract::ladder::SegmentFormat::Ts, None)?;
        Ok(Self { r, scaler, encoder, sizes: Sizes::default() })
    }

    fn encode(&mut self, src: &frame::Video, first: u64) -> Result<()> {
        let r = &self.r;
        let mut scaled = frame::Video::new(format::Pixel::YUV420P, r.width, r.height);
        self.scaler.run(src, &mut scaled).map_err(|e| TranscodeError::ffmpeg("scaling", &r.name, e))?;
        let n = src.pts().unwrap_or(0);
        scaled.set_pts(Some(n));
        scaled.set_kind(if n as u64 == first { picture::Type::I } else { picture::Type::None });
        self.encoder.send_frame(&scaled).map_err(|e| TranscodeError::ffmpeg("encoding", &r.name, e))?;
        count(&mut self.encoder, &mut self.sizes, &r.name)
    }

    fn finish(mut self) -> Result<Sizes> {
        self.encoder.send_eof().map_err(|e| TranscodeError::ffmpeg("encoding", &self.r.name, e))?;
        count(&mut self.encoder, &mut self.sizes, &self.r.name)?;
        Ok(self.sizes)
    }
}

/// The probes of a source larger than the reference box at its own size: its mosaics at
/// the probe's CRF and [`SLOPE_CRF_STEP`] above.
struct NativeProbes {
    at_crf: Probe,
    step: Probe,
    size: (u32, u32),
}

/// Encodes one sample: scaled into the reference box, and (a source larger than the box) as
/// a mosaic of patches at the source's own size (see [`mosaic`]) at two CRFs.
fn encode_sample(frames: std::sync::mpsc::Receiver<frame::Video>, grid: &Grid, r: &FittedRendition, ladder: &Ladder, first: u64, mut mosaic: Mosaic) -> Result<Tally> {
    let (w, h) = mosaic.size();
    let native_r = FittedRendition { name: "complexity-native".into(), width: w, height: h, ..r.clone() };
    let step_r = FittedRendition { crf: r.crf.map(|crf| crf + SLOPE_CRF_STEP), ..native_r.clone() };
    let mut open: Option<(Probe, Option<NativeProbes>)> = None;
    for src in frames {
        let (scaled, native) = match &mut open {
            Some(open) => open,
            None => {
                let size = (src.width(), src.height());
                let native = match mosaic.fits_in(size) {
                    true => {
                        let like = mosaic.make(&src)?;
                        Some(NativeProbes { at_crf: Probe::open(&like, native_r.clone(), grid, ladder)?, step: Probe::open(&like, step_r.clone(), grid, ladder)?, size })
                    }
                    false => None,
                };
                open.insert((Probe::open(&src, r.clone(), grid, ladder)?, native))
            }
        };
        scaled.encode(&src, first)?;
        if let Some(native) = native {
            let tiles = mosaic.make(&src)?;
            native.at_crf.encode(&tiles, first)?;
            native.step.encode(&tiles, first)?;
        }
    }
    let mut tally = Tally::default();
    if let Some((scaled, native)) = open {
        tally.scaled = scaled.finish()?;
        if let Some(native) = native {
            tally.native = native.at_crf.finish()?;
            tally.native_step = native.step.finish()?;
            tally.native_size = Some(native.size);
        }
    }
    Ok(tally)
}

fn count(encoder: &mut ffmpeg::encoder::Video, sizes: &mut Sizes, name: &str) -> Result<()> {
    for packet in encode::video_packets(encoder, "encoding", name)? {
        let slot = if packet.is_key() { &mut sizes.key } else { &mut sizes.other };
        slot.0 += packet.size() as u64;
        slot.1 += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_spread_over_the_source_and_short_sources_get_one() {
        assert_eq!(sample_starts(10), vec![0]);
        assert_eq!(sample_starts(15), vec![0]);
        // 250 frames: span 245, at 1/6, 3/6, 5/6
        assert_eq!(sample_starts(250), vec![40, 122, 204]);
        assert!(sample_starts(100_000).iter().all(|&s| s + SAMPLE_FRAMES <= 100_000));
    }
}
