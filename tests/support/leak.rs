//! Leaks as a screen capture makes them, of one share or of two viewers' copies mixed, and
//! `coordinator trace` run on them: one spelling for the forensic e2e tests and the leak
//! benchmark.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Result};
use m3u8_rs::{MediaPlaylist, MediaSegment};

/// A screen capture of `input` (a file or a playlist, its keys and segments on disk or
/// served) from `start` for `seconds` into `out`: `crop` per cent of the width and height cut
/// away, half on each side, scaled to 640x360, brought to 30 fps, gamma, contrast and
/// brightness changed, re-encoded with x264 at 500 kb/s.
pub fn screen_capture(input: &str, start: u64, seconds: u64, crop: u64, out: &Path) -> Result<()> {
    capture(input, &["-ss", &start.to_string(), "-t", &seconds.to_string(), "-map", "0:v:0", "-vf", &capture_filter(crop)], out)
}

/// A screen capture of `input` as [`screen_capture`] makes it, of a viewer who skipped while
/// recording: the `parts` of it (seconds from, to) one after the other.
pub fn screen_capture_parts(input: &str, parts: &[(u64, u64)], crop: u64, out: &Path) -> Result<()> {
    let trims: String = parts.iter().enumerate().map(|(k, (from, to))| format!("[0:v]trim=start={from}:end={to},setpts=PTS-STARTPTS[p{k}];")).collect();
    let joined: String = (0..parts.len()).map(|k| format!("[p{k}]")).collect();
    let graph = format!("{trims}{joined}concat=n={},{}[v]", parts.len(), capture_filter(crop));
    capture(input, &["-filter_complex", &graph, "-map", "[v]"], out)
}

/// What a screen capture does to the picture: `crop` per cent of the width and height cut
/// away, half on each side, scaled to 640x360, brought to 30 fps, tones changed.
fn capture_filter(crop: u64) -> String {
    let (kept, side) = (1.0 - crop as f64 / 100.0, crop as f64 / 200.0);
    format!("crop=iw*{kept}:ih*{kept}:iw*{side}:ih*{side},scale=640:360,fps=30,eq=gamma=1.15:contrast=1.05:brightness=0.02")
}

/// `input` through ffmpeg with `picture` (what to take and how to filter it), re-encoded with
/// x264 at 500 kb/s into `out`.
fn capture(input: &str, picture: &[&str], out: &Path) -> Result<()> {
    let status = Command::new("ffmpeg")
        // A playlist made by hand (a collusion's mix) names segments by any extension and
        // over HTTP.
        .args(["-nostdin", "-v", "error", "-y", "-allowed_extensions", "ALL", "-protocol_whitelist", "file,http,tcp,crypto,data", "-i", input])
        .args(picture)
        .args(["-c:v", "libx264", "-preset", "veryfast", "-b:v", "500k", "-maxrate", "550k", "-bufsize", "1000k"])
        .arg(out)
        .status()?;
    ensure!(status.success(), "making the leak from {input}");
    Ok(())
}

/// `coordinator trace LEAK --job ID` as an operator runs it, beside an embedded farm's data
/// directory and master key: the verdict and the seconds it took.
pub fn trace(data: &Path, master: &Path, leak: &Path, job: &str) -> Result<(serde_json::Value, f64)> {
    let started = Instant::now();
    let out = Command::new(crate::worker::coordinator_bin())
        .arg("trace")
        .arg(leak)
        .args(["--job", job])
        .env("FARM_DATA_DIR", data)
        .env("FARM_MASTER_KEY_FILE", master)
        .env("RUST_LOG", "warn")
        .output()?;
    ensure!(out.status.success(), "trace: {}", String::from_utf8_lossy(&out.stderr));
    let verdict = serde_json::from_slice(&out.stdout).map_err(|e| anyhow::anyhow!("{e}: {}", String::from_utf8_lossy(&out.stdout)))?;
    Ok((verdict, started.elapsed().as_secs_f64()))
}

/// A leak's random numbers (where it starts, which viewer's segment a mix takes): the next
/// step of a 64-bit LCG (Knuth's MMIX constants).
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 33
}

/// A two-viewer collusion's copy: two shares' media playlists of `rendition` (`urls`: each
/// share's URL, ending in `/`) mixed segment by segment, each position's segment taken from
/// one of the two at random with the key it plays with, every URI made absolute (each
/// share's own), written to `out` for [`screen_capture`] to play.
pub fn mixed(http: &reqwest::blocking::Client, urls: [&str; 2], rendition: &str, state: &mut u64, out: &Path) -> Result<()> {
    let [first, second] = urls.map(|url| absolute(http, url, rendition));
    let (first, second) = (first?, second?);
    ensure!(first.segments.len() == second.segments.len(), "the two copies list {} and {} segments", first.segments.len(), second.segments.len());
    let mut segments: Vec<MediaSegment> = Vec::with_capacity(first.segments.len());
    let mut last_key = None;
    for (a, b) in first.segments.iter().zip(&second.segments) {
        let taken = if next(state) & 1 == 0 { a } else { b };
        // A key tag stands where the key changes: the mix says it whenever the copy taken
        // from plays this segment with another key (or URI) than the last. The init
        // segment is the rendition's, one file for A and B: named once, before the first
        // (each copy's first segment carries it).
        let key = if taken.key == last_key { None } else { taken.key.clone() };
        last_key = taken.key.clone();
        let map = if segments.is_empty() { taken.map.clone() } else { None };
        segments.push(MediaSegment { key, map, ..taken.clone() });
    }
    MediaPlaylist { segments, end_list: true, ..first }.write_to(&mut std::fs::File::create(out)?)?;
    Ok(())
}

/// A share's media playlist of `rendition`, each segment with the key it plays with (a key
/// tag carries on to the segments after it), every URI absolute.
fn absolute(http: &reqwest::blocking::Client, url: &str, rendition: &str) -> Result<MediaPlaylist> {
    let base = reqwest::Url::parse(&format!("{url}media/{rendition}/index.m3u8"))?;
    let mut playlist = crate::hls::parse_media(&http.get(base.clone()).send()?.bytes()?, base.as_str())?;
    let absolute = |uri: &str| -> Result<String> { Ok(base.join(uri)?.to_string()) };
    let mut key = None;
    let mut segments = Vec::with_capacity(playlist.segments.len());
    for mut segment in std::mem::take(&mut playlist.segments) {
        if let Some(mut tag) = segment.key.take() {
            tag.uri = tag.uri.as_deref().map(absolute).transpose()?;
            key = Some(tag);
        }
        if let Some(tag) = &mut segment.map {
            tag.uri = absolute(&tag.uri)?;
        }
        segment.uri = absolute(&segment.uri)?;
        segments.push(MediaSegment { key: key.clone(), ..segment });
    }
    playlist.segments = segments;
    Ok(playlist)
}
