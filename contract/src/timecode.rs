//! SMPTE timecode: parsing `HH:MM:SS:FF` (`;FF` for drop-frame), and the arithmetic that
//! turns a start timecode plus a global frame index into the timecode of that frame.
//!
//! Every chunk of a job computes its first frame's timecode here from the job's start
//! timecode and the chunk's first frame on the job's grid, so burnt-in timecode is exact
//! across chunk joins instead of restarting per chunk.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::timeline::FrameRate;

/// Serialised as its text, e.g. `"01:00:00;00"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Timecode {
    pub hours: u32,
    pub minutes: u32,
    pub seconds: u32,
    pub frames: u32,
    /// Drop-frame counting (29.97 and 59.94 only), written with `;` before the frames.
    pub drop_frame: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimecodeError {
    #[error("timecode {0:?} is not HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)")]
    Syntax(String),
    #[error("timecode {tc:?} has frame {frames}, but {fps} fps counts frames 0 to {}", fps - 1)]
    FrameOutOfRange { tc: String, frames: u32, fps: u32 },
    #[error("drop-frame timecode {0:?} names a frame that drop-frame counting skips")]
    Dropped(String),
    #[error("drop-frame timecode is defined for 29.97 and 59.94 fps only, not {0}")]
    DropFrameRate(String),
}

impl Timecode {
    /// Parses `HH:MM:SS:FF`; a `;` (or `.`, as some tools write it) before the frames
    /// means drop-frame. The frame rate is checked separately ([`Timecode::frame_index`]).
    pub fn parse(text: &str) -> Result<Self, TimecodeError> {
        let bad = || TimecodeError::Syntax(text.chars().take(32).collect());
        let bytes = text.as_bytes();
        if bytes.len() != 11 || bytes[2] != b':' || bytes[5] != b':' {
            return Err(bad());
        }
        let drop_frame = match bytes[8] {
            b':' => false,
            b';' | b'.' => true,
            _ => return Err(bad()),
        };
        let field = |i: usize| -> Result<u32, TimecodeError> {
            let s = &text[i..i + 2];
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            Ok(s.parse().expect("two digits"))
        };
        let tc = Self { hours: field(0)?, minutes: field(3)?, seconds: field(6)?, frames: field(9)?, drop_frame };
        if tc.minutes > 59 || tc.seconds > 59 {
            return Err(bad());
        }
        Ok(tc)
    }

    /// Frames per timecode second: the rate rounded (24 for 23.976, 30 for 29.97).
    pub fn nominal_fps(rate: FrameRate) -> u32 {
        ((rate.num as f64 / rate.den as f64).round() as u32).max(1)
    }

    /// Whether drop-frame counting exists for this rate.
    pub fn drop_frame_rate(rate: FrameRate) -> bool {
        rate.den == 1001 && (rate.num == 30000 || rate.num == 60000)
    }

    /// Frames dropped at each minute not divisible by ten: 2 at 29.97, 4 at 59.94.
    fn dropped_per_minute(fps: u32) -> u64 {
        u64::from(fps / 15)
    }

    /// The frame count since 00:00:00:00 that this timecode labels, at `rate`.
    pub fn frame_index(&self, rate: FrameRate) -> Result<u64, TimecodeError> {
        let fps = Self::nominal_fps(rate);
        if self.frames >= fps {
            return Err(TimecodeError::FrameOutOfRange { tc: self.to_string(), frames: self.frames, fps });
        }
        if self.drop_frame && !Self::drop_frame_rate(rate) {
            return Err(TimecodeError::DropFrameRate(format!("{}/{}", rate.num, rate.den)));
        }
        let total_minutes = u64::from(self.hours) * 60 + u64::from(self.minutes);
        let mut index = (total_minutes * 60 + u64::from(self.seconds)) * u64::from(fps) + u64::from(self.frames);
        if self.drop_frame {
            let drop = Self::dropped_per_minute(fps);
            if self.seconds == 0 && !self.minutes.is_multiple_of(10) && u64::from(self.frames) < drop {
                return Err(TimecodeError::Dropped(self.to_string()));
            }
            index -= drop * (total_minutes - total_minutes / 10);
        }
        Ok(index)
    }

    /// The timecode labelling frame `index` (counted from 00:00:00:00) at `rate`; hours
    /// wrap at 24 as on a deck.
    pub fn from_frame_index(index: u64, rate: FrameRate, drop_frame: bool) -> Self {
        let fps = u64::from(Self::nominal_fps(rate));
        let drop_frame = drop_frame && Self::drop_frame_rate(rate);
        let mut n = index;
        if drop_frame {
            let drop = Self::dropped_per_minute(fps as u32);
            let per_ten_minutes = fps * 600 - drop * 9;
            let per_minute = fps * 60 - drop;
            let tens = n / per_ten_minutes;
            let rem = n % per_ten_minutes;
            // The first minute of ten keeps all its labels; each later one skips `drop`.
            let extra = if rem < fps * 60 { 0 } else { drop * ((rem - fps * 60) / per_minute + 1) };
            n += drop * 9 * tens + extra;
        }
        let frames = n % fps;
        let seconds_total = n / fps;
        Self {
            hours: ((seconds_total / 3600) % 24) as u32,
            minutes: ((seconds_total / 60) % 60) as u32,
            seconds: (seconds_total % 60) as u32,
            frames: frames as u32,
            drop_frame,
        }
    }

    /// This timecode advanced by `frames` frames at `rate`.
    pub fn plus_frames(&self, frames: u64, rate: FrameRate) -> Result<Self, TimecodeError> {
        Ok(Self::from_frame_index(self.frame_index(rate)? + frames, rate, self.drop_frame))
    }
}

impl From<Timecode> for String {
    fn from(tc: Timecode) -> Self {
        tc.to_string()
    }
}

impl TryFrom<String> for Timecode {
    type Error = TimecodeError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl fmt::Display for Timecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.drop_frame { ';' } else { ':' };
        write!(f, "{:02}:{:02}:{:02}{sep}{:02}", self.hours, self.minutes, self.seconds, self.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NTSC: FrameRate = FrameRate { num: 30000, den: 1001 };

    fn tc(s: &str) -> Timecode {
        Timecode::parse(s).unwrap()
    }

    #[test]
    fn non_drop_timecode_counts_nominal_frames() {
        let r24 = FrameRate { num: 24000, den: 1001 };
        assert_eq!(tc("01:00:00:00").frame_index(r24).unwrap(), 86_400);
        assert_eq!(tc("01:00:00:00").plus_frames(24 * 61 + 5, r24).unwrap().to_string(), "01:01:01:05");
        let r25 = FrameRate { num: 25, den: 1 };
        assert_eq!(tc("10:00:00:24").plus_frames(1, r25).unwrap().to_string(), "10:00:01:00");
        assert_eq!(tc("23:59:59:24").plus_frames(1, r25).unwrap().to_string(), "00:00:00:00");
    }

    #[test]
    fn drop_frame_skips_two_labels_each_minute_except_every_tenth() {
        assert_eq!(tc("00:00:59;29").plus_frames(1, NTSC).unwrap().to_string(), "00:01:00;02");
        assert_eq!(tc("00:09:59;29").plus_frames(1, NTSC).unwrap().to_string(), "00:10:00;00");
        // one hour of drop-frame labels is 107892 frames: 29.97 x 3600, to the frame
        assert_eq!(tc("01:00:00;00").frame_index(NTSC).unwrap(), 107_892);
        assert_eq!(Timecode::from_frame_index(107_892, NTSC, true).to_string(), "01:00:00;00");
        let r5994 = FrameRate { num: 60000, den: 1001 };
        assert_eq!(tc("00:00:59;59").plus_frames(1, r5994).unwrap().to_string(), "00:01:00;04");
        // every index maps to a label that maps back to it
        for n in (0..200_000).step_by(7) {
            let label = Timecode::from_frame_index(n, NTSC, true);
            assert_eq!(label.frame_index(NTSC).unwrap(), n, "{label}");
        }
    }

    #[test]
    fn bad_timecodes_are_refused_with_the_reason() {
        assert!(matches!(Timecode::parse("1:00:00:00"), Err(TimecodeError::Syntax(_))));
        assert!(matches!(Timecode::parse("01:60:00:00"), Err(TimecodeError::Syntax(_))));
        assert!(matches!(Timecode::parse("01:00:00-00"), Err(TimecodeError::Syntax(_))));
        let r25 = FrameRate { num: 25, den: 1 };
        assert!(matches!(tc("01:00:00:25").frame_index(r25), Err(TimecodeError::FrameOutOfRange { .. })));
        assert!(matches!(tc("01:00:00;00").frame_index(r25), Err(TimecodeError::DropFrameRate(_))));
        assert!(matches!(tc("00:01:00;01").frame_index(NTSC), Err(TimecodeError::Dropped(_))));
        assert!(tc("00:10:00;01").frame_index(NTSC).is_ok());
    }
}
