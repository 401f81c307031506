//! Forensic mark benchmark (issue 19): do the A/B marks survive what a leak goes through,
//! and are they invisible? For each clip (1280x720, 25 fps, generated), a random code word
//! picks A or B for every 2 s segment position; the frames are marked
//! (`farm_media::forensic_mark`) and encoded with x264 as a review rung is (3 Mb/s, 2 s
//! GOPs); the leak is that encode cropped by 10 %, scaled to 640x360, brought to 30 fps,
//! gamma, contrast and brightness changed, and re-encoded with x264 at 500 kb/s. The
//! detector reads every position against the unmarked source put through the same crop and
//! scale (the leak's geometry and timing known: aligning an unknown leak is not measured
//! here). Printed per clip: positions read right and wrong, the log-likelihood ratios, the
//! mark's amplitude as read, and VMAF (v0.6.1) of the marked encode against the unmarked
//! one (the issue asks at least 98), and of a control: the unmarked frames with as many
//! pixels moved by one code value, at random and without a pattern.
//!
//! Reproduce with (from the repository root; ffmpeg on the PATH, PyPI `imageio-ffmpeg` for
//! VMAF, installed when missing):
//!     cargo run --release -p farm-benches --bin mark-bench -- [--seconds 20] [--seed 1]

#[allow(dead_code)] // the VMAF and run helpers only
mod quality_measure;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use farm_media::forensic_mark::{amplitude, llr, Pattern, Variant, Window};
use quality_measure::{python_tools, run, vmaf};

const W: usize = 1280;
const H: usize = 720;
const SEGMENT_FRAMES: usize = 50;
const LEAK: (usize, usize) = (640, 360);
const CROP: Window = Window { left: 0.05, top: 0.05, right: 0.95, bottom: 0.95 };
const SEED: [u8; 32] = *b"mark-bench seed, thirty-two byte";

const CLIPS: [(&str, &str); 3] = [
    ("graphics", "testsrc2=size=1280x720:rate=25"),
    ("detail", "mandelbrot=size=1280x720:rate=25"),
    ("dark-grain", "gradients=size=1280x720:rate=25:speed=0.01:seed=1:n=2:c0=0x405070:c1=0xC0A080,eq=brightness=-0.3,noise=alls=20:allf=t+u"),
];

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Raw 8-bit frames out of ffmpeg (`pix_fmt` gray or yuv420p) for `input` args and a filter.
fn frames(input: &[&str], filter: &str, pix_fmt: &str) -> Result<Vec<u8>> {
    let out = Command::new("ffmpeg").args(["-nostdin", "-v", "error"]).args(input).args(["-vf", filter, "-pix_fmt", pix_fmt, "-f", "rawvideo", "-"]).output()?;
    ensure!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

/// Raw yuv420p frames at 1280x720, 25 fps, encoded with x264 as a 720p review rung.
fn encode(raw: &[u8], out: &Path) -> Result<()> {
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1280x720", "-r", "25", "-i", "-"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-b:v", "3000k", "-maxrate", "3300k", "-bufsize", "6000k", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0"])
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(raw)?;
    ensure!(child.wait()?.success(), "encoding {}", out.display());
    Ok(())
}

/// The leak's processing of `input`, written to `out`.
fn leak(input: &Path, out: &Path) -> Result<()> {
    let filter = "crop=iw*0.9:ih*0.9:iw*0.05:ih*0.05,scale=640:360,fps=30,eq=gamma=1.15:contrast=1.05:brightness=0.02";
    run(Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-y", "-i"]).arg(input).args(["-vf", filter, "-c:v", "libx264", "-preset", "veryfast", "-b:v", "500k", "-maxrate", "550k", "-bufsize", "1000k"]).arg(out))?;
    Ok(())
}

/// What the detector read at each position: (position, the variant, the llr, mean amplitude).
fn read(leak: &Path, source: &[&str], word: &[Variant]) -> Result<Vec<(usize, Variant, f64, f64)>> {
    let (lw, lh) = LEAK;
    let leaked = frames(&["-i", leak.to_str().context("path")?], "null", "gray")?;
    // the unmarked source through the same crop, scale and frame rate (no colour change)
    let reference = frames(source, "crop=iw*0.9:ih*0.9:iw*0.05:ih*0.05,scale=640:360,fps=30", "gray")?;
    let n = (leaked.len() / (lw * lh)).min(reference.len() / (lw * lh));
    let mut by_position: Vec<Vec<f64>> = vec![Vec::new(); word.len()];
    let fields: Vec<_> = (0..word.len()).map(|p| Pattern::new(&SEED, p as u64).field_in(CROP, lw, lh)).collect();
    for k in 0..n {
        // the source frame the leak's frame k shows (30 fps from 25), away from cuts
        let source_frame = k * 25 / 30;
        let (position, offset) = (source_frame / SEGMENT_FRAMES, source_frame % SEGMENT_FRAMES);
        if position >= word.len() || offset < 2 || offset + 2 >= SEGMENT_FRAMES {
            continue;
        }
        let plane = |raw: &[u8]| raw[k * lw * lh..(k + 1) * lw * lh].iter().map(|&p| f32::from(p)).collect::<Vec<f32>>();
        by_position[position].push(amplitude(&plane(&leaked), &plane(&reference), &fields[position]));
    }
    Ok(by_position.iter().enumerate().map(|(p, a)| (p, word[p], llr(a), a.iter().sum::<f64>() / a.len().max(1) as f64)).collect())
}

/// The benchmark's random numbers: the next step of a 64-bit LCG (Knuth's MMIX constants).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state
}

/// The control: as many pixels moved by one code value as the mark moves, with random signs
/// (no pattern, no mean change): how much of the VMAF drop is any change to x264's input.
fn scattered(raw: &[u8], state: &mut u64) -> Vec<u8> {
    let mut out = raw.to_vec();
    let field = Pattern::new(&SEED, 0).field(W, H);
    for frame in out.chunks_exact_mut(W * H * 3 / 2) {
        for (p, f) in frame[..W * H].iter_mut().zip(field.values()) {
            let draw = next(state);
            let (chance, up) = ((draw >> 40) as f32 / (1u64 << 24) as f32, draw >> 39 & 1 == 1);
            if chance < (0.8 * f).abs() {
                *p = if up { p.saturating_add(1) } else { p.saturating_sub(1) };
            }
        }
    }
    out
}

fn main() -> Result<()> {
    let seconds: usize = arg("--seconds").map_or(Ok(20), |s| s.parse())?;
    let mut state: u64 = arg("--seed").map_or(Ok(1), |s| s.parse())?;
    let vmaf_ffmpeg = python_tools()?;
    let dir = tempfile::tempdir()?;
    println!("mark benchmark: {seconds} s clips at 1280x720, a position per 2 s segment, leak = crop 10 %, 640x360, 30 fps, gamma/contrast/brightness, x264 500 kb/s");
    println!("{:<12} {:>9} {:>7} {:>7} {:>12} {:>12} {:>10} {:>8} {:>8}", "clip", "positions", "right", "wrong", "median |llr|", "min |llr|", "amplitude", "VMAF", "control");
    for (name, picture) in CLIPS {
        let duration = seconds.to_string();
        let input = ["-f", "lavfi", "-i", picture, "-t", duration.as_str()];
        let raw = frames(&input, "null", "yuv420p")?;
        let frame_bytes = W * H * 3 / 2;
        let count = raw.len() / frame_bytes;
        let positions = count.div_ceil(SEGMENT_FRAMES);
        let word: Vec<Variant> = (0..positions)
            .map(|_| if next(&mut state) >> 63 == 1 { Variant::B } else { Variant::A })
            .collect();
        let fields: Vec<_> = (0..positions).map(|p| Pattern::new(&SEED, p as u64).field(W, H)).collect();
        let mut marked = raw.clone();
        for (f, frame) in marked.chunks_exact_mut(frame_bytes).enumerate() {
            let position = f / SEGMENT_FRAMES;
            fields[position].apply(&mut frame[..W * H], W, word[position], f as u64);
        }
        let control = scattered(&raw, &mut state);
        let file = |what: &str| dir.path().join(format!("{name}-{what}.mp4"));
        let (plain_mp4, marked_mp4, leak_mp4, control_mp4) = (file("plain"), file("marked"), file("leak"), file("control"));
        encode(&raw, &plain_mp4)?;
        encode(&marked, &marked_mp4)?;
        encode(&control, &control_mp4)?;
        leak(&marked_mp4, &leak_mp4)?;
        let size = (W as u32, H as u32);
        let (score, _) = vmaf(&vmaf_ffmpeg, &marked_mp4, &plain_mp4, size, &dir.path().join("vmaf.json"))?;
        let (control_score, _) = vmaf(&vmaf_ffmpeg, &control_mp4, &plain_mp4, size, &dir.path().join("vmaf.json"))?;
        let readings = read(&leak_mp4, &input, &word)?;
        let right = readings.iter().filter(|(_, v, l, _)| (*v == Variant::B) == (*l > 0.0) && *l != 0.0).count();
        let mut strengths: Vec<f64> = readings.iter().map(|r| r.2.abs()).collect();
        strengths.sort_by(f64::total_cmp);
        let amp = readings.iter().map(|r| if r.1 == Variant::A { r.3 } else { -r.3 }).sum::<f64>() / readings.len() as f64;
        println!(
            "{name:<12} {positions:>9} {right:>7} {:>7} {:>12.1} {:>12.2} {amp:>10.3} {score:>8.2} {control_score:>8.2}",
            readings.len() - right,
            strengths[strengths.len() / 2],
            strengths[0],
        );
    }
    println!("reproduce: cargo run --release -p farm-benches --bin mark-bench -- --seconds {seconds}");
    Ok(())
}
