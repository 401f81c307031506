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
    /// MPEG-TS: every HLS player, old ones included. What stored data without a format means.
    #[default]
    Ts,
    /// Fragmented MP4 (CMAF) with an init segment.
    Fmp4,
}

impl SegmentFormat {
    /// A new job's container when neither its request nor its ladder names one: fMP4, which
    /// writes fewer bytes for the same encodes (see the benchmarks).
    pub const FOR_NEW_JOBS: SegmentFormat = SegmentFormat::Fmp4;

    /// The media segments' file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Ts => "ts",
            Self::Fmp4 => "m4s",
        }
    }
}

/// A video codec of the ladder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VideoCodec {
    #[default]
    H264,
    Hevc,
}

/// The HEVC rendition of a rung is named after it with this suffix (`720p-hevc`).
pub const HEVC_SUFFIX: &str = "-hevc";
/// An HEVC rung's rates, in percent of its H.264 twin's: HEVC needs some 35-40 % fewer bits
/// for the same picture (the quality benchmark measures what it gives).
pub const HEVC_RATE_PERCENT: u32 = 60;
/// x265's CRF for the picture of x264's: x265's default 28 is meant to look like x264's 23.
pub const HEVC_CRF_OFFSET: f32 = 5.0;

/// The HEVC twin of every fitted H.264 rendition: the same picture size, rates scaled by
/// [`HEVC_RATE_PERCENT`], a per-title CRF moved by [`HEVC_CRF_OFFSET`], and the audio group
/// of its twin (it keeps the twin's nominal rate).
pub fn hevc_twins(h264: &[super::FittedRendition]) -> Vec<super::FittedRendition> {
    let scale = |kbps: u32| (u64::from(kbps) * u64::from(HEVC_RATE_PERCENT) / 100).max(1) as u32;
    h264.iter()
        .map(|r| super::FittedRendition {
            name: format!("{}{HEVC_SUFFIX}", r.name),
            bitrate_kbps: scale(r.bitrate_kbps),
            maxrate_kbps: scale(r.maxrate_kbps),
            bufsize_kbits: scale(r.bufsize_kbits),
            crf: r.crf.map(|c| (c + HEVC_CRF_OFFSET).min(51.0)),
            ladder_kbps: Some(r.nominal_kbps()),
            codec: VideoCodec::Hevc,
            ..r.clone()
        })
        .collect()
}

pub(super) fn default_codecs() -> Vec<VideoCodec> {
    vec![VideoCodec::H264]
}
pub(super) fn is_default_codecs(c: &[VideoCodec]) -> bool {
    c == [VideoCodec::H264]
}

/// The combinations this build makes: an H.264 ladder in MPEG-TS or fMP4 (CMAF) segments,
/// and beside it an HEVC one in fMP4 only (players decode HEVC from fMP4, with `hvc1`).
pub fn check(format: SegmentFormat, codecs: &[VideoCodec], rung_names: &[&str]) -> Result<(), LadderError> {
    match codecs {
        [VideoCodec::H264] => Ok(()),
        [VideoCodec::H264, VideoCodec::Hevc] if format != SegmentFormat::Fmp4 => {
            Err(LadderError::Rendition { name: "codecs".into(), problem: "the HEVC ladder needs \"segment_format\": \"fmp4\"".into() })
        }
        [VideoCodec::H264, VideoCodec::Hevc] => match rung_names.iter().find(|n| n.ends_with(HEVC_SUFFIX)) {
            Some(name) => Err(LadderError::Rendition { name: name.to_string(), problem: format!("names ending in {HEVC_SUFFIX:?} are the HEVC renditions'") }),
            None => Ok(()),
        },
        other => Err(LadderError::Rendition { name: "codecs".into(), problem: format!("must be [\"h264\"] or [\"h264\", \"hevc\"], got {other:?}") }),
    }
}
