//! Scrubbing thumbnails: which frames become thumbnails, how they are tiled into JPEG
//! sprites, and the names of the files beside the master playlist.
//!
//! Thumbnail `k` is the frame at `k x interval` on the job's timeline. Each video task
//! writes the thumbnails of its own frames as sprites whose names say which thumbnails
//! they hold (`thumbnails/sprite_<first>_<count>.jpg`), so the WebVTT track can be built
//! from the sprites present, while the job runs and at its end, without reading them.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::timeline::FrameRate;

/// The WebVTT track of `#xywh=` cues, beside the master playlist.
pub const THUMBNAILS_VTT: &str = "thumbnails.vtt";
/// A full-size frame that stands for the clip.
pub const POSTER: &str = "poster.jpg";
/// The review copy's description, beside the master playlist.
pub const REVIEW_JSON: &str = "review.json";
/// Folder of the sprites.
pub const SPRITE_FOLDER: &str = "thumbnails";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thumbnails {
    pub interval_ms: u32,
    /// Tile size in pixels (even).
    pub width: u32,
    pub height: u32,
    /// Tiles per sprite row, and at most this many rows per sprite.
    pub columns: u32,
    pub rows: u32,
}

impl Thumbnails {
    /// One thumbnail every 2 s, 192 pixels wide (height by the picture's aspect ratio).
    pub fn for_picture(display_width: u32, display_height: u32) -> Self {
        let width = 192u32.min(display_width.max(2)) & !1;
        let height = ((u64::from(width) * u64::from(display_height) / u64::from(display_width.max(1))) as u32).max(2) & !1;
        Self { interval_ms: 2000, width, height, columns: 10, rows: 10 }
    }

    pub fn per_sprite(&self) -> u64 {
        u64::from(self.columns) * u64::from(self.rows)
    }

    /// The frame thumbnail `k` shows.
    pub fn frame_of(&self, k: u64, rate: FrameRate) -> u64 {
        (u128::from(k) * u128::from(self.interval_ms) * u128::from(rate.num) / (1000 * u128::from(rate.den))) as u64
    }

    /// Start time of thumbnail `k`, in seconds.
    pub fn seconds_of(&self, k: u64) -> f64 {
        k as f64 * f64::from(self.interval_ms) / 1000.0
    }

    /// The thumbnails whose frames lie in `[first, end)`.
    pub fn in_frames(&self, first: u64, end: u64, rate: FrameRate) -> Range<u64> {
        let first_k = |frame: u64| {
            // the smallest k with frame_of(k) >= frame
            let k = (u128::from(frame) * 1000 * u128::from(rate.den)).div_ceil(u128::from(self.interval_ms) * u128::from(rate.num)) as u64;
            (k.saturating_sub(1)..=k + 1).find(|&k| self.frame_of(k, rate) >= frame).unwrap_or(k)
        };
        first_k(first)..first_k(end)
    }

    /// Where thumbnails `[first, first + count)` are tiled.
    pub fn sprite_key(first: u64, count: u64) -> String {
        format!("{SPRITE_FOLDER}/sprite_{first:06}_{count:03}.jpg")
    }

    /// Which thumbnails a sprite key holds.
    pub fn parse_sprite_key(key: &str) -> Option<Range<u64>> {
        let name = key.strip_prefix(SPRITE_FOLDER)?.strip_prefix("/sprite_")?.strip_suffix(".jpg")?;
        let (first, count) = name.split_once('_')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !(all_digits(first) && all_digits(count)) {
            return None;
        }
        let (first, count): (u64, u64) = (first.parse().ok()?, count.parse().ok()?);
        (count > 0).then_some(first..first + count)
    }

    /// The position of the `i`-th tile in its sprite.
    pub fn tile(&self, i: u64) -> (u32, u32) {
        let columns = u64::from(self.columns);
        ((i % columns) as u32 * self.width, (i / columns) as u32 * self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fall_every_interval_and_each_belongs_to_one_range() {
        let t = Thumbnails::for_picture(1920, 1080);
        assert_eq!((t.width, t.height), (192, 108));
        let ntsc = FrameRate { num: 30000, den: 1001 };
        assert_eq!(t.frame_of(1, ntsc), 59); // 2 s = 59.94 frames
        assert_eq!(t.frame_of(3, ntsc), 179);
        // chunks [0, 180) and [180, 360): thumbnails 0..4 then 4..7, none twice, none lost
        assert_eq!(t.in_frames(0, 180, ntsc), 0..4);
        assert_eq!(t.in_frames(180, 360, ntsc), 4..7);
        let r25 = FrameRate { num: 25, den: 1 };
        assert_eq!(t.in_frames(0, 50, r25), 0..1);
        assert_eq!(t.in_frames(50, 51, r25), 1..2);
        assert_eq!(t.in_frames(51, 100, r25), 2..2);
    }

    #[test]
    fn sprite_keys_name_their_thumbnails() {
        let key = Thumbnails::sprite_key(12, 6);
        assert_eq!(key, "thumbnails/sprite_000012_006.jpg");
        assert_eq!(Thumbnails::parse_sprite_key(&key), Some(12..18));
        for bad in ["thumbnails/sprite_12.jpg", "thumbnails/sprite_a_1.jpg", "x/sprite_1_1.jpg", "thumbnails/sprite_1_0.jpg"] {
            assert_eq!(Thumbnails::parse_sprite_key(bad), None, "{bad}");
        }
        let t = Thumbnails::for_picture(640, 360);
        assert_eq!(t.tile(0), (0, 0));
        assert_eq!(t.tile(13), (3 * t.width, t.height));
    }
}
