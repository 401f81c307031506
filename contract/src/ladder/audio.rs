//! The ladder's audio: the spec of its renditions, and audio by bandwidth (the low-rate
//! group the small rungs play with).

use serde::{Deserialize, Serialize};

use super::FittedRendition;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioSpec {
    #[serde(default = "default_audio_bitrate")]
    #[schema(minimum = 32, maximum = 512)]
    pub bitrate_kbps: u32,
    /// 32000, 44100 or 48000.
    #[serde(default = "default_sample_rate")]
    #[schema(minimum = 32000, maximum = 48000)]
    pub sample_rate: u32,
    /// Output channels: 1 or 2. Sources with more are down-mixed.
    #[serde(default = "default_channels")]
    #[schema(minimum = 1, maximum = 2)]
    pub channels: u32,
    /// Audio by bandwidth: the rate of a second audio group (the same renditions, AAC-LC)
    /// that the rungs below `low_below_kbps` play with, so that audio does not eat half of
    /// a small rung. Default 64 (a mono rendition gets half); 0 turns it off. The group is
    /// made only when the fitted ladder has rungs on both sides of `low_below_kbps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 512)]
    pub low_bitrate_kbps: Option<u32>,
    /// Rungs whose `bitrate_kbps` is below this play with the low audio group.
    #[serde(default = "default_low_below")]
    #[schema(minimum = 0, maximum = 100000)]
    pub low_below_kbps: u32,
}

/// The audio group of the rungs at and above `low_below_kbps` (and of every rung when there
/// is one group).
pub const AUDIO_GROUP: &str = "audio";
/// The low-rate audio group; its renditions are named after the main group's, `-low` added.
pub const LOW_AUDIO_GROUP: &str = "audio-low";
/// What a low-group rendition's name adds to its main-group twin's.
pub const LOW_SUFFIX: &str = "-low";
/// The low audio rate of a ladder that does not say (see [`AudioSpec::low_bitrate_kbps`]).
pub const DEFAULT_LOW_AUDIO_KBPS: u32 = 64;

impl AudioSpec {
    /// Fills what a new job's ladder left unsaid. Tasks keep what their job was given: in
    /// a task, no `low_bitrate_kbps` means no low group (jobs from before it).
    pub fn settle(&mut self) {
        self.low_bitrate_kbps.get_or_insert(DEFAULT_LOW_AUDIO_KBPS);
    }

    /// The low group's stereo rate, when there is one for these fitted rungs.
    pub fn low_group(&self, fitted: &[FittedRendition]) -> Option<u32> {
        let rate = self.low_bitrate_kbps.filter(|&r| r > 0 && r < self.bitrate_kbps)?;
        let low = fitted.iter().filter(|r| r.nominal_kbps() < self.low_below_kbps).count();
        (low > 0 && low < fitted.len()).then_some(rate)
    }

    /// The fitted rungs that play with the low group (none when there is no low group);
    /// the others play with [`AUDIO_GROUP`].
    pub fn low_rungs(&self, fitted: &[FittedRendition]) -> Vec<String> {
        if self.low_group(fitted).is_none() {
            return Vec::new();
        }
        fitted.iter().filter(|r| r.nominal_kbps() < self.low_below_kbps).map(|r| r.name.clone()).collect()
    }
}

/// An audio group as stored: `None` (parts and plans from before audio by bandwidth) is
/// [`AUDIO_GROUP`].
pub fn group_or_main(group: &Option<String>) -> &str {
    group.as_deref().unwrap_or(AUDIO_GROUP)
}

fn default_audio_bitrate() -> u32 {
    128
}
fn default_sample_rate() -> u32 {
    48_000
}
fn default_channels() -> u32 {
    2
}
fn default_low_below() -> u32 {
    1000
}

impl Default for AudioSpec {
    fn default() -> Self {
        Self {
            bitrate_kbps: default_audio_bitrate(),
            sample_rate: default_sample_rate(),
            channels: default_channels(),
            low_bitrate_kbps: Some(DEFAULT_LOW_AUDIO_KBPS),
            low_below_kbps: default_low_below(),
        }
    }
}
