//! `mark-bench --spread`: how far x264's encode of slightly changed frames lands from its
//! encode of the unchanged ones, per rate control: what any mark made on the picture is up
//! against when A and B are scored against the unmarked encode.
//!
//! Each clip's frames are encoded as the worker encodes a 720p rung (its x264 options and
//! slice threads) with one of three rate controls (`abr`: the rung's 3 Mb/s with VBV;
//! `cqp`: a constant QP of 26, no rate control to carry a change from frame to frame;
//! `crf`: CRF 23 without VBV), then again after a change, and the second encode is scored
//! (VMAF v0.6.1) against the first. Printed per clip and rate control: the first encode's
//! bit rate; `self`, the first encode against itself (the most any copy can score); `1px`,
//! one pixel of one picture moved by one code value; `mark`, a mark-like change: a random
//! sign per cell of a 16x9 grid, each luma pixel of every frame moved by one code value
//! that way with chance `--fraction`, and only in a share `--mbs` of the 16x16 macroblocks
//! (drawn afresh every frame) when given.

use anyhow::{Context, Result};

use super::quality_measure::{python_tools, vmaf};
use super::{encode_as, frames, next, one_pixel, ABR, ARGS, CLIPS, H, W};

/// The rate controls compared, by name, as ffmpeg arguments.
pub const MODES: [(&str, &[&str]); 3] = [("abr", ABR), ("cqp", &["-qp", "26"]), ("crf", &["-crf", "23"])];

/// A number in [0, 1) from the benchmark's random numbers.
fn unit(state: &mut u64) -> f64 {
    (next(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// The frames with the mark-like change described in the module's documentation.
fn mark_like(raw: &[u8], fraction: f64, mbs: Option<f64>, state: &mut u64) -> Vec<u8> {
    let signs: Vec<bool> = (0..16 * 9).map(|_| next(state) >> 63 == 1).collect();
    let mut out = raw.to_vec();
    for frame in out.chunks_exact_mut(W * H * 3 / 2) {
        let blocks: Vec<bool> = (0..(W / 16) * (H / 16)).map(|_| mbs.is_none_or(|share| unit(state) < share)).collect();
        for (i, p) in frame[..W * H].iter_mut().enumerate() {
            let (x, y) = (i % W, i / W);
            if !blocks[y / 16 * (W / 16) + x / 16] || unit(state) >= fraction {
                continue;
            }
            *p = if signs[y * 9 / H * 16 + x * 16 / W] { p.saturating_add(1) } else { p.saturating_sub(1) };
        }
    }
    out
}

/// Runs the comparison over `seconds` of each clip named by `--clips` (all by default),
/// with the rate controls of `--modes` (all by default).
pub fn main(seconds: usize, state: &mut u64) -> Result<()> {
    let all = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
    let clips: Vec<String> = ARGS.clips.clone().unwrap_or_else(|| all(&CLIPS.map(|c| c.0)));
    let modes: Vec<String> = ARGS.modes.clone().unwrap_or_else(|| all(&MODES.map(|m| m.0)));
    let (fraction, mbs) = (ARGS.fraction, ARGS.mbs);
    let in_mbs = mbs.map_or(String::new(), |share| format!(", in {share} of the macroblocks"));
    let vmaf_ffmpeg = python_tools()?;
    let dir = tempfile::tempdir()?;
    let (size, log) = ((W as u32, H as u32), dir.path().join("vmaf.json"));
    println!("mark spread: {seconds} s clips at 1280x720, the mark moves a pixel with chance {fraction}{in_mbs}");
    for clip in &clips {
        let picture = CLIPS.iter().find(|c| c.0 == clip).with_context(|| format!("no clip {clip}"))?.1;
        let duration = seconds.to_string();
        let raw = frames(&["-f", "lavfi", "-i", picture, "-t", &duration], "null", "yuv420p")?;
        let changes = [("1px", one_pixel(&raw)), ("mark", mark_like(&raw, fraction, mbs, state))];
        for mode in &modes {
            let rate = MODES.iter().find(|m| m.0 == mode).with_context(|| format!("no rate control {mode}"))?.1;
            let plain = dir.path().join(format!("{clip}-{mode}.mp4"));
            encode_as(&raw, rate, &plain)?;
            let kbps = std::fs::metadata(&plain)?.len() as f64 * 8.0 / 1000.0 / seconds as f64;
            let mut row = format!("{clip:<11} {mode:<4} {kbps:6.0} kb/s  self {:6.2}", vmaf(&vmaf_ffmpeg, &plain, &plain, size, &log)?.0);
            for (name, changed) in &changes {
                let out = dir.path().join(format!("{clip}-{mode}-{name}.mp4"));
                encode_as(changed, rate, &out)?;
                row += &format!("  {name} {:6.2}", vmaf(&vmaf_ffmpeg, &out, &plain, size, &log)?.0);
            }
            println!("{row}");
        }
    }
    let mbs = mbs.map_or(String::new(), |share| format!(" --mbs {share}"));
    println!(
        "reproduce: cargo run --release -p farm-benches --bin mark-bench -- --spread --seconds {seconds} --clips {} --modes {} --fraction {fraction}{mbs}",
        clips.join(","),
        modes.join(",")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_like_change_moves_its_share_of_pixels_by_one_code_value_in_chosen_blocks() {
        let raw = vec![128u8; W * H * 3 / 2];
        let moved = |changed: &[u8]| changed[..W * H].iter().filter(|&&p| p != 128).count() as f64 / (W * H) as f64;
        let everywhere = mark_like(&raw, 0.5, None, &mut 1);
        assert!((moved(&everywhere) - 0.5).abs() < 0.01, "{}", moved(&everywhere));
        assert!(everywhere.iter().all(|&p| p.abs_diff(128) <= 1));
        assert_eq!(everywhere[W * H..], raw[W * H..], "chroma is left alone");
        let sparse = mark_like(&raw, 1.0, Some(0.02), &mut 1);
        assert!((moved(&sparse) - 0.02).abs() < 0.01, "{}", moved(&sparse));
        // Whole macroblocks move, or none of their pixels.
        for (bx, by) in [(0, 0), (40, 20), (79, 44)] {
            let block: Vec<u8> = (0..16).flat_map(|y| (0..16).map(move |x| (by * 16 + y) * W + bx * 16 + x)).map(|i| sparse[i]).collect();
            assert!(block.iter().all(|&p| p == 128) || block.iter().all(|&p| p != 128), "{block:?}");
        }
    }
}
