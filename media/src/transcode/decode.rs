//! Demux and decode once: every picture goes to every rendition, every audio frame to
//! the audio mix.
//!
//! Takes the open source and a frame range. Each decoded picture gets its frame number on
//! the job's timeline (from its timestamp, not from a counter, so that a worker that
//! seeks into the middle numbers frames as a worker that starts at zero does). Duplicate
//! timestamps are dropped and small holes are filled by repeating the previous picture, so
//! the output keeps the source's frame count and timing. Hands on shared references to
//! the decoded (deinterlaced, rotated) pictures, with `pts` set to the frame number.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, ffi, frame, Packet, Rational, Rescale};

use super::filter::PictureFilter;
use super::picture::PictureSetup;
pub use super::audio_in::{open_audio, AudioDecoder, AudioFrame, AudioRoute};
use super::audio_in::drain_audio;
use super::seek::{frame_number, seek_before};
use crate::error::{Result, TranscodeError};
use crate::source::Source;

pub struct Outputs {
    pub video: Vec<SyncSender<frame::Video>>,
    /// One route per audio rendition.
    pub audio: Vec<AudioRoute>,
}

pub struct DecodeRequest<'a> {
    /// The picture chain's settings (colour, LUT, burn-ins).
    pub picture: &'a PictureSetup,
    pub first_frame: u64,
    pub end_frame: Option<u64>,
    pub decode_video: bool,
    pub threads: usize,
    /// A short sample (the complexity probe's): the demuxer already stands on a keyframe
    /// at or before `first_frame` (see [`super::seek::seek_to_keyframe`]), so no seek and
    /// no run-up; an intra-only codec decodes with slice threads, since filling and
    /// draining a frame pipeline costs more than it brings over a few frames (measured on 2
    /// cores, the probe of a noisy 1080p ProRes 422 HQ clip: 0.37-0.38 s against 0.48-0.51
    /// s frame-threaded).
    pub sample: bool,
    /// Time (seconds from the video's zero) of the first audio sample wanted, when audio
    /// is decoded: a chunk's audio starts a little before its first frame (pre-roll).
    pub audio_from: Option<f64>,
    /// Time after which no audio is wanted (`None`: to the source's end).
    pub audio_until: Option<f64>,
}

#[derive(Debug, Default, Clone)]
pub struct DecodeStats {
    /// Frames handed on (including repeats that filled holes).
    pub frames: u64,
    pub repeated: u64,
    pub dropped: u64,
    pub decode_errors: u64,
    /// The source ended before `end_frame`.
    pub hit_end_of_source: bool,
    /// What the colour stage did (review copies).
    pub colour: Option<String>,
}

/// Longest hole in the timestamps we paper over by repeating a picture.
const MAX_HOLE_SECONDS: f64 = 2.0;

pub fn run(
    source: &mut Source,
    req: &DecodeRequest,
    mut audio_decoders: Vec<AudioDecoder>,
    out: &Outputs,
    cancel: &AtomicBool,
) -> Result<DecodeStats> {
    let name = source.name();
    let info = source.info.clone();
    let damaged = |detail: String| TranscodeError::Damaged { path: name.clone(), detail };
    // Every frame of an intra-only codec (ProRes, DNxHR, ...) decodes on its own.
    let intra = intra_only(source.input.stream(info.video_index).expect("video stream").parameters().id());
    let threading = if req.sample && intra { codec::threading::Type::Slice } else { codec::threading::Type::Frame };
    let mut video = open_video(source, info.video_index, req.threads, threading)?;
    let mut state = VideoState {
        name: &name,
        tb: tb(info.time_base),
        info: &info,
        first_frame: req.first_frame,
        end_frame: req.end_frame,
        last: None,
        filter: None,
        filter_checked: false,
        picture: req.picture,
        stats: DecodeStats::default(),
        reached_end: false,
        out,
        seek_margin: 0.0,
        needs_reseek: false,
    };

    // Streams this task does not use are not even read: the MOV and MXF demuxers skip the
    // bytes of discarded streams, so an audio task does not pull every video frame of a
    // long original through object storage, nor a video chunk the PCM.
    let used: Vec<usize> = audio_decoders
        .iter()
        .map(|a| a.stream)
        .chain(req.decode_video.then_some(info.video_index))
        .collect();
    discard_others(source, &used);

    if !req.decode_video && source.plan_reads(&used) {
        tracing::debug!(streams = ?used, "reading the audio by the container's index");
    }

    for a in audio_decoders.iter_mut() {
        let tb = a.time_base;
        a.until = req.audio_until.map(|t| (t * f64::from(tb.denominator()) / f64::from(tb.numerator())).ceil() as i64);
    }
    if req.decode_video && req.first_frame > 0 && !req.sample {
        // Long-GOP sources need a run-up before the range; for an intra-only one a few
        // frames of slack will do, and the frames before the range are not even decoded.
        // The audio's pre-roll starts a little earlier still.
        let start = info.rate.frames_to_seconds(req.first_frame);
        let pre_roll = req.audio_from.map_or(0.0, |from| start - from);
        state.seek_margin = f64::max(if intra { 0.1 } else { 2.0 }, pre_roll + 0.1);
        seek_before(source, &info, req.first_frame, state.seek_margin)?;
    }

    read_packets(source, req, &mut video, &mut state, &mut audio_decoders, intra, cancel)?;
    flush_at_end(&mut video, &mut state, &mut audio_decoders, req.decode_video)?;
    if req.decode_video {
        check_complete(&state, &info, req, &damaged)?;
    }
    Ok(state.stats)
}

fn check_complete(
    state: &VideoState,
    info: &crate::source::SourceInfo,
    req: &DecodeRequest,
    damaged: &dyn Fn(String) -> TranscodeError,
) -> Result<()> {
    let Some((last, _)) = state.last.as_ref() else {
        return Err(damaged("no picture could be decoded".into()));
    };
    let got = last + 1;
    // The container's own frame count (or duration) says how many frames there should be.
    if let Some(expected) = info.frames_expected() {
        let wanted = req.end_frame.map_or(expected, |e| e.min(expected));
        let tolerance = 2 + wanted / 50;
        if got + tolerance < wanted {
            return Err(damaged(format!(
                "only {got} of {expected} frames could be decoded: the file is truncated or damaged"
            )));
        }
    }
    Ok(())
}

struct VideoState<'a> {
    name: &'a str,
    tb: Rational,
    info: &'a crate::source::SourceInfo,
    first_frame: u64,
    end_frame: Option<u64>,
    /// Last frame handed on, kept to fill holes.
    last: Option<(u64, frame::Video)>,
    filter: Option<PictureFilter>,
    filter_checked: bool,
    picture: &'a PictureSetup,
    stats: DecodeStats,
    reached_end: bool,
    out: &'a Outputs,
    seek_margin: f64,
    needs_reseek: bool,
}

impl VideoState<'_> {
    fn frame_number(&self, ts: i64) -> i64 {
        frame_number(self.info, self.tb, ts)
    }

    fn accept(&mut self, mut decoded: frame::Video) -> Result<()> {
        let ts = decoded.timestamp().or(decoded.pts());
        let n = match ts {
            Some(ts) => self.frame_number(ts),
            None => self.last.as_ref().map_or(0, |(n, _)| *n as i64 + 1),
        };
        if n < self.first_frame as i64 {
            return Ok(());
        }
        let n = n as u64;
        if let Some(end) = self.end_frame {
            if n >= end {
                self.reached_end = true;
                return Ok(());
            }
        }
        let expected_next = self.last.as_ref().map_or(self.first_frame, |(l, _)| l + 1);
        if n < expected_next {
            self.stats.dropped += 1;
            return Ok(());
        }
        if self.last.is_none() && n > self.first_frame && self.seek_margin > 0.0 {
            // We landed after the range start: seek further back and decode again.
            let seek_start = self.info.rate.frames_to_seconds(self.first_frame) - self.seek_margin;
            if seek_start > 0.0 {
                self.needs_reseek = true;
                return Ok(());
            }
        }
        let hole = n - expected_next;
        if hole as f64 > MAX_HOLE_SECONDS * self.info.rate.as_f64() {
            return Err(TranscodeError::Damaged {
                path: self.name.into(),
                detail: format!("{hole} frames are missing before frame {n}"),
            });
        }
        // Holes (including a late first frame) are filled with the nearest picture.
        for missing in expected_next..n {
            let fill = match self.last.as_ref() {
                Some((_, prev)) => share(prev),
                None => share(&decoded),
            };
            self.stats.repeated += 1;
            self.process(fill, missing)?;
        }
        decoded.set_pts(Some(n as i64));
        self.process(decoded, n)
    }

    fn process(&mut self, mut frame: frame::Video, n: u64) -> Result<()> {
        frame.set_pts(Some(n as i64));
        if !self.filter_checked {
            self.filter_checked = true;
            let plan = self.picture.plan(self.info, &frame);
            tracing::debug!(
                before = plan.before.as_deref().unwrap_or("-"),
                lut_pass = plan.lut.is_some(),
                after = plan.after.as_deref().unwrap_or("-"),
                colour = plan.colour.describe(),
                "picture chain"
            );
            self.stats.colour = self.picture.review.is_some().then(|| plan.colour.describe().to_string());
            if !plan.is_empty() {
                let rate = self.info.rate;
                let filter = PictureFilter::new(plan, &frame, Rational(rate.den as i32, rate.num as i32))
                    .map_err(|e| TranscodeError::ffmpeg("building the picture filter", "-", e))?;
                self.filter = Some(filter);
            }
        }
        self.last = Some((n, share(&frame)));
        match self.filter.as_mut() {
            None => self.send(frame),
            Some(filter) => {
                filter.push(&frame).map_err(|e| TranscodeError::ffmpeg("filtering", "-", e))?;
                while let Some(f) = self.filter.as_mut().and_then(|f| f.pull()) {
                    self.send(f)?;
                }
                Ok(())
            }
        }
    }

    fn send(&mut self, frame: frame::Video) -> Result<()> {
        for tx in &self.out.video {
            // A closed channel means that rendition failed; its own error is reported.
            tx.send(share(&frame)).map_err(|_| TranscodeError::Cancelled)?;
        }
        self.stats.frames += 1;
        Ok(())
    }
}

fn drain_video(decoder: &mut ffmpeg::decoder::Video, state: &mut VideoState) -> Result<()> {
    loop {
        let mut frame = frame::Video::empty();
        match decoder.receive_frame(&mut frame) {
            Ok(()) => {
                state.accept(frame)?;
                if state.needs_reseek {
                    return Ok(());
                }
            }
            Err(ffmpeg::Error::Other { errno: ffi::EAGAIN }) | Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(_) => state.stats.decode_errors += 1,
        }
    }
}

/// Reads and decodes packets until the range is done (or the input ends): pictures to
/// the renditions, audio to the mix; a long run of unreadable or undecodable packets fails
/// the task as damaged, storage trouble as storage trouble.
fn read_packets(
    source: &mut Source,
    req: &DecodeRequest,
    video: &mut ffmpeg::decoder::Video,
    state: &mut VideoState,
    audio_decoders: &mut [AudioDecoder],
    intra: bool,
    cancel: &AtomicBool,
) -> Result<()> {
    let (info, name) = (state.info, state.name);
    let damaged = |detail: String| TranscodeError::Damaged { path: name.to_string(), detail };
    let mut read_errors = 0u32;
    loop {
        // A fresh packet each time: av_read_frame does not release what a packet holds,
        // so reusing one would leak every compressed frame of the source.
        let mut packet = Packet::empty();
        if cancel.load(Ordering::Relaxed) {
            return Err(TranscodeError::Cancelled);
        }
        if (state.reached_end || !req.decode_video) && audio_decoders.iter().all(|a| a.done) {
            break;
        }
        match packet.read(&mut source.input) {
            Ok(()) => read_errors = 0,
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => {
                // Storage trouble (after the client's own retries) is not a damaged file.
                if let Some(io) = source.take_io_error() {
                    return Err(io);
                }
                read_errors += 1;
                if read_errors > 32 {
                    return Err(damaged(format!("the container cannot be read any further: {e}")));
                }
                continue;
            }
        }
        let index = packet.stream();
        if index == info.video_index && req.decode_video && !state.reached_end {
            let before_range = |pts: i64| state.frame_number(pts) < req.first_frame as i64;
            if intra && state.last.is_none() && packet.pts().is_some_and(before_range) {
                continue;
            }
            if video.send_packet(&packet).is_err() {
                state.stats.decode_errors += 1;
            }
            drain_video(video, state)?;
            if state.needs_reseek {
                state.needs_reseek = false;
                state.seek_margin *= 4.0;
                video.flush();
                for a in audio_decoders.iter_mut() {
                    a.decoder.flush();
                }
                seek_before(source, info, req.first_frame, state.seek_margin)?;
            }
        } else if let Some(a) = audio_decoders.iter_mut().find(|a| a.stream == index) {
            if a.decoder.send_packet(&packet).is_err() {
                state.stats.decode_errors += 1;
            }
            drain_audio(a, state.out)?;
        }
        let limit = 16 + state.stats.frames / 50;
        if state.stats.decode_errors > limit {
            return Err(damaged(format!(
                "{} packets could not be decoded (after {} good frames)",
                state.stats.decode_errors, state.stats.frames
            )));
        }
    }
    Ok(())
}

/// The video decoder, threaded as asked, refusing pictures over the pixel limit.
pub(crate) fn open_video(source: &Source, index: usize, threads: usize, kind: codec::threading::Type) -> Result<ffmpeg::decoder::Video> {
    let decoder_err = |e: ffmpeg::Error| TranscodeError::ffmpeg("opening the decoder", "-", e);
    let stream = source.input.stream(index).expect("video stream");
    let mut ctx = codec::context::Context::from_parameters(stream.parameters()).map_err(decoder_err)?;
    ctx.set_threading(codec::threading::Config { kind, count: threads, ..Default::default() });
    // `max_pixels`: a stream may change size mid-way (new SPS), past what its header declared.
    // SAFETY: `ctx` owns its codec context, not yet opened; plain field writes.
    unsafe {
        (*ctx.as_mut_ptr()).pkt_timebase = stream.time_base().into();
        (*ctx.as_mut_ptr()).max_pixels = crate::source::MAX_PIXELS;
    }
    ctx.decoder().video().map_err(decoder_err)
}

/// Streams a task does not use are not even read: the MOV and MXF demuxers skip the bytes
/// of discarded streams.
pub(super) fn discard_others(source: &mut Source, used: &[usize]) {
    for i in 0..source.input.nb_streams() as usize {
        if !used.contains(&i) {
            if let Some(mut stream) = source.input.stream_mut(i) {
                // SAFETY: `stream` borrows the input mutably; a plain field write before reading.
                unsafe { (*stream.as_mut_ptr()).discard = ffi::AVDiscard::AVDISCARD_ALL };
            }
        }
    }
}

/// The end of the input (the source's or the range's): what the decoders and the picture
/// filter still hold goes out.
fn flush_at_end(video: &mut ffmpeg::decoder::Video, state: &mut VideoState, audio: &mut [AudioDecoder], decode_video: bool) -> Result<()> {
    if decode_video && !state.reached_end {
        let _ = video.send_eof();
        drain_video(video, state)?;
        state.stats.hit_end_of_source = true;
    }
    // At the end of the range too, not only of the source: the deinterlacer holds the
    // range's last picture back until it is flushed.
    if let Some(filter) = state.filter.as_mut() {
        filter.flush().map_err(|e| TranscodeError::ffmpeg("filtering", "-", e))?;
        while let Some(f) = state.filter.as_mut().and_then(|f| f.pull()) {
            state.send(f)?;
        }
    }
    for a in audio.iter_mut() {
        let _ = a.decoder.send_eof();
        drain_audio(a, state.out)?;
    }
    Ok(())
}

/// Whether every frame of the codec is a keyframe (FFmpeg's codec descriptor says so).
fn intra_only(id: codec::Id) -> bool {
    // SAFETY: codec descriptors are static; null (unknown codec) is checked before reading.
    unsafe {
        let descriptor = ffi::avcodec_descriptor_get(id.into());
        !descriptor.is_null() && (*descriptor).props & ffi::AV_CODEC_PROP_INTRA_ONLY != 0
    }
}

/// A new reference to the same picture buffers (no copy).
pub fn share(frame: &frame::Video) -> frame::Video {
    frame::Video::from(add_ref(frame))
}

/// A new reference to the same buffers as `frame` (pictures or samples), no copy.
pub(super) fn add_ref(frame: &frame::Frame) -> frame::Frame {
    // SAFETY: the new frame is checked for null; av_frame_ref adds a reference to the same
    // buffers (checked), and `wrap` takes ownership of the new frame, freeing it on drop.
    unsafe {
        let f = ffi::av_frame_alloc();
        assert!(!f.is_null(), "out of memory");
        let ret = ffi::av_frame_ref(f, frame.as_ptr());
        assert!(ret >= 0, "av_frame_ref failed");
        frame::Frame::wrap(f)
    }
}

pub(super) fn tb(t: (i32, i32)) -> Rational {
    Rational(t.0, t.1)
}

pub(super) fn rescale(v: i64, from: Rational, to: Rational) -> i64 {
    v.rescale(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intra_only_codecs_are_told_apart_from_long_gop_ones() {
        assert!(intra_only(codec::Id::PRORES) && intra_only(codec::Id::DNXHD) && intra_only(codec::Id::MJPEG));
        assert!(!intra_only(codec::Id::H264) && !intra_only(codec::Id::HEVC) && !intra_only(codec::Id::MPEG2VIDEO));
    }
}
