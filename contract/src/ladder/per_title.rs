//! Per-title ladders: from a source's measured complexity to each rung's rate control.
//!
//! The coordinator measures a job's complexity once (fast probe encodes of samples of the
//! source, see `farm_media::complexity`) and [`decide`]s here what every rung gets:
//! capped CRF (x264's constant-quality factor with a VBV cap of twice the rung's target
//! average), the target being what the rung needs to reach the quality target
//! ([`PerTitleSettings::crf`]) on this source, never more than the fixed ladder's rate. A
//! rung that would need more (a starved rung) is capped at the fixed rung's rate, with the
//! CRF that rate is expected to reach. A rung between the largest and the smallest that
//! would have to be starved far below the quality target to keep to its rate is dropped: at
//! that rate its resolution adds no quality over the next smaller rung's. A noise-dominated
//! source aims its whole ladder higher ([`NOISE_SLOPE`]). The decision is
//! stored in the job's ladder and so travels in every chunk task: all chunks of a job
//! encode alike.

use serde::{Deserialize, Serialize};

use super::FittedRendition;

/// The probe encodes at this bounding box; its rate is scaled to each rung's size.
pub const REFERENCE_BOX: (u32, u32) = (640, 360);

/// How a rung's rate at the quality target grows with its picture size below the
/// reference box, and above it when the probe measured no native rate (decisions made
/// before it did): x264's rate at a fixed CRF grows more slowly than the pixel count
/// there (0.45-0.86 between 320x180 and 640x360 on the quality benchmark's corpus).
/// Above the reference box the growth is the source's own: see [`NativeRate`].
pub const SIZE_EXPONENT: f64 = 0.75;

/// The growth above the reference box is taken between these bounds, so that a
/// mismeasured native rate cannot make a rung's rate shrink with its size or explode.
const NATIVE_EXPONENT: (f64, f64) = (0.5, 3.0);

/// x264's rate roughly halves for every 6 steps of CRF (where the probe measured no slope
/// of its own).
const CRF_PER_HALVING: f64 = 6.0;

/// The probe also encodes the native mosaics this much above its CRF: the two rates give
/// the source's own rate-for-CRF slope at its size (see [`NativeRate::crf_per_halving`]).
pub const SLOPE_CRF_STEP: f32 = 6.0;

/// The measured slope is taken between these bounds (CRF steps per halving of the rate).
const SLOPE_BOUNDS: (f64, f64) = (1.0, 12.0);

/// A source whose rate at its own size halves in fewer CRF steps than this is
/// noise-dominated (film grain, sensor noise in low light): what more bits buy there is
/// the noise, which x264 quantises away a few steps higher (the rate halves every step or
/// so) while the picture's structure stays. Its whole ladder aims [`SLOPE_CRF_STEP`] above
/// the quality target, the top of the range the probe measured.
pub const NOISE_SLOPE: f64 = 2.0;

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
    /// The rate at the source's own size, when it is larger than the reference box; absent
    /// in decisions made before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeRate>,
}

/// x264's rate at the probe's CRF at the source's own size, estimated from mosaics of
/// unscaled patches of the source's pictures (`farm_media::complexity`). Scaling down takes
/// the finest detail and the grain away, so the rate between the reference box and the
/// source's size grows with an exponent of the source's own: on the quality benchmark's
/// corpus 0.8 (smooth gradients) to 1.4 (fine detail) and 2.6-2.9 under grain, where a
/// fixed exponent of 0.75 underestimated 1080p rates 1.1x-120x.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NativeRate {
    pub kbps: f64,
    pub width: u32,
    pub height: u32,
    /// The same at the probe's CRF + [`SLOPE_CRF_STEP`]; absent in decisions made before it
    /// was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_kbps: Option<f64>,
}

impl NativeRate {
    /// CRF steps per halving of the rate, as measured at the source's size. x264's rule of
    /// thumb is 6; grain is quantised away within a few steps (on the quality corpus a
    /// grainy 1080p rung wrote 1/60 of its CRF 23 rate at CRF 29), and a CRF chosen by the
    /// rule there makes a rung that writes less than the smaller rung below it.
    pub fn crf_per_halving(&self) -> Option<f64> {
        let step = self.step_kbps.filter(|&k| k > 0.0 && k < self.kbps)?;
        Some((f64::from(SLOPE_CRF_STEP) / (self.kbps / step).log2()).clamp(SLOPE_BOUNDS.0, SLOPE_BOUNDS.1))
    }
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
    /// The VBV cap: twice the target average, or the fixed rate for a starved rung.
    pub maxrate_kbps: u32,
    pub bufsize_kbits: u32,
}

fn area(width: u32, height: u32) -> f64 {
    f64::from(width) * f64::from(height)
}

/// The native rate that sets a rung's growth: the rung is larger than the reference box and
/// the source larger still.
fn native_for<'a>(c: &'a Complexity, rung: &FittedRendition) -> Option<&'a NativeRate> {
    let reference = area(c.width.max(2), c.height.max(2));
    c.native.as_ref().filter(|n| area(rung.width, rung.height) > reference && area(n.width, n.height) > reference * 1.05)
}

/// The rung's expected rate at the measured CRF: from the reference rate, growing with the
/// pixel count by [`SIZE_EXPONENT`] below the reference box and, above it (`native`, from
/// [`native_for`]), by the exponent that joins the reference rate to the native one (a
/// straight line in log-log).
fn predicted_kbps(c: &Complexity, rung: &FittedRendition, native: Option<&NativeRate>) -> f64 {
    let reference = area(c.width.max(2), c.height.max(2));
    let exponent = match native {
        Some(n) => {
            let exponent = (n.kbps / c.kbps.max(1e-3)).ln() / (area(n.width, n.height) / reference).ln();
            exponent.clamp(NATIVE_EXPONENT.0, NATIVE_EXPONENT.1)
        }
        None => SIZE_EXPONENT,
    };
    c.kbps * (area(rung.width, rung.height) / reference).powf(exponent)
}

/// Each fitted rung's capped-CRF settings for a source of complexity `c` (rungs largest
/// first, as [`super::Ladder::fit`] gives them).
pub fn decide(settings: &PerTitleSettings, fitted: &[FittedRendition], c: &Complexity) -> PerTitleDecision {
    let mut rungs = Vec::new();
    let mut dropped = Vec::new();
    let noisy = c.native.as_ref().and_then(NativeRate::crf_per_halving).is_some_and(|s| s < NOISE_SLOPE);
    let target_crf = if noisy { settings.crf + SLOPE_CRF_STEP } else { settings.crf };
    for (i, rung) in fitted.iter().enumerate() {
        // at the target CRF; c.crf is what the probe used
        let native = native_for(c, rung);
        let at_target = predicted_kbps(c, rung, native) * 2f64.powf(f64::from(c.crf - target_crf) / CRF_PER_HALVING);
        let fixed = f64::from(rung.bitrate_kbps);
        if at_target > fixed {
            // Starved: the rung needs a higher CRF to keep to the fixed rate, by the source's
            // own slope where the probe measured it.
            let per_halving = native.and_then(NativeRate::crf_per_halving).unwrap_or(CRF_PER_HALVING);
            let crf = f64::from(target_crf) + per_halving * (at_target / fixed).log2();
            // The largest rung is the review's best picture and the smallest the hotel
            // connection's: both stay, however starved.
            let end = i == 0 || i + 1 == fitted.len();
            if !end && crf - f64::from(target_crf) > f64::from(settings.drop_above_crf) {
                dropped.push(rung.name.clone());
                continue;
            }
            // Capped at the fixed rate, with a CRF that saves bits where the source is
            // easier than the probe saw. The CRF is kept within the range the probe measured
            // (its CRF to SLOPE_CRF_STEP above): beyond, the cap shapes the picture.
            let crf = crf.min(f64::from(settings.crf + SLOPE_CRF_STEP)).min(51.0);
            // The fixed rate is the VBV peak too, with a one-second buffer: CRF has no
            // average target, and with the fixed rung's 110 % peak and two-second buffer a
            // grainy 6 s clip's starved rung wrote 7.1 Mb/s where the fixed rung wrote 6.0.
            rungs.push(RungRate {
                name: rung.name.clone(),
                crf: (crf * 10.0).round() as f32 / 10.0,
                bitrate_kbps: rung.bitrate_kbps,
                maxrate_kbps: rung.bitrate_kbps,
                bufsize_kbits: rung.bitrate_kbps,
            });
            continue;
        }
        // A floor, so that a still picture's cap is not a few kb/s.
        let target = at_target.max(fixed / 10.0).max(30.0).round() as u32;
        rungs.push(RungRate { name: rung.name.clone(), crf: target_crf, bitrate_kbps: target, maxrate_kbps: target * 2, bufsize_kbits: target * 2 });
    }
    PerTitleDecision { complexity: c.clone(), rungs, dropped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::Ladder;

    fn complexity(kbps: f64) -> Complexity {
        Complexity { kbps, crf: 23.0, width: 640, height: 360, frames: 36, seconds: 0.2, samples: vec![40, 122, 204], native: None }
    }

    fn with_native(kbps: f64, native_kbps: f64) -> Complexity {
        Complexity { native: Some(NativeRate { kbps: native_kbps, width: 1920, height: 1080, step_kbps: None }), ..complexity(kbps) }
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
        // 1080p would need 8313 kb/s at CRF 23: 5000 at CRF 23 + 6 log2(8313/5000) = 27.4,
        // capped at the fixed rate with a one-second buffer
        assert_eq!((d.rungs[0].name.as_str(), d.rungs[0].bitrate_kbps, d.rungs[0].crf), ("1080p", 5000, 27.4));
        assert_eq!((d.rungs[0].maxrate_kbps, d.rungs[0].bufsize_kbits), (5000, 5000));
        // 234p: 1600 * (416*234/640*360)^0.75 = 1600 * 0.4225^0.75 = 838 -> 160 would need
        // CRF 37.3: starved, but the smallest rung stays, its CRF held one halving above
        // the target (23 + 6)
        let last = d.rungs.last().unwrap();
        assert_eq!((last.name.as_str(), last.bitrate_kbps, last.crf), ("234p", 160, 29.0));
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

    #[test]
    fn the_native_rate_sets_how_fast_the_large_rungs_grow() {
        let fitted = Ladder::default().fit(1920, 1080);
        let settings = PerTitleSettings::default();
        // Fine detail: 300 kb/s at 640x360, 2700 at 1920x1080 (9x the pixels): exponent 1,
        // so 720p (4x the pixels) needs 1200, where the 0.75 rule said 300 * 4^0.75 = 849
        let d = decide(&settings, &fitted, &with_native(300.0, 2700.0));
        let rate = |d: &PerTitleDecision, name: &str| d.rungs.iter().find(|r| r.name == name).map(|r| (r.bitrate_kbps, r.maxrate_kbps, r.crf));
        assert_eq!(rate(&d, "1080p"), Some((2700, 5400, 23.0)));
        assert_eq!(rate(&d, "720p"), Some((1200, 2400, 23.0)));
        assert_eq!(rate(&decide(&settings, &fitted, &complexity(300.0)), "720p"), Some((849, 1698, 23.0)));
        // below the reference box the 0.75 rule stays: 234p as without the native rate
        assert_eq!(rate(&d, "234p"), rate(&decide(&settings, &fitted, &complexity(300.0)), "234p"));
        // grain: the native rate far above what scaling down leaves; 1080p starved, capped at
        // the fixed rate with the CRF held at 23 + 6
        let grain = decide(&settings, &fitted, &with_native(100.0, 50_000.0));
        assert_eq!(rate(&grain, "1080p"), Some((5000, 5000, 29.0)));
        // a native rate measured cheaper than the scaled picture does not make rungs shrink
        // with their size: the exponent is held at 0.5
        let odd = decide(&settings, &fitted, &with_native(300.0, 10.0));
        assert_eq!(rate(&odd, "1080p").map(|r| r.0), Some(900));
        // a source no larger than the reference box: its native rate is the reference's
        let mut small = with_native(300.0, 300.0);
        small.native = Some(NativeRate { kbps: 300.0, width: 640, height: 360, step_kbps: None });
        assert_eq!(decide(&settings, &fitted, &small), PerTitleDecision { complexity: small.clone(), ..decide(&settings, &fitted, &complexity(300.0)) });
    }

    #[test]
    fn a_starved_rungs_crf_follows_the_slope_the_probe_measured() {
        let fitted = Ladder::default().fit(1920, 1080);
        let settings = PerTitleSettings::default();
        let top = |c: &Complexity| decide(&settings, &fitted, c).rungs[0].crf;
        // 1080p needs 20000 kb/s at CRF 23, 4x its 5000: two halvings; without a measured
        // slope, 6 per halving (CRF 35), held at the probe's range (+6)
        let c = with_native(300.0, 20_000.0);
        assert_eq!(top(&c), 29.0);
        // 8000 at CRF 23 (1.6x its 5000), 2000 at CRF 29: a halving every 3 steps, CRF 25
        let mut detail = with_native(300.0, 8000.0);
        detail.native.as_mut().unwrap().step_kbps = Some(2000.0);
        assert_eq!(detail.native.as_ref().unwrap().crf_per_halving(), Some(3.0));
        assert_eq!(top(&detail), 25.0);
        // x264's rule of thumb measured: 4000 at CRF 29: CRF 23 + 6 * 0.68
        detail.native.as_mut().unwrap().step_kbps = Some(4000.0);
        assert_eq!(top(&detail), 27.1);
        // a slope that is no slope (the second rate not below the first) is not used
        detail.native.as_mut().unwrap().step_kbps = Some(9000.0);
        assert_eq!(detail.native.as_ref().unwrap().crf_per_halving(), None);
        // the slope is the native size's: a rung at the reference box keeps 6 per halving.
        // 360p needs 5000 kb/s, 6.25x its 800: 6 * 2.64 = 15.9 above the target, dropped
        detail.native.as_mut().unwrap().step_kbps = Some(2000.0);
        let d = decide(&settings, &fitted, &Complexity { kbps: 5000.0, ..detail.clone() });
        assert!(d.dropped.contains(&"360p".to_string()), "{d:?}");
    }

    #[test]
    fn a_noise_dominated_source_aims_its_whole_ladder_higher() {
        let fitted = Ladder::default().fit(1920, 1080);
        let settings = PerTitleSettings::default();
        // grain: 20000 kb/s at CRF 23, 312.5 at CRF 29, a halving every CRF step
        let mut grain = with_native(400.0, 20_000.0);
        grain.native.as_mut().unwrap().step_kbps = Some(312.5);
        assert_eq!(grain.native.as_ref().unwrap().crf_per_halving(), Some(1.0));
        let d = decide(&settings, &fitted, &grain);
        assert!(d.rungs.iter().all(|r| r.crf == 29.0), "every rung at 23 + 6: {d:?}");
        // 1080p still starved at CRF 29 (10000 > 5000): capped at the fixed rate
        assert_eq!((d.rungs[0].bitrate_kbps, d.rungs[0].maxrate_kbps), (5000, 5000));
        // the small rungs aim at half the rate they would at CRF 23
        let plain = decide(&settings, &fitted, &complexity(400.0));
        let rate = |d: &PerTitleDecision, name: &str| d.rungs.iter().find(|r| r.name == name).unwrap().bitrate_kbps;
        assert_eq!(rate(&d, "360p"), rate(&plain, "360p") / 2);
        // a slope of 2 or more is detail, not noise: the target stays
        grain.native.as_mut().unwrap().step_kbps = Some(2500.0);
        assert_eq!(grain.native.as_ref().unwrap().crf_per_halving(), Some(2.0));
        let detail = decide(&settings, &fitted, &grain);
        assert_eq!(rate(&detail, "360p"), rate(&plain, "360p"));
        assert_eq!(detail.rungs.iter().find(|r| r.name == "360p").unwrap().crf, 23.0, "{detail:?}");
    }
}
