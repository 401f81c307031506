//! Independent measurements with `ffprobe`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Frame {
    #[serde(default, deserialize_with = "num_str")]
    pub pts_time: Option<f64>,
    #[serde(default)]
    pub key_frame: u8,
    #[serde(default)]
    pub pict_type: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stream {
    pub codec_name: Option<String>,
    pub codec_tag_string: Option<String>,
    pub codec_type: Option<String>,
    pub profile: Option<String>,
    pub level: Option<i64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub pix_fmt: Option<String>,
    pub r_frame_rate: Option<String>,
    pub sample_aspect_ratio: Option<String>,
    #[serde(default, deserialize_with = "num_str")]
    pub sample_rate: Option<f64>,
    pub channels: Option<u32>,
    #[serde(default, deserialize_with = "num_str")]
    pub nb_read_frames: Option<f64>,
    pub color_primaries: Option<String>,
    pub color_transfer: Option<String>,
    pub color_space: Option<String>,
    pub color_range: Option<String>,
}

impl Stream {
    /// Primaries, transfer, matrix and range as the bitstream states them ("unknown" when not).
    pub fn colour_tags(&self) -> [String; 4] {
        [&self.color_primaries, &self.color_transfer, &self.color_space, &self.color_range]
            .map(|t| t.clone().unwrap_or_else(|| "unknown".into()))
    }
}

fn num_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    Ok(v.and_then(|s| s.parse().ok()))
}

fn ffprobe(args: &[&str], path: &Path) -> Result<serde_json::Value> {
    ffprobe_allowing(args, path, |_| false)
}

/// ffprobe, failing on any message on stderr but those `allowed` says are expected.
fn ffprobe_allowing(args: &[&str], path: &Path, allowed: impl Fn(&str) -> bool) -> Result<serde_json::Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .context("running ffprobe")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stderr.lines().any(|l| !l.trim().is_empty() && !allowed(l)) {
        bail!("ffprobe reports problems with {}: {stderr}", path.display());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The frames of an fMP4 I-frame byte range after its init segment: the range ends with
/// the I-frame, inside its fragment's `mdat`, so the demuxer's note that the file ends
/// early (`partial file`) is expected; any other message, a decoder's included, fails.
pub fn frames_of_fmp4_range(path: &Path, kind: &str) -> Result<Vec<Frame>> {
    let v = ffprobe_allowing(
        &["-select_streams", &format!("{kind}:0"), "-show_entries", "frame=pts_time,key_frame,pict_type"],
        path,
        |line| line.contains("[mov,mp4") && line.ends_with("partial file"),
    )?;
    Ok(serde_json::from_value(v["frames"].clone())?)
}

/// Every frame of the first stream of `kind` ("v" or "a"), decoded; fails on any decoder error.
pub fn frames(path: &Path, kind: &str) -> Result<Vec<Frame>> {
    let v = ffprobe(
        &["-select_streams", &format!("{kind}:0"), "-show_entries", "frame=pts_time,key_frame,pict_type"],
        path,
    )?;
    Ok(serde_json::from_value(v["frames"].clone())?)
}

/// Stream descriptions, with decoded frame counts.
pub fn streams(path: &Path) -> Result<Vec<Stream>> {
    let v = ffprobe(&["-count_frames", "-show_entries", "stream"], path)?;
    Ok(serde_json::from_value(v["streams"].clone())?)
}

/// The first video stream of a file (a segment, a picture, a source), without decoding it.
pub fn video_stream(path: &Path) -> Result<Stream> {
    let v = ffprobe(&["-select_streams", "v:0", "-show_entries", "stream"], path)?;
    let s: Vec<Stream> = serde_json::from_value(v["streams"].clone())?;
    s.into_iter().next().context("no video stream")
}

/// Frames in the source's video stream, counted by decoding it.
pub fn video_frame_count(path: &Path) -> Result<u64> {
    let v = ffprobe(&["-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames"], path)?;
    let s: Vec<Stream> = serde_json::from_value(v["streams"].clone())?;
    Ok(s.first().and_then(|s| s.nb_read_frames).context("no frame count")? as u64)
}

/// `a/b` as a number.
pub fn ratio(text: &str) -> f64 {
    let mut it = text.split('/');
    let n: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let d: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    n / d
}

/// Frames ffprobe decodes from the first `stream` ("v" or "a") of `input`, with `args`
/// before it; 0 when nothing decodes.
pub fn decoded_frames(args: &[&str], input: &str, stream: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", &format!("{stream}:0"), "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .args(args)
        .arg(input)
        .output()
        .expect("ffprobe");
    // MPEG-TS answers once per program too: the first line is the stream's.
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if out.status.success() { first.trim_end_matches(',').parse().unwrap_or(0) } else { 0 }
}

/// Frames ffprobe decodes from the first `stream` ("v" or "a") of the MPEG-TS file `path`,
/// opened through FFmpeg's AES-128 reader (`crypto:`) with `key` and `iv` (hex) when given;
/// 0 when nothing decodes. Read as MPEG-TS, always: left to guess, ffprobe took 4 of some
/// 2,900 runs of 400 kB of random bytes (what a sealed segment is without its key) for raw
/// H.263 and decoded a frame of each.
pub fn ts_frames(path: &Path, key: Option<(&str, &str)>, stream: &str) -> u64 {
    let path = path.to_str().expect("a UTF-8 path");
    match key {
        None => decoded_frames(&["-f", "mpegts"], path, stream),
        Some((key, iv)) => decoded_frames(&["-f", "mpegts", "-key", key, "-iv", iv], &format!("crypto:{path}"), stream),
    }
}
