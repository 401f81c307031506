//! Per-title ladders: from a source's measured complexity to each rung's rate control.
//!
//! The coordinator measures a job's complexity once (fast probe encodes of samples of the
//! source, see `farm_media::complexity`) and [`decide`]s here what every rung gets:
//! capped CRF (x264's constant-quality factor with a VBV cap of twice the rung's target
//! average), the target being what the rung needs to reach the quality target
//! ([`PerTitleSettings::crf`]) on this source, never more than the fixed ladder's rate. A
//! rung between the largest and the smallest that would have to be starved far below the
//! quality target to keep to its rate is dropped: at that rate its resolution adds no
//! quality over the next smaller rung's. The
//! decision is stored in the job's ladder and so travels in every chunk task: all chunks
//! of a job encode alike.

use serde::{Deserialize, Serialize};

use super::FittedRendition;

/// The probe encodes at this bounding box; its rate is scaled to each rung's size.
pub const REFERENCE_BOX: (u32, u32) = (640, 360);

/// How a rung's rate at the quality target grows with its picture size: x264's rate at a
/// fixed CRF grows more slowly than the pixel count (measured on the quality benchmark's
/// corpus, see the benchmark docs).
pub const SIZE_EXPONENT: f64 = 0.75;

/// x264's rate roughly halves for every 6 steps of CRF.
const CRF_PER_HALVING: f64 = 6.0;

/// The per-title settings of a ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PerTitleSettings {
    /// The quality target as x264 CRF: every rung is encoded at this constant quality
    /// unless its rate would pass the fixed ladder's rate. Lower is better and bigger.
    #[serde(default = "default_crf")]
    #[schema(minimum = 10.0, maximum = 40.0)]
    pub crf: f32,
    /// A rung that would need a CRF this much above the target to keep to its rate is
    /// dropped (its resolution adds no quality at that rate); the largest and the smallest
    /// rung always stay.
    #[serde(default = "default_starved")]
    #[schema(minimum = 1.0, maximum = 30.0)]
    pub drop_above_crf: f32,
}

fn default_crf() -> f32 {
    23.0
}
fn default_starved() -> f32 {
    9.0
}

impl Default for PerTitleSettings {
    fn default() -> Self {
        Self { crf: default_crf(), drop_above_crf: default_starved() }
    }
}

impl PerTitleSettings {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(10.0..=40.0).contains(&self.crf) {
            return Err(format!("crf must be between 10 and 40, got {}", self.crf));
        }
        if !(1.0..=30.0).contains(&self.drop_above_crf) {
            return Err(format!("drop_above_crf must be between 1 and 30, got {}", self.drop_above_crf));
        }
        Ok(())
    }
}

/// What the probe measured: x264's rate at the quality target for the source scaled into
/// [`REFERENCE_BOX`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Complexity {
    /// Estimated average rate (kb/s) at the CRF it was measured with.
    pub kbps: f64,
    pub crf: f32,
    pub width: u32,
    pub height: u32,
    /// Frames encoded, and the wall-clock time the probe took (decoding included).
    pub frames: u32,
    pub seconds: f64,
    /// The source frame each sample started on (a keyframe of the source), so that the
    /// measure can be repeated; empty in decisions made before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<u64>,
}

/// The per-title decision of a job: the rungs kept, with their rate control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PerTitleDecision {
    pub complexity: Complexity,
    pub rungs: Vec<RungRate>,
    /// Rungs of the fitted ladder left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

impl PerTitleDecision {
    /// Whether the decision fits a ladder of rungs `names`: every rung it sets is one of
    /// them, with a CRF x264 takes and a cap no lower than the average.
    pub fn check(&self, names: &[&str]) -> Result<(), String> {
        match self.rungs.iter().find(|r| !names.contains(&r.name.as_str()) || !(0.0..=51.0).contains(&r.crf) || r.maxrate_kbps < r.bitrate_kbps) {
            Some(r) => Err(format!("decision for rung {:?} does not fit the ladder", r.name)),
            None => Ok(()),
        }
    }

    /// The fitted rungs as decided: each kept rung gets its CRF and rates (its ladder rate
    /// kept as `ladder_kbps`), the others are left out.
    pub fn apply(&self, fitted: &mut Vec<FittedRendition>) {
        fitted.retain_mut(|r| match self.rungs.iter().find(|d| d.name == r.name) {
            Some(d) => {
                r.ladder_kbps = Some(r.bitrate_kbps);
                r.crf = Some(d.crf);
                r.bitrate_kbps = d.bitrate_kbps;
                r.maxrate_kbps = d.maxrate_kbps;
                r.bufsize_kbits = d.bufsize_kbits;
                true
            }
            None => false,
        });
    }
}

/// One kept rung's capped-CRF settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RungRate {
    pub name: String,
    pub crf: f32,
    /// The expected average rate, at most the fixed ladder's.
    pub bitrate_kbps: u32,
    /// The VBV cap: twice the target average.
    pub maxrate_kbps: u32,
    pub bufsize_kbits: u32,
}

/// The rung's expected rate at the measured CRF, from the reference rate.
fn predicted_kbps(c: &Complexity, rung: &FittedRendition) -> f64 {
    let reference = f64::from(c.width.max(2)) * f64::from(c.height.max(2));
    let pixels = f64::from(rung.width) * f64::from(rung.height);
    c.kbps * (pixels / reference).powf(SIZE_EXPONENT)
}

/// Each fitted rung's capped-CRF settings for a source of complexity `c` (rungs largest
/// first, as [`super::Ladder::fit`] gives them).
pub fn decide(settings: &PerTitleSettings, fitted: &[FittedRendition], c: &Complexity) -> PerTitleDecision {
    let mut rungs = Vec::new();
    let mut dropped = Vec::new();
    for (i, rung) in fitted.iter().enumerate() {
        // at the target CRF; c.crf is what the probe used
        let at_target = predicted_kbps(c, rung) * 2f64.powf(f64::from(c.crf - settings.crf) / CRF_PER_HALVING);
        let fixed = f64::from(rung.bitrate_kbps);
        let (crf, target) = if at_target <= fixed {
            (f64::from(settings.crf), at_target)
        } else {
            (f64::from(settings.crf) + CRF_PER_HALVING * (at_target / fixed).log2(), fixed)
        };
        // The largest rung is the review's best picture and the smallest the hotel
        // connection's: both stay, however starved.
        let end = i == 0 || i + 1 == fitted.len();
        if !end && crf - f64::from(settings.crf) > f64::from(settings.drop_above_crf) {
            dropped.push(rung.name.clone());
            continue;
        }
        // A floor, so that a still picture's cap is not a few kb/s.
        let target = target.max(fixed / 10.0).max(30.0).round() as u32;
        rungs.push(RungRate {
            name: rung.name.clone(),
            crf: ((crf.min(51.0)) * 10.0).round() as f32 / 10.0,
            bitrate_kbps: target,
            maxrate_kbps: target * 2,
            bufsize_kbits: target * 2,
        });
    }
    PerTitleDecision { complexity: c.clone(), rungs, dropped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::Ladder;

    fn complexity(kbps: f64) -> Complexity {
        Complexity { kbps, crf: 23.0, width: 640, height: 360, frames: 36, seconds: 0.2, samples: vec![40, 122, 204] }
    }

    #[test]
    fn simple_sources_get_less_than_the_fixed_rates_at_the_quality_target() {
        let fitted = Ladder::default().fit(1920, 1080);
        let d = decide(&PerTitleSettings::default(), &fitted, &complexity(200.0));
        assert!(d.dropped.is_empty());
        assert_eq!(d.rungs.len(), fitted.len());
        for (r, f) in d.rungs.iter().zip(&fitted) {
            assert_eq!(r.name, f.name);
            assert_eq!(r.crf, 23.0, "{r:?}");
            assert!(r.bitrate_kbps < f.bitrate_kbps, "{r:?} vs {f:?}");
            assert_eq!(r.maxrate_kbps, 2 * r.bitrate_kbps, "the cap is twice the target");
        }
        // 1080p: 200 * (1920*1080 / 640*360)^0.75 = 200 * 9^0.75 = 1039
        assert_eq!(d.rungs[0].bitrate_kbps, 1039);
        // larger rungs cost more
        assert!(d.rungs.windows(2).all(|w| w[0].bitrate_kbps > w[1].bitrate_kbps), "{:?}", d.rungs);
    }

    #[test]
    fn complex_sources_keep_the_fixed_rate_with_a_higher_crf_and_starved_rungs_are_dropped() {
        let fitted = Ladder::default().fit(1920, 1080);
        let d = decide(&PerTitleSettings::default(), &fitted, &complexity(1600.0));
        // 1080p would need 8313 kb/s at CRF 23: 5000 at CRF 23 + 6 log2(8313/5000) = 27.4
        assert_eq!((d.rungs[0].name.as_str(), d.rungs[0].bitrate_kbps, d.rungs[0].crf), ("1080p", 5000, 27.4));
        assert_eq!(d.rungs[0].maxrate_kbps, 10_000);
        // 234p: 1600 * (416*234/640*360)^0.75 = 1600 * 0.4225^0.75 = 838 -> 160 at 37.3,
        // starved, but the smallest rung stays
        let last = d.rungs.last().unwrap();
        assert_eq!((last.name.as_str(), last.bitrate_kbps), ("234p", 160));
        assert!(last.crf > 23.0 + 9.0);
        // 360p: 1600 kb/s needed, 800 allowed: CRF 29 (6 over): kept
        assert!(d.rungs.iter().any(|r| r.name == "360p" && r.crf == 29.0), "{d:?}");
        let harder = decide(&PerTitleSettings::default(), &fitted, &complexity(5000.0));
        assert!(harder.dropped.contains(&"360p".to_string()), "{harder:?}");
        assert_eq!(harder.rungs.len() + harder.dropped.len(), fitted.len());
        // however hard the source, the best picture and the smallest stay
        let hardest = decide(&PerTitleSettings::default(), &fitted, &complexity(100_000.0));
        let kept: Vec<&str> = hardest.rungs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(kept, ["1080p", "234p"]);
        assert_eq!(hardest.rungs[0].bitrate_kbps, 5000);
    }

    #[test]
    fn the_probe_crf_is_taken_into_account() {
        let fitted = Ladder::default().fit(1920, 1080);
        let at_23 = decide(&PerTitleSettings::default(), &fitted, &complexity(200.0));
        let mut c = complexity(100.0);
        c.crf = 29.0; // half the rate, 6 CRF higher: the same source
        assert_eq!(decide(&PerTitleSettings::default(), &fitted, &c), PerTitleDecision { complexity: c, ..at_23 });
    }
}
