//! How hard a source is to encode: fast probe encodes of a few samples, for per-title ladders.
//!
//! Takes an open source and the job's ladder; decodes a few short samples spread over the
//! source (through the same decoder and frame numbering as the transcode, no review
//! chain), each from the keyframe at or before its point, so that a long-GOP source needs
//! no run-up; scales each into the reference box and encodes it with x264 at the quality
//! target (one encoder thread per sample, so that a sample's encode overlaps the next
//! one's decode), and hands on the estimated average rate there as a [`Complexity`]:
//! keyframe and other frames are measured apart and weighed as the ladder's GOP weighs
//! them, so that samples shorter than a GOP do not count keyframes too often.
//!
//! The probe delays a job's first segment, so it is kept under 0.5 s: 15 frames decoded
//! (on 2 cores, 1080p25 sources of the quality corpus: 0.16-0.46 s as 6 s ProRes 422 HQ,
//! 0.30-0.34 s as H.264 with a 2 s GOP; decoding is most of it). It is deterministic:
//! one x264 thread per sample, and the same samples whatever the timing.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::Instant;

use farm_contract::ladder::per_title::{Complexity, REFERENCE_BOX};
use farm_contract::ladder::{fit_in_box, FittedRendition, Ladder};
use farm_contract::timeline::Grid;
use ffmpeg_next as ffmpeg;
use ffmpeg::software::scaling;
use ffmpeg::{ffi, format, frame, picture, Packet};

use crate::error::{Result, TranscodeError};
use crate::source::Source;
use crate::transcode::{decode, encode, picture::PictureSetup, seek};

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

/// Bytes of keyframes and of other frames, and how many of each; where the samples started.
#[derive(Default)]
struct Tally {
    key: (u64, u64),
    other: (u64, u64),
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
    let (Some(key), Some(other)) = (avg(tally.key), avg(tally.other).or(avg(tally.key))) else {
        return Err(TranscodeError::Damaged { path: source.name(), detail: "no picture could be decoded for the complexity probe".into() });
    };
    let gop = grid.gop_frames.max(1) as f64;
    let bytes_per_frame = (key + (gop - 1.0) * other) / gop;
    Ok(Complexity {
        kbps: (bytes_per_frame * 8.0 * info.rate.as_f64() / 1000.0 * 10.0).round() / 10.0,
        crf,
        width,
        height,
        frames: (tally.key.1 + tally.other.1) as u32,
        samples: tally.firsts,
        seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    })
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
        for &start in starts {
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
            encoders.push(scope.spawn(move || encode_sample(rx, grid, reference, ladder, first)));
            decoded = decode_sample(source, reference, first, tx, &cancel);
            if decoded.is_err() {
                break;
            }
        }
        for encoder in encoders {
            let encoded = encoder.join().map_err(|_| TranscodeError::Cancelled)??;
            tally.key.0 += encoded.key.0;
            tally.key.1 += encoded.key.1;
            tally.other.0 += encoded.other.0;
            tally.other.1 += encoded.other.1;
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

fn encode_sample(frames: std::sync::mpsc::Receiver<frame::Video>, grid: &Grid, r: &FittedRendition, ladder: &Ladder, first: u64) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut open: Option<(scaling::Context, ffmpeg::encoder::Video)> = None;
    for src in frames {
        if open.is_none() {
            let scaler = scaling::Context::get(src.format(), src.width(), src.height(), format::Pixel::YUV420P, r.width, r.height, scaling::Flags::BICUBIC)
                .map_err(|e| TranscodeError::ffmpeg("creating the scaler", &r.name, e))?;
            open = Some((scaler, encode::open_h264(r, &ladder.x264, grid, &src, 1, true, farm_contract::ladder::SegmentFormat::Ts)?));
        }
        let (scaler, encoder) = open.as_mut().expect("opened above");
        let mut scaled = frame::Video::new(format::Pixel::YUV420P, r.width, r.height);
        scaler.run(&src, &mut scaled).map_err(|e| TranscodeError::ffmpeg("scaling", &r.name, e))?;
        let n = src.pts().unwrap_or(0);
        scaled.set_pts(Some(n));
        scaled.set_kind(if n as u64 == first { picture::Type::I } else { picture::Type::None });
        encoder.send_frame(&scaled).map_err(|e| TranscodeError::ffmpeg("encoding", &r.name, e))?;
        count(encoder, &mut tally, &r.name)?;
    }
    if let Some((_, mut encoder)) = open {
        encoder.send_eof().map_err(|e| TranscodeError::ffmpeg("encoding", &r.name, e))?;
        count(&mut encoder, &mut tally, &r.name)?;
    }
    Ok(tally)
}

fn count(encoder: &mut ffmpeg::encoder::Video, tally: &mut Tally, name: &str) -> Result<()> {
    loop {
        let mut packet = Packet::empty();
        match encoder.receive_packet(&mut packet) {
            Ok(()) => {
                let slot = if packet.is_key() { &mut tally.key } else { &mut tally.other };
                slot.0 += packet.size() as u64;
                slot.1 += 1;
            }
            Err(ffmpeg::Error::Other { errno: ffi::EAGAIN }) | Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(e) => return Err(TranscodeError::ffmpeg("encoding", name, e)),
        }
    }
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
