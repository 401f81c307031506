//! What a worker hands on after encoding a range of a source: a part manifest.
//!
//! Each part lists, per rendition, the segments it wrote (global index, frames, bytes)
//! and the byte ranges of the I-frames inside them. Playlists are assembled from the
//! parts alone, so a job encoded in one pass and a job split over several workers give
//! the same playlists.

use serde::{Deserialize, Serialize};

use crate::ladder::SegmentFormat;
use crate::timeline::{FrameRate, Grid};

pub const MANIFEST_VERSION: u32 = 1;

/// The review mix's rendition name (its folder and its name in part manifests), and its
/// group's: a source's own tracks are `audio_1`, `audio_2`...
pub const AUDIO_RENDITION: &str = "audio";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    Video,
    Audio,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartManifest {
    pub version: u32,
    pub kind: PartKind,
    pub grid: Grid,
    /// Segment indices `[first_segment, end_segment)` this part covers.
    pub first_segment: u64,
    pub end_segment: u64,
    /// True when this part holds the source's last segment.
    pub is_last: bool,
    /// True when the job has an audio rendition (encoded by another part).
    pub audio_expected: bool,
    pub renditions: Vec<RenditionPart>,
    /// The farm job that wrote this part (none for the one-shot command): playlists are
    /// assembled from one job's parts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Video parts of a review copy: the job's review settings, what the colour stage did,
    /// and the thumbnail sprites written (keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<crate::review::Review>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sprites: Vec<String>,
    /// Video parts of a forensic job: every rendition again as variant B, its segments
    /// under `{name}/b/`; `renditions` hold variant A, where unmarked segments would be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variant_b: Vec<RenditionPart>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionPart {
    pub name: String,
    /// e.g. `avc1.640028` or `mp4a.40.2`, read from the written bitstream.
    pub codecs: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<FrameRate>,
    /// Audio only.
    pub channels: Option<u32>,
    pub segments: Vec<SegmentRecord>,
    /// Audio only: the playlist's NAME (the track's title, `Track N`, or the mix's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Audio only: ISO 639-2 language, when the source states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Audio only: the source's stream indices this rendition is made of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_streams: Vec<usize>,
    /// Audio: the rendition's group; video: the audio group the rung plays with. `None`
    /// (parts from before audio by bandwidth): [`crate::ladder::AUDIO_GROUP`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// fMP4 renditions: the init segment every segment is played with (`EXT-X-MAP`),
    /// relative to the output root. `None`: MPEG-TS, whose segments stand alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

impl RenditionPart {
    /// See [`RenditionPart::group`].
    pub fn group(&self) -> &str {
        crate::ladder::group_or_main(&self.group)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub index: u64,
    /// Path relative to the output root, e.g. `720p/seg_00003.ts`.
    pub uri: String,
    pub bytes: u64,
    /// Exact duration in seconds (frames / rate for video, samples / rate for audio).
    pub duration: f64,
    /// Video frames or audio samples in the segment.
    pub units: u64,
    /// Start, in frames (video) or samples (audio) from the source's first frame.
    pub start_unit: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iframes: Vec<IFrame>,
    /// Encrypted segments (RFC 8216 AES-128): the key period and the explicit IV (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SegmentKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IFrame {
    /// Frame number from the source's first frame.
    pub frame: u64,
    /// Byte range inside the segment; in an encrypted job, inside its own resource.
    pub offset: u64,
    pub length: u64,
    /// Encrypted jobs: the I-frame's own resource (a byte range inside a whole-segment
    /// AES-128 segment cannot be decrypted on its own), relative to the output root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SegmentKey>,
}

/// How one encrypted resource was sealed: its key period and explicit IV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentKey {
    pub period: u32,
    /// 32 hex digits.
    pub iv: String,
}

/// The separately encrypted resource of the I-frame at `frame` of a rendition.
pub fn iframe_uri(rendition: &str, frame: u64, format: SegmentFormat) -> String {
    format!("{rendition}/iframe_{frame:08}.{}", format.extension())
}

impl PartManifest {
    /// Object key for a part: sorted listing order is segment order.
    pub fn key(kind: PartKind, first_segment: u64, end_segment: u64) -> String {
        let kind = match kind {
            PartKind::Video => "video",
            PartKind::Audio => "audio",
        };
        format!("parts/{kind}-{first_segment:06}-{end_segment:06}.json")
    }
}

/// Segment file name inside a rendition folder.
pub fn segment_uri(rendition: &str, index: u64, format: SegmentFormat) -> String {
    format!("{rendition}/seg_{index:05}.{}", format.extension())
}

/// The init segment (`EXT-X-MAP`) of a rendition in fMP4, the same for every segment;
/// `None` in MPEG-TS, whose segments stand alone.
pub fn init_uri(rendition: &str, format: SegmentFormat) -> Option<String> {
    (format == SegmentFormat::Fmp4).then(|| format!("{rendition}/{INIT_SEGMENT}"))
}

pub const INIT_SEGMENT: &str = "init.mp4";

/// A forensic job's variant B of a rendition: its segments and playlist in this folder
/// under the rendition's (variant A's are where unmarked ones would be).
pub const VARIANT_B: &str = "b";

/// A forensic job's first marked segment position. Those before it are encoded once, as A
/// with no mark, and every share plays them: the copy is playable as soon as an unmarked
/// one would be (the first segment is not encoded twice), at the cost of those positions'
/// evidence in a leak. Variant B's segments and init segment start here.
pub const FIRST_MARKED_SEGMENT: u64 = 1;

/// Whether `key` names a media segment (either container) or an init segment: the
/// objects a live playlist waits for and a share hands out by signed URL.
pub fn is_media_key(key: &str) -> bool {
    key.ends_with(".ts") || key.ends_with(".m4s") || key.ends_with(INIT_SEGMENT)
}

/// Whether `key` (relative to an output prefix) is one the farm wrote there: part manifests
/// and markers under `parts/`, the master playlist, and the playlists and segments of one of
/// `renditions` (the folders the prefix's own part manifests name). Only these are removed
/// when an ended job's prefix is used again: anything else under it stays, another job's
/// output in a sub-folder included.
pub fn is_output_key(key: &str, renditions: &[String]) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        ["parts", _] | ["index.m3u8"] => true,
        [file] => [crate::thumbnails::REVIEW_JSON, crate::thumbnails::THUMBNAILS_VTT, crate::thumbnails::POSTER].contains(file),
        [crate::thumbnails::SPRITE_FOLDER, _] => crate::thumbnails::Thumbnails::parse_sprite_key(key).is_some(),
        [folder, file] if renditions.iter().any(|r| r == folder) => {
            matches!(*file, "index.m3u8" | "iframes.m3u8" | INIT_SEGMENT)
                || ["seg_", "iframe_"].iter().any(|prefix| {
                    let number = file.strip_prefix(prefix).and_then(|f| f.strip_suffix(".ts").or_else(|| f.strip_suffix(".m4s")));
                    number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_farms_own_keys_count_as_output() {
        let renditions = ["720p".to_string(), AUDIO_RENDITION.to_string()];
        for key in ["parts/video-000000-000003.json", "parts/first-chunk.started", "index.m3u8", "720p/index.m3u8", "720p/iframes.m3u8", "720p/seg_00012.ts", "720p/iframe_00000050.ts", "audio/seg_00000.ts", "720p/seg_00012.m4s", "720p/iframe_00000050.m4s", "720p/init.mp4", "audio/init.mp4", "review.json", "thumbnails.vtt", "poster.jpg", "thumbnails/sprite_000000_010.jpg"] {
            assert!(is_output_key(key, &renditions), "{key}");
        }
        for key in ["CANCELLED.j1", "notes.txt", "other/clip.mov", "720p/seg_.ts", "720p/seg_12a.ts", "720p/iframe_.ts", "720p/iframe_1.mp4", "720p/seg_1.mp4", "720p/init.m4s", "init.mp4", "a/b/seg_00001.ts", "parts/x/y.json", "review.txt", "thumbnails/notes.jpg"] {
            assert!(!is_output_key(key, &renditions), "{key}");
        }
        // Another job's output in a sub-folder is not this prefix's.
        for key in ["A001/index.m3u8", "A001/iframes.m3u8", "A001/seg_00000.ts", "A001/720p/seg_00000.ts"] {
            assert!(!is_output_key(key, &renditions), "{key}");
        }
    }
}
