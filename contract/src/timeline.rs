//! The frame-exact timeline every rendition and every chunk agree on.
//!
//! Video time is counted in frames from the source's first frame. Segment boundaries are
//! times in milliseconds ([`Cuts`]: a few short leading segments, then segments of the
//! ladder's length); segment `k` starts at the first frame (or audio sample) at or after
//! its boundary, and keyframes fall every `gop` frames from each segment start. All of it
//! is integer arithmetic, so a worker encoding frames 1500..3000 cuts exactly where a
//! worker encoding the whole source does.

use serde::{Deserialize, Serialize};

/// A frame rate as an exact fraction (30000/1001 for 29.97).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

/// The rates a facility delivers; a measured rate within 0.1 % of one of these is snapped.
const STANDARD_RATES: [(u32, u32); 10] = [
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (48, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
    (120, 1),
];

impl FrameRate {
    pub fn new(num: u32, den: u32) -> Option<Self> {
        (num > 0 && den > 0).then_some(Self { num, den })
    }

    /// Snaps a measured rate (e.g. 2997/100, or 12800/512) to the standard rate it means,
    /// or keeps it as it is when it is none of them.
    pub fn normalised(num: i64, den: i64) -> Option<Self> {
        if num <= 0 || den <= 0 {
            return None;
        }
        let fps = num as f64 / den as f64;
        for (n, d) in STANDARD_RATES {
            let std = f64::from(n) / f64::from(d);
            if ((fps - std) / std).abs() < 0.001 {
                return Some(Self { num: n, den: d });
            }
        }
        let g = gcd(num, den);
        Some(Self { num: u32::try_from(num / g).ok()?, den: u32::try_from(den / g).ok()? })
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// First frame whose time is at or after `ms` milliseconds.
    pub fn frame_at_ms(self, ms: u64) -> u64 {
        let n = u128::from(ms) * u128::from(self.num);
        let d = 1000 * u128::from(self.den);
        n.div_ceil(d) as u64
    }

    /// Nearest whole number of frames in `ms` milliseconds (at least one).
    pub fn frames_in_ms(self, ms: u64) -> u64 {
        let n = u128::from(ms) * u128::from(self.num);
        let d = 1000 * u128::from(self.den);
        (((2 * n + d) / (2 * d)) as u64).max(1)
    }

    pub fn frames_to_seconds(self, frames: u64) -> f64 {
        frames as f64 * f64::from(self.den) / f64::from(self.num)
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs().max(1)
}

/// Segment boundaries in milliseconds: `lead_count` segments of `lead_ms`, then segments
/// of `segment_ms`. Short leading segments let review start sooner: a player needs the
/// first segment of every rendition, and a 2 s segment is ready three times sooner than a
/// 6 s one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cuts {
    pub segment_ms: u64,
    #[serde(default)]
    pub lead_ms: u64,
    #[serde(default)]
    pub lead_count: u64,
}

impl Cuts {
    /// Every segment `segment_ms` long.
    pub fn even(segment_ms: u64) -> Self {
        Self { segment_ms, lead_ms: 0, lead_count: 0 }
    }

    pub fn with_lead(segment_ms: u64, lead_count: u64, lead_ms: u64) -> Self {
        if lead_count == 0 || lead_ms == 0 {
            return Self::even(segment_ms);
        }
        Self { segment_ms, lead_ms, lead_count }
    }

    fn lead_end_ms(&self) -> u64 {
        self.lead_count * self.lead_ms
    }

    /// Time at which segment `k` starts.
    pub fn start_ms(&self, k: u64) -> u64 {
        let lead = k.min(self.lead_count);
        lead * self.lead_ms + (k - lead) * self.segment_ms
    }

    /// First unit (frame, sample) at or after the start of segment `k`, on a clock of
    /// `num / den` units per second.
    pub fn start_unit(&self, k: u64, num: u64, den: u64) -> u64 {
        let n = u128::from(self.start_ms(k)) * u128::from(num);
        n.div_ceil(1000 * u128::from(den)) as u64
    }

    /// The segment that unit `u` belongs to, on a clock of `num / den` units per second.
    pub fn segment_of_unit(&self, u: u64, num: u64, den: u64) -> u64 {
        // Estimate from the unit's time, then correct: start_unit is monotonic in k.
        let ms = (u128::from(u) * 1000 * u128::from(den) / u128::from(num)) as u64;
        let mut k = self.position(ms as f64) as u64;
        while k > 0 && self.start_unit(k, num, den) > u {
            k -= 1;
        }
        while self.start_unit(k + 1, num, den) <= u {
            k += 1;
        }
        k
    }

    /// The boundary nearest to `seconds`.
    pub fn nearest_boundary(&self, seconds: f64) -> u64 {
        self.position(seconds.max(0.0) * 1000.0).round() as u64
    }

    /// Number of segments in `seconds` (the last may be short; at least one).
    pub fn count_in(&self, seconds: f64) -> u64 {
        // Whole milliseconds, as the boundaries are: 6.0004 s is 6 s.
        let ms = (seconds.max(0.0) * 1000.0).round();
        (self.position(ms).ceil() as u64).max(1)
    }

    /// Where time `ms` falls, in segments: 2.5 is halfway through segment 2.
    fn position(&self, ms: f64) -> f64 {
        let lead_end = self.lead_end_ms() as f64;
        if ms < lead_end {
            ms / self.lead_ms as f64
        } else {
            self.lead_count as f64 + (ms - lead_end) / self.segment_ms as f64
        }
    }
}

/// The segment and keyframe grid of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    pub rate: FrameRate,
    #[serde(flatten)]
    pub cuts: Cuts,
    /// Frames between keyframes inside a segment.
    pub gop_frames: u64,
}

impl Grid {
    pub fn new(rate: FrameRate, cuts: Cuts, gop_ms: u64) -> Self {
        Self { rate, cuts, gop_frames: rate.frames_in_ms(gop_ms) }
    }

    /// First frame of segment `k`.
    pub fn segment_start(&self, k: u64) -> u64 {
        self.cuts.start_unit(k, u64::from(self.rate.num), u64::from(self.rate.den))
    }

    /// The segment that frame `f` belongs to.
    pub fn segment_of(&self, f: u64) -> u64 {
        self.cuts.segment_of_unit(f, u64::from(self.rate.num), u64::from(self.rate.den))
    }

    /// The audio sample at which `frames` frames of picture end: audio is cut there.
    pub fn samples_at_frame(&self, frames: u64, sample_rate: u32) -> u64 {
        (self.rate.frames_to_seconds(frames) * f64::from(sample_rate)).round() as u64
    }

    /// Whether frame `f` must be coded as an IDR frame.
    pub fn is_keyframe(&self, f: u64) -> bool {
        let start = self.segment_start(self.segment_of(f));
        (f - start).is_multiple_of(self.gop_frames)
    }

    /// Number of segments that `total_frames` frames make (the last may be short).
    pub fn segment_count(&self, total_frames: u64) -> u64 {
        if total_frames == 0 {
            0
        } else {
            self.segment_of(total_frames - 1) + 1
        }
    }

    /// Snaps a time range in seconds to whole segments: `[first, end)` segment indices.
    /// `start` rounds to the nearest boundary, and so does `end` (`None`: to the end).
    pub fn snap_range(&self, start_s: f64, end_s: Option<f64>) -> (u64, Option<u64>) {
        let first = self.cuts.nearest_boundary(start_s);
        let end = end_s.map(|e| self.cuts.nearest_boundary(e).max(first + 1));
        (first, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_rates_snap_to_broadcast_rates() {
        assert_eq!(FrameRate::normalised(2997, 100), FrameRate::new(30000, 1001));
        assert_eq!(FrameRate::normalised(24000, 1001), FrameRate::new(24000, 1001));
        assert_eq!(FrameRate::normalised(12800, 512), FrameRate::new(25, 1));
        assert_eq!(FrameRate::normalised(15, 1), FrameRate::new(15, 1));
        assert_eq!(FrameRate::normalised(0, 1), None);
    }

    #[test]
    fn integer_rates_give_even_segments() {
        let g = Grid::new(FrameRate::new(25, 1).unwrap(), Cuts::even(6000), 2000);
        assert_eq!(g.gop_frames, 50);
        assert_eq!((0..4).map(|k| g.segment_start(k)).collect::<Vec<_>>(), vec![0, 150, 300, 450]);
        assert!(g.is_keyframe(0) && g.is_keyframe(50) && g.is_keyframe(150));
        assert!(!g.is_keyframe(149) && !g.is_keyframe(151));
        assert_eq!(g.segment_count(151), 2);
        assert_eq!(g.segment_count(150), 1);
    }

    #[test]
    fn ntsc_rates_start_segments_on_the_first_frame_past_the_boundary() {
        let g = Grid::new(FrameRate::new(30000, 1001).unwrap(), Cuts::even(6000), 2000);
        assert_eq!(g.gop_frames, 60);
        // 6 s at 29.97 is 179.82 frames: segments alternate between 180 and 179 frames
        let starts: Vec<u64> = (0..5).map(|k| g.segment_start(k)).collect();
        assert_eq!(starts, vec![0, 180, 360, 540, 720]);
        let g = Grid::new(FrameRate::new(24000, 1001).unwrap(), Cuts::even(6000), 2000);
        let starts: Vec<u64> = (0..4).map(|k| g.segment_start(k)).collect();
        assert_eq!(starts, vec![0, 144, 288, 432]);
        assert_eq!(g.segment_start(1000), 143_857);
        for f in [0, 1, 143, 144, 143_856, 143_857, 143_858] {
            let k = g.segment_of(f);
            assert!(g.segment_start(k) <= f && f < g.segment_start(k + 1), "frame {f}");
        }
    }

    #[test]
    fn keyframes_restart_at_every_segment() {
        // 5 s segments, 2 s GOP is rejected by the ladder; 4 s / 2 s at 29.97 is not exact
        let g = Grid::new(FrameRate::new(30000, 1001).unwrap(), Cuts::even(4000), 2000);
        let s1 = g.segment_start(1);
        assert_eq!(s1, 120);
        assert!(g.is_keyframe(s1) && g.is_keyframe(s1 + 60));
    }

    #[test]
    fn ranges_snap_to_segment_boundaries() {
        let g = Grid::new(FrameRate::new(25, 1).unwrap(), Cuts::even(6000), 2000);
        assert_eq!(g.snap_range(0.0, Some(12.0)), (0, Some(2)));
        assert_eq!(g.snap_range(11.0, Some(20.0)), (2, Some(3)));
        assert_eq!(g.snap_range(13.0, None), (2, None));
        assert_eq!(g.snap_range(5.0, Some(5.5)), (1, Some(2)));
    }

    #[test]
    fn leading_segments_are_short_then_the_grid_goes_on_evenly() {
        // three 2 s segments, then 6 s: boundaries 0, 2, 4, 6, 12, 18 s
        let cuts = Cuts::with_lead(6000, 3, 2000);
        assert_eq!((0..6).map(|k| cuts.start_ms(k)).collect::<Vec<_>>(), vec![0, 2000, 4000, 6000, 12_000, 18_000]);
        let g = Grid::new(FrameRate::new(25, 1).unwrap(), cuts, 2000);
        assert_eq!((0..6).map(|k| g.segment_start(k)).collect::<Vec<_>>(), vec![0, 50, 100, 150, 300, 450]);
        for f in [0, 49, 50, 149, 150, 151, 299, 300, 10_000] {
            let k = g.segment_of(f);
            assert!(g.segment_start(k) <= f && f < g.segment_start(k + 1), "frame {f}");
        }
        assert!(g.is_keyframe(50) && g.is_keyframe(100) && g.is_keyframe(200) && !g.is_keyframe(299));
        assert_eq!(g.segment_count(200), 4);
        // ranges snap to the nearest boundary on either side of the lead's end
        assert_eq!(g.snap_range(0.0, Some(2.4)), (0, Some(1)));
        assert_eq!(g.snap_range(5.0, Some(11.0)), (3, Some(4)));
        assert_eq!(g.snap_range(60.0, None), (12, None));
        assert_eq!((cuts.count_in(1.0), cuts.count_in(6.0), cuts.count_in(6.5), cuts.count_in(30.0)), (1, 3, 4, 7));
        // samples follow the same boundaries: 48 kHz, segment 3 starts at 6 s
        assert_eq!(cuts.start_unit(3, 48_000, 1), 288_000);
        assert_eq!(cuts.segment_of_unit(287_999, 48_000, 1), 2);
        assert_eq!(g.samples_at_frame(400, 48_000), 768_000);
        // at 29.97 the boundaries fall on the first frame after the time
        let ntsc = Grid::new(FrameRate::new(30000, 1001).unwrap(), cuts, 2000);
        assert_eq!((0..5).map(|k| ntsc.segment_start(k)).collect::<Vec<_>>(), vec![0, 60, 120, 180, 360]);
    }

    #[test]
    fn a_grid_stored_before_leading_segments_reads_as_even() {
        let old = r#"{"rate":{"num":25,"den":1},"segment_ms":6000,"gop_frames":50}"#;
        let g: Grid = serde_json::from_str(old).unwrap();
        assert_eq!(g.cuts, Cuts::even(6000));
        assert_eq!(g.segment_start(2), 300);
    }
}
