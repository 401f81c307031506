//! The files beside the master playlist that make a ladder a review copy: `review.json`
//! (what the copy is: timecode, rate, frames, burn-ins, LUT, colour, audio renditions and
//! the source tracks behind them, the thumbnail track) and `thumbnails.vtt` (WebVTT cues
//! pointing at sprite tiles with `#xywh=`).
//!
//! Takes the job's review settings and what its parts recorded; hands on file texts. A
//! review page reads `review.json` to show SMPTE timecode beside the player.

use serde::Serialize;

use farm_contract::manifest::{RenditionPart, AUDIO_RENDITION};
use farm_contract::review::{BurnIn, LutRef, Review, ToneMap};
use farm_contract::thumbnails::{Thumbnails, POSTER, THUMBNAILS_VTT};
use farm_contract::timecode::Timecode;
use farm_contract::timeline::FrameRate;

pub const REVIEW_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct ReviewDocument<'a> {
    pub version: u32,
    pub clip_name: &'a str,
    pub start_timecode: Timecode,
    /// `job`, `source` or `default`.
    pub timecode_origin: &'a str,
    pub frame_rate: FrameRate,
    pub drop_frame: bool,
    pub frame_count: u64,
    pub duration: f64,
    pub burn_in: &'a [BurnIn],
    pub watermark: Option<&'a str>,
    pub lut: Option<&'a LutRef>,
    pub tone_map: ToneMap,
    /// What the colour stage did: `none (BT.709)`, `converted to BT.709`, `tone-mapped
    /// (hable) to BT.709`, `LUT`. Every rendition is BT.709 SDR, limited range.
    pub colour: Option<&'a str>,
    pub audio: Vec<AudioEntry<'a>>,
    pub thumbnails: Option<ThumbnailEntry>,
}

#[derive(Debug, Serialize)]
pub struct AudioEntry<'a> {
    pub name: &'a str,
    pub playlist: String,
    pub label: Option<&'a str>,
    pub language: Option<&'a str>,
    pub channels: Option<u32>,
    pub default: bool,
    /// The source's stream indices behind the rendition.
    pub source_streams: &'a [usize],
}

#[derive(Debug, Serialize)]
pub struct ThumbnailEntry {
    pub vtt: &'static str,
    pub poster: &'static str,
    pub interval: f64,
    pub width: u32,
    pub height: u32,
}

/// `review.json` of a finished job.
pub fn document(review: &Review, colour: Option<&str>, rate: FrameRate, frame_count: u64, audio: &[RenditionPart]) -> String {
    let doc = ReviewDocument {
        version: REVIEW_VERSION,
        clip_name: &review.clip_name,
        start_timecode: review.start_timecode,
        timecode_origin: &review.timecode_origin,
        frame_rate: rate,
        drop_frame: review.start_timecode.drop_frame,
        frame_count,
        duration: rate.frames_to_seconds(frame_count),
        burn_in: &review.burn_in,
        watermark: review.watermark.as_deref(),
        lut: review.lut.as_ref(),
        tone_map: review.tone_map,
        colour,
        // One entry per track: a low-rate twin (audio by bandwidth) is the same track.
        audio: audio
            .iter()
            .filter(|a| a.group() == farm_contract::ladder::AUDIO_GROUP)
            .map(|a| AudioEntry {
                name: &a.name,
                playlist: format!("{}/index.m3u8", a.name),
                label: a.label.as_deref(),
                language: a.language.as_deref(),
                channels: a.channels,
                default: a.name == AUDIO_RENDITION,
                source_streams: &a.source_streams,
            })
            .collect(),
        thumbnails: review.thumbnails.map(|t| ThumbnailEntry {
            vtt: THUMBNAILS_VTT,
            poster: POSTER,
            interval: f64::from(t.interval_ms) / 1000.0,
            width: t.width,
            height: t.height,
        }),
    };
    serde_json::to_string_pretty(&doc).expect("review documents serialise")
}

/// The WebVTT thumbnail track of the sprites present, contiguous from the first thumbnail
/// (a sprite after a gap waits for the chunk before it); cues end at the next thumbnail or
/// at `duration`. `None` before the first sprite exists.
pub fn vtt<'a>(spec: &Thumbnails, sprites: impl IntoIterator<Item = &'a str>, duration: f64) -> Option<String> {
    let mut held: Vec<(std::ops::Range<u64>, &str)> =
        sprites.into_iter().filter_map(|key| Thumbnails::parse_sprite_key(key).map(|r| (r, key))).collect();
    held.sort_by_key(|(r, _)| r.start);
    let mut text = String::from("WEBVTT\n");
    let mut next = 0;
    for (range, key) in held {
        if range.start != next {
            break;
        }
        for k in range.clone() {
            let start = spec.seconds_of(k);
            if start >= duration {
                break;
            }
            let end = spec.seconds_of(k + 1).min(duration);
            let (x, y) = spec.tile(k - range.start);
            text += &format!("\n{} --> {}\n{key}#xywh={x},{y},{},{}\n", cue_time(start), cue_time(end), spec.width, spec.height);
        }
        next = range.end;
    }
    (next > 0).then_some(text)
}

/// `HH:MM:SS.mmm`, as WebVTT writes times.
fn cue_time(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round() as u64;
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vtt_track_covers_contiguous_sprites_with_tile_rectangles() {
        let spec = Thumbnails::for_picture(1280, 720);
        let a = Thumbnails::sprite_key(0, 3);
        let b = Thumbnails::sprite_key(3, 2);
        let c = Thumbnails::sprite_key(7, 1); // after a gap: not yet
        let text = vtt(&spec, [b.as_str(), c.as_str(), a.as_str()], 9.5).unwrap();
        assert!(text.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nthumbnails/sprite_000000_003.jpg#xywh=0,0,192,108\n"), "{text}");
        assert!(text.contains("00:00:08.000 --> 00:00:09.500\nthumbnails/sprite_000003_002.jpg#xywh=192,0,192,108\n"), "{text}");
        assert_eq!(text.matches("-->").count(), 5, "{text}");
        assert!(!text.contains("sprite_000007"));
        assert_eq!(vtt(&spec, [b.as_str()], 9.5), None);
        assert_eq!(cue_time(3725.5), "01:02:05.500");
    }
}
