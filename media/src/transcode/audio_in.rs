//! The source's audio tracks decoded once for every audio rendition: each track's decoder,
//! its frames rebased on the video's first timestamp, handed on once (not again after
//! seeking back), none past the range, to each rendition that takes the track (the mix and
//! the track's own rendition).

use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, ffi, frame, Rational, Rescale};

use super::decode::{add_ref, rescale, tb, Outputs};
use super::filter::AudioInput;
use crate::error::{Result, TranscodeError};
use crate::source::Source;

/// A decoded audio frame of one selected track, timestamps rebased on the video's zero.
pub struct AudioFrame {
    pub slot: usize,
    pub frame: frame::Audio,
}

/// An opened decoder for one audio track of the mix.
pub struct AudioDecoder {
    pub(super) stream: usize,
    slot: usize,
    pub(super) decoder: ffmpeg::decoder::Audio,
    /// The video's first timestamp in this stream's time base.
    origin: i64,
    pub(super) time_base: Rational,
    /// Where the next frame starts (time base, from `origin`): after seeking back again,
    /// frames already handed on are not handed on twice.
    next: i64,
    /// No frame is wanted from here on (time base, from `origin`).
    pub(super) until: Option<i64>,
    /// Every wanted frame was handed on.
    pub(super) done: bool,
}

/// Opens the decoders of the audio tracks (stream indices in mix order) and describes
/// what they will put out, for the mix's inputs.
pub fn open_audio(source: &Source, tracks: &[usize]) -> Result<(Vec<AudioDecoder>, Vec<AudioInput>)> {
    let info = &source.info;
    let mut decoders = Vec::new();
    let mut inputs = Vec::new();
    for (slot, &index) in tracks.iter().enumerate() {
        let fail = |e: ffmpeg::Error| TranscodeError::ffmpeg("opening the audio decoder", "audio", e);
        let s = source.input.stream(index).expect("audio stream");
        let mut ctx = codec::context::Context::from_parameters(s.parameters()).map_err(fail)?;
        // SAFETY: `ctx` owns its codec context, not yet opened; a plain field write.
        unsafe {
            (*ctx.as_mut_ptr()).pkt_timebase = s.time_base().into();
        }
        let decoder = ctx.decoder().audio().map_err(fail)?;
        inputs.push(AudioInput {
            sample_rate: decoder.rate(),
            format: decoder.format(),
            channels: u32::from(decoder.channels()),
            time_base: s.time_base(),
        });
        let origin = rescale(info.start_ts, tb(info.time_base), s.time_base());
        decoders.push(AudioDecoder {
            stream: index,
            slot,
            decoder,
            origin,
            time_base: s.time_base(),
            next: i64::MIN,
            until: None,
            done: false,
        });
    }
    Ok((decoders, inputs))
}


/// Where one audio rendition takes its input: the decoder slots it mixes, in its order.
pub struct AudioRoute {
    pub tx: std::sync::mpsc::SyncSender<AudioFrame>,
    pub inputs: Vec<usize>,
}

pub(super) fn drain_audio(a: &mut AudioDecoder, out: &Outputs) -> Result<()> {
    loop {
        let mut frame = frame::Audio::empty();
        match a.decoder.receive_frame(&mut frame) {
            Ok(()) => {
                let ts = frame.timestamp().or(frame.pts()).map(|t| t - a.origin);
                frame.set_pts(ts);
                if let Some(pts) = ts {
                    let length = (frame.samples() as i64).rescale(Rational(1, frame.rate() as i32), a.time_base);
                    if a.done || pts.saturating_add(length / 2) < a.next {
                        continue; // not wanted, or read again after seeking back
                    }
                    a.next = pts + length;
                    a.done = a.until.is_some_and(|until| a.next >= until);
                }
                for route in &out.audio {
                    // Each rendition that takes this track gets it as its own input number.
                    if let Some(input) = route.inputs.iter().position(|&slot| slot == a.slot) {
                        let frame = frame::Audio::from(add_ref(&frame));
                        route.tx.send(AudioFrame { slot: input, frame }).map_err(|_| TranscodeError::Cancelled)?;
                    }
                }
            }
            Err(ffmpeg::Error::Other { errno: ffi::EAGAIN }) | Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(_) => return Ok(()),
        }
    }
}

