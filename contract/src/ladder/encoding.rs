//! How a ladder is encoded: how the rungs' rates are chosen, the segments' container, the
//! video codecs. The request's words (`fixed`, `per_title`, `ts`, `fmp4`, `h264`, `hevc`).

use serde::{Deserialize, Serialize};

use super::LadderError;

/// How the rungs' rates are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LadderMode {
    /// Every rung at its own average rate (1-pass ABR with a VBV peak).
    #[default]
    Fixed,
    /// Rates from the source's measured complexity (see [`super::per_title`]).
    PerTitle,
}

/// The container of the segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentFormat {
    /// MPEG-TS: every HLS player.
    #[default]
    Ts,
    /// Fragmented MP4 (CMAF) with an init segment.
    Fmp4,
}

impl SegmentFormat {
    /// The media segments' file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Ts => "ts",
            Self::Fmp4 => "m4s",
        }
    }
}

/// A video codec of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VideoCodec {
    H264,
    Hevc,
}

pub(super) fn default_codecs() -> Vec<VideoCodec> {
    vec![VideoCodec::H264]
}
pub(super) fn is_default_codecs(c: &[VideoCodec]) -> bool {
    c == [VideoCodec::H264]
}

/// The combinations this build makes: an H.264 ladder in MPEG-TS or fMP4 (CMAF) segments.
/// The HEVC ladder is in the contract but not built yet; it is refused by name.
pub fn check(codecs: &[VideoCodec]) -> Result<(), LadderError> {
    match codecs {
        [VideoCodec::H264] => Ok(()),
        [VideoCodec::H264, VideoCodec::Hevc] => Err(LadderError::Unsupported("the HEVC ladder (codecs [\"h264\", \"hevc\"]; use [\"h264\"])".into())),
        other => Err(LadderError::Rendition { name: "codecs".into(), problem: format!("must be [\"h264\"] or [\"h264\", \"hevc\"], got {other:?}") }),
    }
}
