//! What makes a ladder a review copy: colour handling, the show's LUT, burn-ins, the
//! start timecode. Fixed once per job (by the coordinator, or the one-shot command) and
//! carried unchanged in every task, so every chunk renders its frames alike.

use serde::{Deserialize, Serialize};

use crate::thumbnails::Thumbnails;
use crate::timecode::Timecode;

/// Longest watermark or clip name burnt into the picture, in characters.
pub const MAX_TEXT_CHARS: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BurnIn {
    /// SMPTE timecode: the start timecode plus the frame's index on the job's timeline.
    Timecode,
    /// The source's file name without its extension.
    ClipName,
    /// The frame's index on the job's timeline, from 0.
    FrameNumber,
}

impl BurnIn {
    pub fn name(self) -> &'static str {
        match self {
            Self::Timecode => "timecode",
            Self::ClipName => "clip_name",
            Self::FrameNumber => "frame_number",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Timecode, Self::ClipName, Self::FrameNumber].into_iter().find(|b| b.name() == name)
    }
}

/// HDR (PQ, HLG) to SDR: `auto` tone-maps (Hable curve in linear light, see the
/// transcoding docs); `off` converts by the transfer functions alone, so highlights clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToneMap {
    #[default]
    Auto,
    Off,
}

/// A 3D LUT as the coordinator checked it: where it is and the SHA-256 of the bytes it
/// read. A worker that reads different bytes fails the task instead of rendering a chunk
/// with another LUT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LutRef {
    pub location: String,
    pub sha256: String,
}

/// The review options of a job as asked for (`POST /v1/jobs`, `worker transcode`), before
/// the source is known: [`Review`] is what they become once checked against it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewRequest {
    pub burn_in: Vec<BurnIn>,
    pub watermark: Option<String>,
    /// Location of a `.cube` 3D LUT, in the allowed sources.
    pub lut: Option<String>,
    pub tone_map: ToneMap,
    /// `HH:MM:SS:FF`, or `HH:MM:SS;FF` for drop-frame.
    pub start_timecode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    #[serde(default)]
    pub burn_in: Vec<BurnIn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lut: Option<LutRef>,
    #[serde(default)]
    pub tone_map: ToneMap,
    /// Timecode of the source's first frame: the job's, else the source's own, else 0.
    pub start_timecode: Timecode,
    /// Where it came from: `job`, `source` or `default`.
    pub timecode_origin: String,
    /// Burnt in with `clip_name`.
    pub clip_name: String,
    /// Scrubbing thumbnails; none for a job without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<Thumbnails>,
    /// The frame written as the poster.
    #[serde(default)]
    pub poster_frame: u64,
}

impl Review {
    /// Burn-in text must be printable on one line: no control characters, not too long.
    pub fn check_text(what: &str, text: &str) -> Result<(), String> {
        if text.trim().is_empty() {
            return Err(format!("{what} is empty"));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(format!("{what} is longer than {MAX_TEXT_CHARS} characters"));
        }
        if text.chars().any(char::is_control) {
            return Err(format!("{what} holds a control character (a line break or a tab)"));
        }
        Ok(())
    }

    /// The clip name of a source location: its last path component without extension.
    pub fn clip_name_of(location: &str) -> String {
        let last = location.rsplit('/').next().unwrap_or(location);
        let stem = match last.rfind('.') {
            Some(dot) if dot > 0 => &last[..dot],
            _ => last,
        };
        stem.chars().filter(|c| !c.is_control()).take(MAX_TEXT_CHARS).collect()
    }

    pub fn burns(&self, what: BurnIn) -> bool {
        self.burn_in.contains(&what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_in_names_round_trip_and_text_is_checked() {
        for b in [BurnIn::Timecode, BurnIn::ClipName, BurnIn::FrameNumber] {
            assert_eq!(BurnIn::parse(b.name()), Some(b));
            assert_eq!(serde_json::to_value(b).unwrap(), b.name());
        }
        assert_eq!(BurnIn::parse("tc"), None);
        assert!(Review::check_text("watermark", "CONFIDENTIAL - SHOW - VENDOR").is_ok());
        assert!(Review::check_text("watermark", "two\nlines").unwrap_err().contains("control"));
        assert!(Review::check_text("watermark", " ").is_err());
        assert!(Review::check_text("watermark", &"x".repeat(MAX_TEXT_CHARS + 1)).is_err());
    }

    #[test]
    fn clip_names_are_file_stems() {
        assert_eq!(Review::clip_name_of("s3://rushes/day1/A001C003_201130.mov"), "A001C003_201130");
        assert_eq!(Review::clip_name_of("/x/ingest/B002.tar.mxf"), "B002.tar");
        assert_eq!(Review::clip_name_of("/x/.hidden"), ".hidden");
    }
}
