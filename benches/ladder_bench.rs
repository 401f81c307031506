//! Ladder benchmark: the worker against the ffmpeg CLI on a 1080p25 ProRes 422 HQ source.
//!
//! Reproduce with (from the repository root):
//!     cargo run --release -p farm-benches --bin ladder-bench -- [--seconds 20] [--long-seconds 180]
//!
//! Both encode the default review ladder (1080p 5 Mb/s, 720p 3 Mb/s, 540p 1.5 Mb/s,
//! 360p 0.8 Mb/s, x264 veryfast High, 2 s GOP, 6 s segments, AAC 128 kb/s) with the same
//! x264 options; the CLI in one decode-once command (split + scale per rung, hls muxer).
//! Also measured: the CPU time of decoding alone and of the four encodes alone from
//! pre-scaled raw frames (one x264 thread each), which bound what any design can reach on
//! this machine, and the worker's peak RSS on a short and on a long source.

#[allow(dead_code)] // the worker's x264 arguments only
mod quality_measure;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use farm_contract::ladder::Ladder;
use farm_contract::timeline::{FrameRate, Grid};
use farm_tests::fixtures::{prores_1080p, target_dir};
use quality_measure::worker_x264_args;

struct Measured {
    wall: Duration,
    cpu: f64,
    peak_rss_kib: u64,
}

fn children_cpu() -> f64 {
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(usage.ru_utime) + t(usage.ru_stime)
    }
}

/// Runs a command to completion, measuring wall time, CPU time and peak RSS (VmHWM).
fn measure(cmd: &mut Command) -> Result<Measured> {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().context("spawn")?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut s);
        s
    });
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait()? {
            let wall = started.elapsed();
            let err = reader.join().unwrap_or_default();
            if !status.success() {
                bail!("{cmd:?} failed: {err}");
            }
            return Ok(Measured { wall, cpu: children_cpu() - cpu_before, peak_rss_kib: peak });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ffmpeg(args: &[&str]) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-v", "error", "-y"]).args(args);
    c
}

/// The CLI doing the same ladder in one decode-once command.
fn cli_ladder(src: &Path, out: &Path, ladder: &Ladder, grid: &Grid) -> Command {
    let rungs = ladder.fit(1920, 1080);
    let mut graph = format!("[0:v]split={}", rungs.len());
    for i in 0..rungs.len() {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, r) in rungs.iter().enumerate() {
        graph.push_str(&format!(";[s{i}]scale={}:{}:flags=bicubic,format=yuv420p[v{i}]", r.width, r.height));
    }
    let mut c = ffmpeg(&["-i", src.to_str().unwrap(), "-filter_complex", &graph]);
    for i in 0..rungs.len() {
        c.args(["-map", &format!("[v{i}]")]);
    }
    c.args(["-map", "0:a", "-c:v", "libx264"]);
    c.args(worker_x264_args(&ladder.x264, grid));
    for (i, r) in rungs.iter().enumerate() {
        c.arg(format!("-b:v:{i}")).arg(format!("{}k", r.bitrate_kbps));
        c.arg(format!("-maxrate:v:{i}")).arg(format!("{}k", r.maxrate_kbps));
        c.arg(format!("-bufsize:v:{i}")).arg(format!("{}k", r.bufsize_kbits));
    }
    let gop = grid.gop_frames.to_string();
    c.args(["-g", &gop, "-force_key_frames", &format!("expr:gte(t,n_forced*{})", ladder.gop_seconds)]);
    c.args(["-c:a", "aac", "-b:a", &format!("{}k", ladder.audio.bitrate_kbps), "-ac", "2", "-ar", "48000"]);
    let map: Vec<String> = (0..rungs.len()).map(|i| format!("v:{i},agroup:aud")).chain(["a:0,agroup:aud".to_string()]).collect();
    c.args(["-f", "hls", "-hls_time", &ladder.segment_seconds.to_string(), "-hls_playlist_type", "vod"]);
    c.args(["-hls_segment_filename", out.join("%v/seg_%05d.ts").to_str().unwrap()]);
    c.args(["-var_stream_map", &map.join(" "), "-master_pl_name", "index.m3u8"]);
    c.arg(out.join("%v/index.m3u8"));
    c
}

/// The benchmark's options.
#[derive(clap::Parser)]
#[command(about = "The worker against the ffmpeg CLI on a 1080p25 ProRes 422 HQ source")]
struct Args {
    /// The source's seconds for the encode comparison.
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// The long source's seconds, for the worker's peak RSS.
    #[arg(long, default_value_t = 180)]
    long_seconds: u32,
}

fn main() -> Result<()> {
    let Args { seconds, long_seconds } = clap::Parser::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;

    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-q", "-p", "farm-worker", "--bin", "worker"])
        .status()?;
    anyhow::ensure!(status.success(), "building the worker failed");
    let worker = target_dir().join("release/worker");
    let dir = target_dir().join("bench-fixtures");
    std::fs::create_dir_all(&dir)?;
    let src = prores_1080p(seconds)?;
    // Like for like: the CLI's hls muxer cuts every segment the same length, so the worker
    // runs without its short leading segments here.
    let ladder = Ladder { lead_segments: 0, ..Ladder::default() };
    let grid = Grid::new(FrameRate { num: 25, den: 1 }, ladder.cuts(), ladder.gop_ms());
    let work = tempfile::tempdir_in(&dir)?;

    eprintln!("worker: transcoding {} ...", src.display());
    let w = measure(Command::new(&worker).args(["transcode", src.to_str().unwrap(), "--lead-segments", "0"]).arg(work.path().join("worker")))?;
    eprintln!("ffmpeg CLI: same ladder, one decode-once command ...");
    let c = measure(&mut cli_ladder(&src, &work.path().join("cli"), &ladder, &grid))?;

    eprintln!("floor: decoding alone ...");
    let d = measure(&mut ffmpeg(&["-i", src.to_str().unwrap(), "-map", "0:v", "-f", "null", "-"]))?;
    eprintln!("floor: the four encodes alone, from pre-scaled raw frames ...");
    let mut encode_cpu = 0.0;
    for r in ladder.fit(1920, 1080) {
        let raw = work.path().join(format!("{}.y4m", r.name));
        measure(ffmpeg(&["-i", src.to_str().unwrap(), "-vf", &format!("scale={}:{}:flags=bicubic,format=yuv420p", r.width, r.height), "-f", "yuv4mpegpipe"]).arg(&raw))?;
        let mut cmd = ffmpeg(&["-i", raw.to_str().unwrap(), "-c:v", "libx264", "-threads", "1"]);
        cmd.args(worker_x264_args(&ladder.x264, &grid));
        cmd.args(["-b:v", &format!("{}k", r.bitrate_kbps), "-maxrate", &format!("{}k", r.maxrate_kbps), "-bufsize", &format!("{}k", r.bufsize_kbits), "-g", &grid.gop_frames.to_string(), "-f", "null", "-"]);
        encode_cpu += measure(&mut cmd)?.cpu;
        std::fs::remove_file(&raw)?;
    }
    let floor = (d.cpu + encode_cpu) / cores;

    let long = if long_seconds > 0 {
        let long_src = prores_1080p(long_seconds)?;
        eprintln!("worker: {long_seconds} s source, for memory ...");
        let out = work.path().join("worker-long");
        let m = measure(Command::new(&worker).args(["transcode", long_src.to_str().unwrap(), "--lead-segments", "0"]).arg(&out))?;
        Some(m)
    } else {
        None
    };

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("ladder benchmark: {seconds} s 1080p25 ProRes 422 HQ (grain), default ladder, {cores} cores");
    println!("  worker      wall {:7.2} s   cpu {:7.2} s   peak RSS {:6.0} MiB", w.wall.as_secs_f64(), w.cpu, mib(w.peak_rss_kib));
    println!("  ffmpeg CLI  wall {:7.2} s   cpu {:7.2} s   peak RSS {:6.0} MiB", c.wall.as_secs_f64(), c.cpu, mib(c.peak_rss_kib));
    println!("  ratio worker/CLI {:.3} (target <= 0.90)", w.wall.as_secs_f64() / c.wall.as_secs_f64());
    println!("  floor: decode {:.2} cpu-s + four encodes {:.2} cpu-s = {:.2} cpu-s / {cores} cores = {:.2} s wall", d.cpu, encode_cpu, d.cpu + encode_cpu, floor);
    println!("  worker wall / floor {:.3}; floor / CLI wall {:.3}", w.wall.as_secs_f64() / floor, floor / c.wall.as_secs_f64());
    if let Some(l) = long {
        println!("  worker on {long_seconds} s: wall {:.2} s, peak RSS {:.0} MiB ({:+.1}% vs {seconds} s; target within 10%, <= 600 MiB)",
            l.wall.as_secs_f64(), mib(l.peak_rss_kib), 100.0 * (l.peak_rss_kib as f64 / w.peak_rss_kib as f64 - 1.0));
    }
    println!("  reproduce: cargo run --release -p farm-benches --bin ladder-bench -- --seconds {seconds} --long-seconds {long_seconds}");
    Ok(())
}
