//! One video rendition: scale, encode, segment. Runs on its own thread.
//!
//! Takes shared references to the decoded pictures (pts = frame number), scales each to
//! the rendition's size as 8-bit 4:2:0, forces keyframes where the grid wants them,
//! encodes with x264 (x265 for an HEVC rendition) and hands the packets to the
//! [`Segmenter`]. Hands on the rendition's part of the manifest.
//!
//! A forensic job's rendition comes out as variants A and B of every segment from the first
//! marked position on (before it, once, unmarked, as A), marked (`crate::forensic_mark`)
//! with the segment position's pattern added for A and taken away for B. A's segments go
//! where unmarked ones would, B's under `{rendition}/b/`. The rendition (H.264 or HEVC) is
//! encoded once, unmarked, and A and B are its bytes but for each position's last few
//! pictures, encoded again marked ([`super::tails`]).
//!
//! The task's first segment is closed as soon as its last frame is in: the encoder is
//! flushed there and a fresh one (same settings, same SPS) takes the next segment, which
//! opens on an IDR frame anyway. Otherwise x264's lookahead would hold the first segment
//! back until some 40 more frames were encoded, and review of a job starts with its first
//! segment of every rendition.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use farm_contract::ladder::{FittedRendition, VideoCodec, X264Settings};
use farm_contract::manifest::{RenditionPart, SegmentRecord};
use farm_contract::timeline::Grid;
use ffmpeg_next as ffmpeg;
use ffmpeg::software::scaling;
use ffmpeg::{codec, format, frame, picture};

use super::decode::share;
use super::encode;
use super::segment::{Output, SegmentClock, Segmenter};
use super::tails::Spliced;
use crate::error::{Result, TranscodeError};

/// Segments of the frame grid; a video segment must open on a keyframe.
pub struct VideoClock(pub Grid);

impl SegmentClock for VideoClock {
    fn segment_of(&self, unit: i64) -> u64 {
        self.0.segment_of(unit.max(0) as u64)
    }
    fn units_per_second(&self) -> f64 {
        self.0.rate.as_f64()
    }
    fn needs_keyframe(&self) -> bool {
        true
    }
    fn nominal_start_ms(&self, index: u64) -> u64 {
        self.0.cuts.start_ms(index)
    }
}

pub struct VideoJob<'a> {
    /// Smaller renditions that scale from this one's pictures.
    pub forward: Vec<SyncSender<frame::Video>>,
    pub rendition: &'a FittedRendition,
    pub x264: &'a X264Settings,
    pub grid: Grid,
    pub threads: usize,
    /// Where the segments go, in which container, sealed or not.
    pub output: Output<'a>,
    pub encoded: &'a AtomicU64,
    /// Set when the input ended because the range was decoded to its end; an input that
    /// stops otherwise (cancelled, failed) leaves the last segment unwritten.
    pub input_complete: &'a AtomicBool,
    /// Tag the bitstream BT.709 (review copies); otherwise the pictures' own tags.
    pub bt709: bool,
    /// Forensic jobs: the job's mark seed; the rendition is encoded as A and as B.
    pub mark: Option<&'a [u8; 32]>,
}

/// What a rendition's thread hands back: its part, and a forensic job's variant B of it.
pub struct Encoded {
    pub part: RenditionPart,
    pub variant_b: Option<RenditionPart>,
}

struct Open<'a> {
    scaler: scaling::Context,
    scaler_input: (format::Pixel, u32, u32),
    encoding: Encoding<'a>,
    /// The frame that opens the task's second segment, where the encoders are restarted.
    restart_at: u64,
}

/// How the rendition is encoded: once (the unmarked encode), or as a forensic job's A and B
/// spliced from one encode.
enum Encoding<'a> {
    Plain(Box<Lane<'a>>),
    Spliced(Box<Spliced<'a>>),
}

/// The rendition's one encode, unmarked.
struct Lane<'a> {
    encoder: ffmpeg::encoder::Video,
    segmenter: Segmenter<'a, VideoClock>,
}

pub fn run(mut job: VideoJob, frames: Receiver<frame::Video>) -> Result<Encoded> {
    let r = job.rendition;
    let mut open: Option<Open> = None;
    for src in frames {
        let input = (src.format(), src.width(), src.height());
        let n = src.pts().unwrap_or(0);
        if open.is_none() {
            let position = job.grid.segment_of(n.max(0) as u64);
            let encoding = match job.mark {
                Some(seed) => Encoding::Spliced(Box::new(Spliced::open(&job, &src, seed)?)),
                None => Encoding::Plain(Box::new(Lane::open(&job, &src)?)),
            };
            open = Some(Open { scaler: scaler(input, r)?, scaler_input: input, encoding, restart_at: job.grid.segment_start(position + 1) });
        }
        let o = open.as_mut().expect("opened above");
        if o.scaler_input != input {
            // Mid-stream format or size change (it happens in camera files): new scaler.
            o.scaler = scaler(input, r)?;
            o.scaler_input = input;
        }
        // A new picture each time: smaller renditions may still be reading the last one.
        let mut scaled = frame::Video::new(format::Pixel::YUV420P, r.width, r.height);
        o.scaler.run(&src, &mut scaled).map_err(|e| TranscodeError::ffmpeg("scaling", &r.name, e))?;
        scaled.set_pts(Some(n));
        for tx in &job.forward {
            tx.send(share(&scaled)).map_err(|_| TranscodeError::Cancelled)?;
        }
        scaled.set_kind(if job.grid.is_keyframe(n as u64) {
            picture::Type::I
        } else {
            picture::Type::None
        });
        let restart = n as u64 == o.restart_at;
        match &mut o.encoding {
            Encoding::Spliced(spliced) => {
                if restart {
                    spliced.restart(&job, &src)?;
                }
                spliced.encode(&job, &scaled, n as u64)?;
            }
            Encoding::Plain(lane) => {
                if restart {
                    lane.restart(&job, &src)?;
                }
                lane.encode(&scaled, &r.name)?;
            }
        }
        job.encoded.fetch_add(1, Ordering::Relaxed);
    }
    if !job.input_complete.load(Ordering::SeqCst) {
        // Stopped, not finished: a partial last segment must not be written under its key.
        return Err(TranscodeError::Cancelled);
    }
    drop(std::mem::take(&mut job.forward)); // the smaller renditions see the end of input
    let Some(o) = open else {
        let empty = || part(r, &job.grid, None, Vec::new(), None);
        return Ok(Encoded { part: empty(), variant_b: job.mark.map(|_| empty()) });
    };
    match o.encoding {
        Encoding::Spliced(spliced) => {
            let (part, variant_b) = spliced.finish(&job)?;
            Ok(Encoded { part, variant_b: Some(variant_b) })
        }
        Encoding::Plain(lane) => Ok(Encoded { part: lane.finish(r, &job.grid)?, variant_b: None }),
    }
}

impl<'a> Lane<'a> {
    fn open(job: &VideoJob<'a>, src: &frame::Video) -> Result<Self> {
        let r = job.rendition;
        let encoder = encode::open_video(r, job.x264, &job.grid, src, job.threads, job.bt709, job.output.format, None)?;
        let params = codec::Parameters::from(&*encoder);
        let segmenter = Segmenter::new(&r.name, VideoClock(job.grid), params, encode::video_time_base(&job.grid), job.output);
        Ok(Self { encoder, segmenter })
    }

    /// Closes the task's first segment and goes on with a fresh encoder.
    fn restart(&mut self, job: &VideoJob<'a>, src: &frame::Video) -> Result<()> {
        let r = job.rendition;
        self.encoder.send_eof().map_err(|e| TranscodeError::ffmpeg("encoding", &r.name, e))?;
        drain(&mut self.encoder, &mut self.segmenter, &r.name)?;
        self.segmenter.close()?;
        self.encoder = encode::open_video(r, job.x264, &job.grid, src, job.threads, job.bt709, job.output.format, None)?;
        Ok(())
    }

    fn encode(&mut self, picture: &frame::Video, name: &str) -> Result<()> {
        self.encoder.send_frame(picture).map_err(|e| TranscodeError::ffmpeg("encoding", name, e))?;
        drain(&mut self.encoder, &mut self.segmenter, name)
    }

    fn finish(mut self, r: &FittedRendition, grid: &Grid) -> Result<RenditionPart> {
        self.encoder.send_eof().map_err(|e| TranscodeError::ffmpeg("encoding", &r.name, e))?;
        drain(&mut self.encoder, &mut self.segmenter, &r.name)?;
        let codecs = self.segmenter.codecs().map(str::to_owned);
        let init = self.segmenter.init_uri();
        let segments = self.segmenter.finish()?;
        Ok(part(r, grid, codecs, segments, init))
    }
}

pub(super) fn part(r: &FittedRendition, grid: &Grid, codecs: Option<String>, segments: Vec<SegmentRecord>, init: Option<String>) -> RenditionPart {
    RenditionPart {
        name: r.name.clone(),
        codecs: codecs.unwrap_or_else(|| match r.codec {
            VideoCodec::H264 => "avc1.640028".into(),
            VideoCodec::Hevc => "hvc1.1.6.L120.B0".into(),
        }),
        width: Some(r.width),
        height: Some(r.height),
        frame_rate: Some(grid.rate),
        channels: None,
        segments,
        label: None,
        language: None,
        source_streams: vec![],
        group: None,
        init,
    }
}

fn scaler(input: (format::Pixel, u32, u32), r: &FittedRendition) -> Result<scaling::Context> {
    scaling::Context::get(
        input.0,
        input.1,
        input.2,
        format::Pixel::YUV420P,
        r.width,
        r.height,
        scaling::Flags::BICUBIC,
    )
    .map_err(|e| TranscodeError::ffmpeg("creating the scaler", &r.name, e))
}

/// Moves every packet the encoder has ready into the segmenter.
fn drain<C: SegmentClock>(
    encoder: &mut ffmpeg::encoder::Video,
    segmenter: &mut Segmenter<C>,
    name: &str,
) -> Result<()> {
    for packet in encode::video_packets(encoder, "encoding", name)? {
        segmenter.push(&packet)?;
    }
    Ok(())
}
