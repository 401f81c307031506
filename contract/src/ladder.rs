//! The review ladder: versioned serde data with a built-in default.
//!
//! A ladder names the video renditions (a bounding box and a bitrate each), the audio
//! rendition, the segment and GOP lengths and the x264 settings. [`Ladder::fit`] turns it
//! into the renditions actually encoded for one source: never upscaled, even dimensions,
//! display aspect kept, duplicates dropped.

use serde::{Deserialize, Serialize};

use crate::timeline::Cuts;

pub mod encoding;
pub mod per_title;
pub use encoding::{LadderMode, SegmentFormat, VideoCodec};
use encoding::{default_codecs, is_default_codecs};
pub use per_title::{PerTitleDecision, PerTitleSettings};
pub mod audio;
pub use audio::{group_or_main, AudioSpec, AUDIO_GROUP, DEFAULT_LOW_AUDIO_KBPS, LOW_AUDIO_GROUP, LOW_SUFFIX};

/// The ladder schema version this build reads and writes.
pub const LADDER_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LadderError {
    #[error("unsupported ladder version {0} (this build reads version {LADDER_VERSION})")]
    Version(u32),
    #[error("ladder has no video rendition")]
    NoVideo,
    #[error("rendition {name:?}: {problem}")]
    Rendition { name: String, problem: String },
    #[error("segment_seconds must be between 1 and 60, got {0}")]
    SegmentSeconds(f64),
    #[error("gop_seconds must be between 0.5 and segment_seconds ({segment}) and divide it, got {gop}")]
    Gop { gop: f64, segment: f64 },
    #[error("lead_segments must be at most 10 and lead_seconds between 1 and segment_seconds ({segment}), got {count} x {seconds}")]
    Lead { count: u32, seconds: f64, segment: f64 },
    #[error("audio: {0}")]
    Audio(String),
    #[error("x264: {0}")]
    X264(String),
    #[error("cannot parse ladder: {0}")]
    Parse(String),
    #[error("per_title: {0}")]
    PerTitle(String),
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A review ladder; everything but `video` has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    #[serde(default = "default_version")]
    #[schema(minimum = 1, maximum = 1)]
    pub version: u32,
    /// Target segment length. Apple's authoring spec recommends 6 s.
    #[serde(default = "default_segment_seconds")]
    #[schema(minimum = 1.0, maximum = 60.0)]
    pub segment_seconds: f64,
    /// Keyframe interval inside a segment; must divide `segment_seconds`.
    #[serde(default = "default_gop_seconds")]
    #[schema(minimum = 0.5, maximum = 60.0)]
    pub gop_seconds: f64,
    /// Shorter segments at the start, so that review starts sooner: the first
    /// `lead_segments` are `lead_seconds` long, the rest `segment_seconds`. 0 turns it off.
    #[serde(default = "default_lead_segments")]
    #[schema(minimum = 0, maximum = 10)]
    pub lead_segments: u32,
    #[serde(default = "default_lead_seconds")]
    #[schema(minimum = 1.0, maximum = 60.0)]
    pub lead_seconds: f64,
    #[schema(min_items = 1)]
    pub video: Vec<VideoRung>,
    #[serde(default)]
    pub audio: AudioSpec,
    #[serde(default)]
    pub x264: X264Settings,
    /// `fixed` (default) or `per_title`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub ladder_mode: LadderMode,
    /// `fmp4` (fragmented MP4 with an init segment, CMAF) or `ts` (MPEG-TS). `None`: not
    /// stated. A new job gets [`SegmentFormat::FOR_NEW_JOBS`] ([`Ladder::settle_segment_format`]);
    /// a task or ladder from before fMP4 states none and means MPEG-TS
    /// ([`Ladder::segment_format`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_format: Option<SegmentFormat>,
    /// `["h264"]` (default) or `["h264", "hevc"]`: an HEVC twin of every rung beside it
    /// (fMP4 only).
    #[serde(default = "default_codecs", skip_serializing_if = "is_default_codecs")]
    pub codecs: Vec<VideoCodec>,
    #[serde(default, skip_serializing_if = "PerTitleSettings::is_default")]
    pub per_title: PerTitleSettings,
    /// Set by the farm, not by a request: the per-title decision of a job, which every
    /// chunk task carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<PerTitleDecision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoRung {
    /// Used as the rendition's folder name: letters, digits, `-` and `_` only, not `audio`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub name: String,
    /// Bounding box for landscape sources; portrait sources use it turned by 90 degrees.
    #[schema(minimum = 16, maximum = 8192)]
    pub width: u32,
    #[schema(minimum = 16, maximum = 8192)]
    pub height: u32,
    #[schema(minimum = 50, maximum = 100000)]
    pub bitrate_kbps: u32,
    /// VBV peak rate; default 110 % of `bitrate_kbps`.
    #[serde(default)]
    pub maxrate_kbps: Option<u32>,
    /// VBV buffer; default 200 % of `bitrate_kbps`.
    #[serde(default)]
    pub bufsize_kbits: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct X264Settings {
    /// An x264 preset the farm allows (`FARM_ALLOWED_PRESETS`).
    #[serde(default = "default_preset")]
    #[schema(pattern = "^(ultrafast|superfast|veryfast|faster|fast|medium|slow|slower|veryslow|placebo)$")]
    pub preset: String,
    #[serde(default = "default_profile")]
    #[schema(pattern = "^(baseline|main|high)$")]
    pub profile: String,
}

fn default_version() -> u32 {
    LADDER_VERSION
}
fn default_segment_seconds() -> f64 {
    6.0
}
fn default_gop_seconds() -> f64 {
    2.0
}
fn default_lead_segments() -> u32 {
    3
}
fn default_lead_seconds() -> f64 {
    2.0
}
fn default_preset() -> String {
    "veryfast".into()
}
fn default_profile() -> String {
    "high".into()
}

impl Default for X264Settings {
    fn default() -> Self {
        Self { preset: default_preset(), profile: default_profile() }
    }
}

impl VideoRung {
    pub fn new(name: &str, width: u32, height: u32, bitrate_kbps: u32) -> Self {
        Self {
            name: name.into(),
            width,
            height,
            bitrate_kbps,
            maxrate_kbps: None,
            bufsize_kbits: None,
        }
    }
    pub fn maxrate_kbps(&self) -> u32 {
        self.maxrate_kbps.unwrap_or(self.bitrate_kbps * 11 / 10)
    }
    pub fn bufsize_kbits(&self) -> u32 {
        self.bufsize_kbits.unwrap_or(self.bitrate_kbps * 2)
    }
}

impl Default for Ladder {
    /// The review ladder: 1080p 5 Mb/s, 720p 3 Mb/s, 540p 1.5 Mb/s, 360p 0.8 Mb/s and a
    /// low-bandwidth 234p at 160 kb/s, H.264 High; AAC-LC 128 kb/s stereo, and 64 kb/s for
    /// the rungs under 1 Mb/s; 6 s segments after three of 2 s, a keyframe every 2 s.
    fn default() -> Self {
        Self {
            version: LADDER_VERSION,
            segment_seconds: default_segment_seconds(),
            gop_seconds: default_gop_seconds(),
            lead_segments: default_lead_segments(),
            lead_seconds: default_lead_seconds(),
            video: vec![
                VideoRung::new("1080p", 1920, 1080, 5000),
                VideoRung::new("720p", 1280, 720, 3000),
                VideoRung::new("540p", 960, 540, 1500),
                VideoRung::new("360p", 640, 360, 800),
                VideoRung::new("234p", 416, 234, 160),
            ],
            audio: AudioSpec::default(),
            x264: X264Settings::default(),
            ladder_mode: LadderMode::Fixed,
            segment_format: None,
            codecs: default_codecs(),
            per_title: PerTitleSettings::default(),
            decision: None,
        }
    }
}

/// One rendition as it will be encoded for a given source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedRendition {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bitrate_kbps: u32,
    pub maxrate_kbps: u32,
    pub bufsize_kbits: u32,
    /// Per-title: x264's CRF, capped by `maxrate_kbps`; `bitrate_kbps` is then the
    /// expected average. `None`: average-bitrate encoding at `bitrate_kbps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crf: Option<f32>,
    /// Per-title: the ladder's own rate of the rung (which decides its audio group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder_kbps: Option<u32>,
    /// H.264 (x264) or HEVC (x265, the twin of an H.264 rung).
    #[serde(default, skip_serializing_if = "is_default")]
    pub codec: VideoCodec,
}

impl FittedRendition {
    /// The ladder's rate of the rung, whatever per-title made of it.
    pub fn nominal_kbps(&self) -> u32 {
        self.ladder_kbps.unwrap_or(self.bitrate_kbps)
    }
}

/// Segment length of a watermarked job that names no ladder: one mark position per
/// segment, so the default 6 s would give a two-minute leak some twenty positions, too few
/// to name a viewer among many shares.
pub const FORENSIC_SEGMENT_SECONDS: f64 = 2.0;

impl Ladder {
    /// The ladder of a watermarked job that names none: the review ladder cut in
    /// [`FORENSIC_SEGMENT_SECONDS`] segments (its keyframes and leading segments are 2 s
    /// already).
    pub fn forensic() -> Self {
        Self { segment_seconds: FORENSIC_SEGMENT_SECONDS, ..Self::default() }
    }

    /// A ladder file or a job's ladder: parsed, defaults settled, validated.
    pub fn from_json(text: &str) -> Result<Self, LadderError> {
        let mut ladder: Ladder =
            serde_json::from_str(text).map_err(|e| LadderError::Parse(e.to_string()))?;
        ladder.audio.settle();
        ladder.validate()?;
        Ok(ladder)
    }

    pub fn validate(&self) -> Result<(), LadderError> {
        if self.version != LADDER_VERSION {
            return Err(LadderError::Version(self.version));
        }
        if self.video.is_empty() {
            return Err(LadderError::NoVideo);
        }
        for rung in &self.video {
            let bad = |problem: &str| LadderError::Rendition {
                name: rung.name.clone(),
                problem: problem.into(),
            };
            let name_ok = !rung.name.is_empty()
                && rung.name.len() <= 32
                && rung.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !name_ok || rung.name.starts_with(AUDIO_GROUP) {
                return Err(bad("name must be 1-32 letters, digits, '-' or '_' and not start with \"audio\""));
            }
            if !(16..=8192).contains(&rung.width) || !(16..=8192).contains(&rung.height) {
                return Err(bad("width and height must be between 16 and 8192"));
            }
            if !(50..=100_000).contains(&rung.bitrate_kbps) {
                return Err(bad("bitrate_kbps must be between 50 and 100000"));
            }
            if rung.maxrate_kbps() < rung.bitrate_kbps {
                return Err(bad("maxrate_kbps must not be below bitrate_kbps"));
            }
        }
        let mut names: Vec<&str> = self.video.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(LadderError::Rendition {
                name: names.windows(2).find(|w| w[0] == w[1]).unwrap()[0].into(),
                problem: "name used twice".into(),
            });
        }
        if !(1.0..=60.0).contains(&self.segment_seconds) {
            return Err(LadderError::SegmentSeconds(self.segment_seconds));
        }
        let ratio = self.segment_seconds / self.gop_seconds;
        if self.gop_seconds < 0.5 || ratio < 1.0 || (ratio - ratio.round()).abs() > 1e-9 {
            return Err(LadderError::Gop { gop: self.gop_seconds, segment: self.segment_seconds });
        }
        if self.lead_segments > 10
            || (self.lead_segments > 0 && !(1.0..=self.segment_seconds).contains(&self.lead_seconds))
        {
            return Err(LadderError::Lead {
                count: self.lead_segments,
                seconds: self.lead_seconds,
                segment: self.segment_seconds,
            });
        }
        if !(32..=512).contains(&self.audio.bitrate_kbps) {
            return Err(LadderError::Audio("bitrate_kbps must be between 32 and 512".into()));
        }
        if ![32_000, 44_100, 48_000].contains(&self.audio.sample_rate) {
            return Err(LadderError::Audio("sample_rate must be 32000, 44100 or 48000".into()));
        }
        if !(1..=2).contains(&self.audio.channels) {
            return Err(LadderError::Audio("channels must be 1 or 2".into()));
        }
        if self.audio.low_bitrate_kbps.is_some_and(|r| r != 0 && !(32..=self.audio.bitrate_kbps).contains(&r)) {
            return Err(LadderError::Audio("low_bitrate_kbps must be 0 (off) or between 32 and bitrate_kbps".into()));
        }
        self.per_title.validate().map_err(LadderError::PerTitle)?;
        let names: Vec<&str> = self.video.iter().map(|v| v.name.as_str()).collect();
        if let Some(d) = &self.decision {
            if self.ladder_mode != LadderMode::PerTitle {
                return Err(LadderError::PerTitle("a decision belongs to a per_title ladder".into()));
            }
            d.check(&names).map_err(LadderError::PerTitle)?;
        }
        encoding::check(self.segment_format(), &self.codecs, &names)?;
        const PRESETS: [&str; 10] = [
            "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
            "veryslow", "placebo",
        ];
        if !PRESETS.contains(&self.x264.preset.as_str()) {
            return Err(LadderError::X264(format!("unknown preset {:?}", self.x264.preset)));
        }
        if !["baseline", "main", "high"].contains(&self.x264.profile.as_str()) {
            return Err(LadderError::X264(format!(
                "profile must be baseline, main or high, got {:?}",
                self.x264.profile
            )));
        }
        Ok(())
    }

    /// Segment boundaries in milliseconds: the grid is kept in integers so that every
    /// worker computes the same boundaries.
    pub fn cuts(&self) -> Cuts {
        let ms = |s: f64| (s * 1000.0).round() as u64;
        Cuts::with_lead(ms(self.segment_seconds), u64::from(self.lead_segments), ms(self.lead_seconds))
    }

    /// The segments' container: the one stated, else MPEG-TS (what ladders and tasks from
    /// before fMP4 mean).
    pub fn segment_format(&self) -> SegmentFormat {
        self.segment_format.unwrap_or(SegmentFormat::Ts)
    }

    /// A new job's container: `requested` (a request's or a command's own), else the
    /// ladder's, else [`SegmentFormat::FOR_NEW_JOBS`]; stated from then on, so every task of
    /// the job carries it.
    pub fn settle_segment_format(&mut self, requested: Option<SegmentFormat>) {
        self.segment_format = Some(requested.or(self.segment_format).unwrap_or(SegmentFormat::FOR_NEW_JOBS));
    }

    pub fn gop_ms(&self) -> u64 {
        (self.gop_seconds * 1000.0).round() as u64
    }

    /// Fits the ladder to a source whose picture is `display_w` x `display_h` square
    /// pixels (after rotation and pixel-aspect correction). Renditions come out largest
    /// first. A rung whose box is larger than the source would only repeat the source size:
    /// of the rungs that land on the same size only the smallest (cheapest) is kept.
    pub fn fit(&self, display_w: u32, display_h: u32) -> Vec<FittedRendition> {
        let mut rungs: Vec<&VideoRung> = self.video.iter().collect();
        rungs.sort_by_key(|r| std::cmp::Reverse(u64::from(r.width) * u64::from(r.height)));
        let mut fitted: Vec<FittedRendition> = rungs
            .into_iter()
            .map(|rung| {
                let (w, h) = fit_in_box(display_w, display_h, rung.width, rung.height);
                FittedRendition {
                    name: rung.name.clone(),
                    width: w,
                    height: h,
                    bitrate_kbps: rung.bitrate_kbps,
                    maxrate_kbps: rung.maxrate_kbps(),
                    bufsize_kbits: rung.bufsize_kbits(),
                    crf: None,
                    ladder_kbps: None,
                    codec: VideoCodec::H264,
                }
            })
            .collect();
        // Largest first: drop a rendition when the next (smaller-box) one has the same size.
        let mut keep = Vec::with_capacity(fitted.len());
        for i in 0..fitted.len() {
            let same_as_next = fitted
                .get(i + 1)
                .is_some_and(|n| n.width == fitted[i].width && n.height == fitted[i].height);
            keep.push(!same_as_next);
        }
        let mut it = keep.into_iter();
        fitted.retain(|_| it.next().unwrap());
        if let Some(decision) = &self.decision {
            decision.apply(&mut fitted);
        }
        if self.codecs.contains(&VideoCodec::Hevc) {
            let twins = encoding::hevc_twins(&fitted);
            fitted.extend(twins);
        }
        fitted
    }

    /// The fitted renditions of a per-title ladder for a source of complexity `c`: the
    /// decision is stored in the ladder (`decision`), so that whoever fits it later (every
    /// chunk task) gets the same renditions. A fixed ladder is left as it is.
    pub fn decide(&mut self, display_w: u32, display_h: u32, c: &per_title::Complexity) {
        if self.ladder_mode != LadderMode::PerTitle {
            return;
        }
        self.decision = None;
        // Decided on the H.264 rungs; their HEVC twins follow them.
        let fixed: Vec<FittedRendition> = self.fit(display_w, display_h).into_iter().filter(|r| r.codec == VideoCodec::H264).collect();
        self.decision = Some(per_title::decide(&self.per_title, &fixed, c));
    }
}

/// Largest even-sized picture with the source's aspect ratio that fits in the box (turned
/// for portrait sources) and is not larger than the source itself.
pub fn fit_in_box(src_w: u32, src_h: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    let (box_w, box_h) = if src_h > src_w { (box_h, box_w) } else { (box_w, box_h) };
    let (sw, sh) = (f64::from(src_w.max(2)), f64::from(src_h.max(2)));
    let scale = (f64::from(box_w) / sw).min(f64::from(box_h) / sh).min(1.0);
    // Round down to even (never above the source), tolerating float error in the scale.
    let even = |v: f64| -> u32 { ((((v + 0.02) / 2.0).floor() as u32) * 2).max(2) };
    (even(sw * scale), even(sh * scale))
}

#[cfg(test)]
mod tests;
