//! Leaks as a screen capture makes them, of one share or of two viewers' copies mixed, and
//! `coordinator trace` run on them: one spelling for the forensic e2e tests and the leak
//! benchmark.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Result};

/// A screen capture of `input` (a file or a playlist, its keys and segments on disk or
/// served) from `start` for `seconds` into `out`: `crop` per cent of the width and height cut
/// away, half on each side, scaled to 640x360, brought to 30 fps, gamma, contrast and
/// brightness changed, re-encoded with x264 at 500 kb/s.
pub fn screen_capture(input: &str, start: u64, seconds: u64, crop: u64, out: &Path) -> Result<()> {
    let (kept, side) = (1.0 - crop as f64 / 100.0, crop as f64 / 200.0);
    let filter = format!("crop=iw*{kept}:ih*{kept}:iw*{side}:ih*{side},scale=640:360,fps=30,eq=gamma=1.15:contrast=1.05:brightness=0.02");
    let status = Command::new("ffmpeg")
        // A playlist made by hand (a collusion's mix) names segments by any extension and
        // over HTTP.
        .args(["-nostdin", "-v", "error", "-y", "-allowed_extensions", "ALL", "-protocol_whitelist", "file,http,tcp,crypto,data", "-i", input])
        .args(["-ss", &start.to_string(), "-t", &seconds.to_string(), "-map", "0:v:0", "-vf", &filter])
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
/// share's URL, ending in `/`) mixed segment by segment, each position's segment (with its
/// key) taken from one of the two at random, every URI made absolute (each share's own),
/// written to `out` for [`screen_capture`] to play.
pub fn mixed(http: &reqwest::blocking::Client, urls: [&str; 2], rendition: &str, state: &mut u64, out: &Path) -> Result<()> {
    let texts: Vec<String> = urls.iter().map(|u| http.get(format!("{u}media/{rendition}/index.m3u8")).send()?.text().map_err(Into::into)).collect::<Result<_>>()?;
    let absolute = |url: &str, line: &str| -> String {
        let base = format!("{url}media/{rendition}/");
        if line.starts_with("#EXT-X-KEY:") {
            line.replace("URI=\"../../keys/", &format!("URI=\"{url}keys/"))
        } else if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            format!("#EXT-X-MAP:URI=\"{base}{rest}")
        } else if line.starts_with('#') || line.is_empty() {
            line.to_string()
        } else {
            format!("{base}{line}")
        }
    };
    let blocks = |text: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let (mut header, mut blocks, mut pending) = (Vec::new(), Vec::new(), Vec::new());
        for line in text.lines() {
            if line.starts_with("#EXT-X-KEY") || line.starts_with("#EXTINF") || !line.starts_with('#') && !line.is_empty() {
                pending.push(line.to_string());
                if !line.starts_with('#') {
                    blocks.push(std::mem::take(&mut pending));
                }
            } else if blocks.is_empty() {
                header.push(line.to_string());
            }
        }
        (header, blocks)
    };
    let (header, first) = blocks(&texts[0]);
    let (_, second) = blocks(&texts[1]);
    let mut lines: Vec<String> = header.iter().map(|l| absolute(urls[0], l)).collect();
    for (a, b) in first.iter().zip(&second) {
        let (url, block) = if next(state) & 1 == 0 { (urls[0], a) } else { (urls[1], b) };
        lines.extend(block.iter().map(|l| absolute(url, l)));
    }
    lines.push("#EXT-X-ENDLIST".into());
    std::fs::write(out, lines.join("\n") + "\n")?;
    Ok(())
}
