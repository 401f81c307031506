//! The audio rendition: mix the selected tracks down, encode AAC-LC, segment.
//!
//! Audio is a separate rendition group encoded over the whole source in one go, so chunks
//! of video split across workers never cut it: no clicks, gaps or drift at chunk joins.
//! Takes decoded frames of the selected tracks; hands on the audio part of the manifest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use farm_shared::ladder::AudioSpec;
use farm_shared::manifest::{RenditionPart, SegmentRecord};
use farm_shared::timeline::Cuts;
use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, ffi, Packet, Rational};

use super::decode::AudioFrame;
use super::encode;
use super::filter::{AudioInput, AudioMix};
use super::segment::{SegmentClock, Segmenter};
use crate::codecs;
use crate::error::{Result, TranscodeError};
use crate::sink::Sink;
use crate::source::AudioTrack;

pub const RENDITION: &str = "audio";

/// Which tracks make the review mix: a multichannel first track on its own; two or more
/// mono tracks (the usual camera or recorder layout) give left and right from the first
/// two; a single mono track is used alone. Returns stream indices in mix order.
pub fn select_tracks(tracks: &[AudioTrack]) -> Vec<usize> {
    match tracks {
        [] => vec![],
        [first, second, ..] if first.channels == 1 && second.channels == 1 => {
            vec![first.index, second.index]
        }
        [first, ..] => vec![first.index],
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
}

pub struct AudioJob<'a> {
    pub spec: &'a AudioSpec,
    pub inputs: Vec<AudioInput>,
    pub cuts: Cuts,
    /// Samples after which audio is cut (the end of the picture), when known.
    pub end_sample: Option<i64>,
    pub sink: &'a dyn Sink,
    /// Samples encoded so far, for progress.
    pub encoded: &'a AtomicU64,
    pub on_segment: &'a (dyn Fn(&SegmentRecord) + Sync),
}

pub fn run(job: AudioJob, frames: Receiver<AudioFrame>) -> Result<RenditionPart> {
    let fail = |stage: &'static str| move |e: ffmpeg::Error| TranscodeError::ffmpeg(stage, RENDITION, e);
    let mut encoder = encode::open_aac(job.spec)?;
    let frame_size = encoder.frame_size().max(1);
    let mut mix = AudioMix::new(&job.inputs, job.spec.sample_rate, job.spec.channels, frame_size)
        .map_err(fail("building the audio mix"))?;
    let clock = AudioClock { sample_rate: job.spec.sample_rate, cuts: job.cuts };
    let mut segmenter = Segmenter::new(
        RENDITION,
        clock,
        codec::Parameters::from(&*encoder),
        Rational(1, job.spec.sample_rate as i32),
        job.sink,
        job.on_segment,
    );
    let encode_ready = |mix: &mut AudioMix,
                            encoder: &mut ffmpeg::encoder::Audio,
                            segmenter: &mut Segmenter<AudioClock>|
     -> Result<()> {
        while let Some(frame) = mix.pull() {
            let pts = frame.pts().unwrap_or(0);
            if job.end_sample.is_some_and(|end| pts >= end) {
                continue;
            }
            encoder.send_frame(&frame).map_err(fail("encoding"))?;
            drain(encoder, segmenter)?;
            job.encoded.store(pts.max(0) as u64 + frame.samples() as u64, Ordering::Relaxed);
        }
        Ok(())
    };
    for AudioFrame { slot, mut frame } in frames {
        mix.push(slot, &mut frame).map_err(fail("mixing audio"))?;
        encode_ready(&mut mix, &mut encoder, &mut segmenter)?;
    }
    mix.flush().map_err(fail("mixing audio"))?;
    encode_ready(&mut mix, &mut encoder, &mut segmenter)?;
    encoder.send_eof().map_err(fail("encoding"))?;
    drain(&mut encoder, &mut segmenter)?;
    Ok(RenditionPart {
        name: RENDITION.into(),
        codecs: codecs::AAC_LC.into(),
        width: None,
        height: None,
        frame_rate: None,
        channels: Some(job.spec.channels),
        segments: segmenter.finish()?,
    })
}

fn drain(encoder: &mut ffmpeg::encoder::Audio, segmenter: &mut Segmenter<AudioClock>) -> Result<()> {
    loop {
        let mut packet = Packet::empty();
        match encoder.receive_packet(&mut packet) {
            Ok(()) => segmenter.push(&packet)?,
            Err(ffmpeg::Error::Other { errno: ffi::EAGAIN }) | Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(e) => return Err(TranscodeError::ffmpeg("encoding", RENDITION, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(index: usize, channels: u32) -> AudioTrack {
        AudioTrack { index, channels, sample_rate: 48_000, codec: "pcm_s24le".into() }
    }

    #[test]
    fn picks_the_tracks_of_the_review_mix() {
        assert!(select_tracks(&[]).is_empty());
        assert_eq!(select_tracks(&[track(1, 2)]), vec![1]);
        assert_eq!(select_tracks(&[track(1, 6), track(2, 1)]), vec![1]);
        assert_eq!(select_tracks(&[track(1, 1)]), vec![1]);
        assert_eq!(select_tracks(&[track(1, 1), track(2, 1), track(3, 1), track(4, 1)]), vec![1, 2]);
        assert_eq!(select_tracks(&[track(1, 1), track(2, 2)]), vec![1]);
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
