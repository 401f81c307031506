//! One audio rendition (the review mix, or one source track): mix its tracks down, encode
//! AAC-LC, segment. Runs on its own thread; [`plan`] says which renditions a source gets.
//!
//! Takes decoded frames of the selected tracks; hands on the audio part of the manifest.
//! A chunk encodes the audio segments of its own range, and the joins between chunks must
//! not be heard. AAC frames overlap (each one's transform spans its neighbours' samples)
//! and the encoder adapts as it goes, so a chunk's encoder starts a few frames before the
//! range (pre-roll) and runs a few frames past it (post-roll), on the same 1024-sample
//! frame grid as an encoder over the whole source, and only the packets that start inside
//! the range are kept: every packet is then encoded from the real signal around it, and a
//! player decodes the joined segments as one stream (the e2e tests compare a split job's
//! decoded audio with a one-pass job's around every join).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use farm_contract::manifest::RenditionPart;
use farm_contract::timeline::Cuts;
use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, ffi, Packet, Rational};

use super::decode::AudioFrame;
use super::encode;
use super::filter::{AudioInput, AudioMix};
use super::segment::{Output, SegmentClock, Segmenter};
use farm_hls::codecs;
use crate::error::{Result, TranscodeError};

pub use super::audio_plan::{plan, select_tracks, AudioRendition};

/// Samples per AAC-LC frame.
pub const AAC_FRAME: u64 = 1024;
/// Frames a chunk's encoder runs before its range: enough for the transform's overlap and
/// for the encoder's adaptation (psychoacoustic state, rate control) to settle.
const PRE_ROLL_FRAMES: u64 = 8;
/// Frames it runs past its range, so that the last packets kept saw the real signal after
/// them (the encoder looks one frame ahead) rather than the end of input.
const POST_ROLL_FRAMES: u64 = 4;

/// The samples a task's audio encoder is fed and the segments whose packets it keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioRange {
    pub first_segment: u64,
    pub end_segment: Option<u64>,
    /// First sample fed to the encoder, on the 1024-sample frame grid from zero.
    pub feed_start: i64,
    /// No frame starting at or after this sample is fed: the end of the picture for the
    /// last part, a few frames past the range for others. `None`: the source's end.
    pub feed_end: Option<i64>,
}

impl AudioRange {
    /// Segments `[first_segment, end_segment)` of `cuts`, for a source whose audio is cut
    /// at `audio_end` samples (the end of the picture), when known.
    pub fn new(cuts: Cuts, sample_rate: u32, first_segment: u64, end_segment: Option<u64>, audio_end: Option<u64>) -> Self {
        let at = |k: u64| cuts.start_unit(k, u64::from(sample_rate), 1);
        let feed_start = if first_segment == 0 {
            0
        } else {
            (at(first_segment) / AAC_FRAME).saturating_sub(PRE_ROLL_FRAMES) * AAC_FRAME
        };
        let past_range = end_segment.map(|e| (at(e).div_ceil(AAC_FRAME) + POST_ROLL_FRAMES) * AAC_FRAME);
        let feed_end = match (past_range, audio_end) {
            (Some(p), Some(a)) => Some(p.min(a)),
            (p, a) => p.or(a),
        };
        Self { first_segment, end_segment, feed_start: feed_start as i64, feed_end: feed_end.map(|e| e as i64) }
    }

    fn keeps(&self, segment: u64) -> bool {
        segment >= self.first_segment && self.end_segment.is_none_or(|end| segment < end)
    }
}

/// Audio segments follow the same wall-clock boundaries as video, in samples.
pub struct AudioClock {
    pub sample_rate: u32,
    pub cuts: Cuts,
}

impl SegmentClock for AudioClock {
    fn segment_of(&self, unit: i64) -> u64 {
        if unit <= 0 {
            return 0;
        }
        self.cuts.segment_of_unit(unit as u64, u64::from(self.sample_rate), 1)
    }
    fn units_per_second(&self) -> f64 {
        f64::from(self.sample_rate)
    }
    fn needs_keyframe(&self) -> bool {
        false
    }
    fn nominal_start_ms(&self, index: u64) -> u64 {
        self.cuts.start_ms(index)
    }
}

pub struct AudioJob<'a> {
    pub rendition: &'a AudioRendition,
    pub inputs: Vec<AudioInput>,
    pub cuts: Cuts,
    pub range: AudioRange,
    /// Where the segments go, in which container, sealed or not.
    pub output: Output<'a>,
    /// Samples encoded so far, for progress.
    pub encoded: &'a AtomicU64,
    /// Set when the input ended because the range was decoded to its end.
    pub input_complete: &'a AtomicBool,
}

pub fn run(job: AudioJob, frames: Receiver<AudioFrame>) -> Result<RenditionPart> {
    let (name, spec) = (job.rendition.name.as_str(), &job.rendition.spec);
    let fail = |stage: &'static str| move |e: ffmpeg::Error| TranscodeError::ffmpeg(stage, name, e);
    let mut encoder = encode::open_aac(spec, name)?;
    if u64::from(encoder.frame_size()) != AAC_FRAME {
        let detail = format!("the AAC encoder's frame is {} samples, not {AAC_FRAME}", encoder.frame_size());
        return Err(TranscodeError::ffmpeg("opening the AAC encoder", name, detail));
    }
    let range = job.range;
    let mut mix = AudioMix::new(&job.inputs, spec.sample_rate, spec.channels, AAC_FRAME as u32, range.feed_start)
        .map_err(fail("building the audio mix"))?;
    let clock = AudioClock { sample_rate: spec.sample_rate, cuts: job.cuts };
    let mut segmenter = Segmenter::new(
        name,
        clock,
        codec::Parameters::from(&*encoder),
        Rational(1, spec.sample_rate as i32),
        job.output,
    );
    let mut feed = Feed { name, range, next: range.feed_start, encoded: job.encoded };
    for AudioFrame { slot, mut frame } in frames {
        mix.push(slot, &mut frame).map_err(fail("mixing audio"))?;
        while let Some(mixed) = mix.pull() {
            feed.encode(&mixed, &mut encoder, &mut segmenter)?;
        }
    }
    if !job.input_complete.load(Ordering::SeqCst) {
        // Stopped, not finished: neither the partial last segment nor silence is written.
        return Err(TranscodeError::Cancelled);
    }
    mix.flush().map_err(fail("mixing audio"))?;
    while let Some(mixed) = mix.pull() {
        feed.encode(&mixed, &mut encoder, &mut segmenter)?;
    }
    // A source whose sound stops before the picture (or before this range's end) gets
    // silence up to there: the rendition covers the picture, and a chunk past the sound's
    // end still writes its segments, so the audio playlist has no hole.
    if let Some(end) = range.feed_end {
        let mut silence = encode::silence(spec, AAC_FRAME as usize);
        while feed.next < end {
            silence.set_pts(Some(feed.next));
            feed.encode(&silence, &mut encoder, &mut segmenter)?;
        }
    }
    encoder.send_eof().map_err(fail("encoding"))?;
    drain(&mut encoder, &mut segmenter, &range, name)?;
    let r = job.rendition;
    let init = segmenter.init_uri();
    Ok(RenditionPart {
        name: r.name.clone(),
        codecs: codecs::AAC_LC.into(),
        width: None,
        height: None,
        frame_rate: None,
        channels: Some(spec.channels),
        segments: segmenter.finish()?,
        label: Some(r.label.clone()),
        language: r.language.clone(),
        source_streams: r.source_streams.clone(),
        group: Some(r.group.to_string()),
        init,
    })
}

/// Feeds mixed frames to the encoder, up to the range's end.
struct Feed<'a> {
    name: &'a str,
    range: AudioRange,
    /// Where the next frame starts: the mix's frames follow each other without gaps.
    next: i64,
    /// Samples encoded so far, for progress.
    encoded: &'a AtomicU64,
}

impl Feed<'_> {
    fn encode(
        &mut self,
        frame: &ffmpeg::frame::Audio,
        encoder: &mut ffmpeg::encoder::Audio,
        segmenter: &mut Segmenter<AudioClock>,
    ) -> Result<()> {
        let pts = frame.pts().unwrap_or(self.next);
        if self.range.feed_end.is_some_and(|end| pts >= end) {
            return Ok(());
        }
        encoder
            .send_frame(frame)
            .map_err(|e| TranscodeError::ffmpeg("encoding", self.name, e))?;
        drain(encoder, segmenter, &self.range, self.name)?;
        self.next = pts + frame.samples() as i64;
        self.encoded.store(self.next.max(0) as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Hands the encoded packets that start inside the range to the segmenter; the pre- and
/// post-roll's are dropped.
fn drain(encoder: &mut ffmpeg::encoder::Audio, segmenter: &mut Segmenter<AudioClock>, range: &AudioRange, name: &str) -> Result<()> {
    loop {
        let mut packet = Packet::empty();
        match encoder.receive_packet(&mut packet) {
            Ok(()) => {
                let unit = packet.pts().or(packet.dts()).unwrap_or(0);
                if range.keeps(segmenter.clock().segment_of(unit)) {
                    segmenter.push(&packet)?;
                }
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
    fn a_chunk_feeds_its_encoder_from_before_to_after_its_range_on_the_whole_source_s_frames() {
        // leading 2 s segments, then 6 s: segment 3 starts at 6 s = 288 000 samples, 5 at 18 s
        let cuts = Cuts::with_lead(6000, 3, 2000);
        let whole = AudioRange::new(cuts, 48_000, 0, None, Some(2_880_000));
        assert_eq!((whole.feed_start, whole.feed_end, whole.keeps(0), whole.keeps(100)), (0, Some(2_880_000), true, true));
        let first = AudioRange::new(cuts, 48_000, 0, Some(3), Some(2_880_000));
        assert_eq!(first.feed_start, 0, "nothing before the source's start");
        // 288 000 / 1024 = 281.25: 8 frames of pre-roll before frame 281
        let chunk = AudioRange::new(cuts, 48_000, 3, Some(5), Some(2_880_000));
        assert_eq!(chunk.feed_start, (281 - 8) * 1024);
        // 864 000 / 1024 = 843.75: 4 frames of post-roll after frame 844
        assert_eq!(chunk.feed_end, Some((844 + 4) * 1024));
        assert!(!chunk.keeps(2) && chunk.keeps(3) && chunk.keeps(4) && !chunk.keeps(5));
        // the last chunk runs to the end of the picture, and so does a chunk past it
        let last = AudioRange::new(cuts, 48_000, 5, None, Some(1_000_000));
        assert_eq!((last.feed_end, last.keeps(100)), (Some(1_000_000), true));
        assert_eq!(AudioRange::new(cuts, 48_000, 3, Some(5), Some(800_000)).feed_end, Some(800_000));
        // 44.1 kHz: segment 3 starts at 264 600 samples (frame 258.4)
        assert_eq!(AudioRange::new(cuts, 44_100, 3, None, None).feed_start, (258 - 8) * 1024);
    }

    #[test]
    fn audio_segments_follow_the_wall_clock_grid() {
        let c = AudioClock { sample_rate: 48_000, cuts: Cuts::even(6000) };
        assert_eq!(c.segment_of(-1024), 0);
        assert_eq!(c.segment_of(287_999), 0);
        assert_eq!(c.segment_of(288_000), 1);
        assert_eq!(c.segment_of(288_000 * 10 + 5), 10);
        let c = AudioClock { sample_rate: 44_100, cuts: Cuts::even(6000) };
        assert_eq!(c.segment_of(264_599), 0);
        assert_eq!(c.segment_of(264_600), 1);
        // leading 2 s segments: the same boundaries as the video's
        let c = AudioClock { sample_rate: 48_000, cuts: Cuts::with_lead(6000, 3, 2000) };
        assert_eq!((c.segment_of(95_999), c.segment_of(96_000)), (0, 1));
        assert_eq!((c.segment_of(287_999), c.segment_of(288_000), c.segment_of(575_999), c.segment_of(576_000)), (2, 3, 3, 4));
    }
}
