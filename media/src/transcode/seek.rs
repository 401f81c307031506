//! Positions in the source: the frame a timestamp shows, the seek before a decode's range,
//! and the keyframe a short sample (the complexity probe's) starts on.

use ffmpeg_next as ffmpeg;
use ffmpeg::{ffi, Packet, Rational};

use super::decode::{discard_others, rescale, tb};
use crate::error::{Result, TranscodeError};
use crate::source::{Source, SourceInfo};

/// The frame (of the source's rate, from its first picture) that a timestamp in the video
/// stream's time base `tb` shows.
pub(super) fn frame_number(info: &SourceInfo, tb: Rational, ts: i64) -> i64 {
    let rate = info.rate;
    let num = i128::from(ts - info.start_ts) * i128::from(tb.numerator()) * i128::from(rate.num);
    let den = i128::from(tb.denominator()) * i128::from(rate.den);
    // round half up, also for negative numbers
    (num * 2 + den).div_euclid(2 * den) as i64
}

/// Puts the demuxer on the keyframe at or before `frame` (by the container's index, or
/// its search where it has none) and returns that keyframe's frame number; `None` when no
/// keyframe follows. A [`run`](super::decode::run) of a `sample` from there decodes no
/// run-up: for the complexity probe, which wants a few frames near a point of a long-GOP
/// source, not exactly those.
pub fn seek_to_keyframe(source: &mut Source, frame: u64) -> Result<Option<u64>> {
    let info = source.info.clone();
    discard_others(source, &[info.video_index]);
    seek_before(source, &info, frame, 0.0)?;
    let mut key_ts = None;
    loop {
        let mut packet = Packet::empty();
        match packet.read(&mut source.input) {
            Ok(()) if packet.stream() == info.video_index && packet.is_key() => {
                key_ts = packet.pts().or(packet.dts());
                break;
            }
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => {
                return Err(source.take_io_error().unwrap_or_else(|| TranscodeError::Damaged { path: source.name(), detail: format!("reading after a seek: {e}") }))
            }
        }
    }
    // The same seek puts the demuxer back on the packet just read.
    seek_before(source, &info, frame, 0.0)?;
    Ok(key_ts.map(|ts| frame_number(&info, tb(info.time_base), ts).max(0) as u64))
}

/// Seeks to a keyframe at least `margin` seconds before `frame`.
pub(super) fn seek_before(source: &mut Source, info: &SourceInfo, frame: u64, margin: f64) -> Result<()> {
    let seconds = (info.rate.frames_to_seconds(frame) - margin).max(0.0);
    let start_us = rescale(info.start_ts, tb(info.time_base), Rational(1, ffi::AV_TIME_BASE));
    let target = start_us + (seconds * f64::from(ffi::AV_TIME_BASE)) as i64;
    source
        .input
        .seek(target, ..target)
        .map_err(|e| TranscodeError::Damaged {
            path: source.location.to_string(),
            detail: format!("cannot seek to {seconds:.3} s: {e}"),
        })
}
