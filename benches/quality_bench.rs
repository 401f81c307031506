//! Quality benchmark (issue 17): what the ladder delivers for its bytes. For each clip of a
//! generated corpus of different complexity (static graphics to grainy low light and fast
//! motion; 1080p25 ProRes 422 HQ with stereo PCM, `--seconds` long), the worker's
//! `transcode` makes the fixed ladder; each rung is scored with VMAF v0.6.1 against the
//! source (the rung scaled to 1080p; mean and 5th-percentile frame), and its delivered rate
//! is measured on the written segments with the audio it plays with (MPEG-TS included).
//! Also the worker's CPU seconds per clip.
//!
//! VMAF comes from a separate FFmpeg build with libvmaf: PyPI `imageio-ffmpeg` (Debian's
//! FFmpeg has none), installed here when missing. Per-title ladders are not built yet: this
//! is the fixed ladder's side of the comparison.
//!
//! Reproduce with (from the repository root):
//!     cargo run --release -p farm-benches --bin quality-bench -- [--seconds 6] [--clips a,b]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use farm_tests::fixtures::target_dir;

/// The corpus: a name, what it stands for, and its lavfi picture.
const CLIPS: [(&str, &str, &str); 10] = [
    ("bars", "static graphics", "smptehdbars=size=1920x1080:rate=25"),
    ("talking-head", "still background, one moving figure", "gradients=size=1920x1080:rate=25:speed=0.0001,drawbox=x='860+40*sin(t*1.3)':y='300+12*sin(t*2)':w=260:h=420:color=0xC8A080:t=fill"),
    ("graphics", "moving test pattern", "testsrc2=size=1920x1080:rate=25"),
    ("zoom", "fine detail, zooming", "mandelbrot=size=1920x1080:rate=25"),
    ("fast-motion", "high entropy, every pixel moving", "life=size=1920x1080:rate=25:mold=10:ratio=0.5:death_color=#202020:life_color=#e0e0e0"),
    ("grain-low-light", "dark, heavy temporal grain", "gradients=size=1920x1080:rate=25:speed=0.01,eq=brightness=-0.3,noise=alls=30:allf=t+u"),
    ("handheld", "detail with camera shake", "mandelbrot=size=2240x1320:rate=25,crop=1920:1080:x='160+140*sin(t*5)':y='120+100*cos(t*4)'"),
    ("pan", "smooth gradient motion", "gradients=size=1920x1080:rate=25:speed=0.05"),
    ("grainy-graphics", "graphics under grain", "smptehdbars=size=1920x1080:rate=25,noise=alls=12:allf=t"),
    ("fast-pan", "sharp graphics panning fast", "testsrc2=size=1920x1080:rate=25,scroll=horizontal=0.02"),
];

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// The libvmaf FFmpeg of PyPI `imageio-ffmpeg`, installed when missing.
fn vmaf_ffmpeg() -> Result<PathBuf> {
    let find = || Command::new("python3").args(["-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"]).output();
    let mut out = find()?;
    if !out.status.success() {
        run(Command::new("python3").args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "imageio-ffmpeg==0.8.1"]))?;
        out = find()?;
    }
    ensure!(out.status.success(), "imageio-ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// The clip as a camera original, made once.
fn source(name: &str, picture: &str, seconds: u32) -> Result<PathBuf> {
    let dir = target_dir().join("bench-fixtures/quality");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}-{seconds}s.mov"));
    if !path.exists() {
        let tmp = dir.join(format!("tmp-{name}.mov"));
        let seconds = seconds.to_string();
        run(Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", picture, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", &seconds])
            .args(["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", "-c:a", "pcm_s24le", "-ac", "2"])
            .arg(&tmp))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// CPU seconds of this process's waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Bytes of the segments a media playlist lists.
fn segment_bytes(playlist: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(playlist)?;
    let dir = playlist.parent().context("folder")?;
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| Ok(std::fs::metadata(dir.join(l))?.len())).sum()
}

/// Both sides stated alike: FFmpeg 7+ negotiates colour properties between filters, and
/// would convert the untagged source towards the BT.709-tagged rung (PSNR-Y 22 dB where
/// Debian's FFmpeg measures 44), scoring a conversion instead of the encode.
const SAME: &str = "setparams=range=tv:colorspace=bt709:color_primaries=bt709:color_trc=bt709";

/// VMAF of `rung` (scaled to 1080p) against `source`: mean and 5th-percentile frame.
fn vmaf(ffmpeg: &Path, rung: &Path, source: &Path, log: &Path) -> Result<(f64, f64)> {
    let graph = format!(
        "[0:v]setpts=PTS-STARTPTS,{SAME},scale=1920:1080:flags=bicubic,format=yuv420p[d];[1:v]setpts=PTS-STARTPTS,{SAME},format=yuv420p[r];[d][r]libvmaf=model=version=vmaf_v0.6.1:n_threads=2:log_fmt=json:log_path={}",
        log.display()
    );
    run(Command::new(ffmpeg).args(["-nostdin", "-v", "error", "-i"]).arg(rung).arg("-i").arg(source).args(["-lavfi", &graph, "-f", "null", "-"]))?;
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(log)?)?;
    let mut scores: Vec<f64> = report["frames"].as_array().context("frames")?.iter().filter_map(|f| f["metrics"]["vmaf"].as_f64()).collect();
    ensure!(!scores.is_empty(), "no VMAF frames in {}", log.display());
    scores.sort_by(f64::total_cmp);
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    Ok((mean, scores[(scores.len() - 1) * 5 / 100]))
}

fn main() -> Result<()> {
    let seconds: u32 = arg("--seconds").map_or(Ok(6), |s| s.parse())?;
    let wanted: Option<Vec<String>> = arg("--clips").map(|c| c.split(',').map(str::to_owned).collect());
    let ffmpeg = vmaf_ffmpeg()?;
    let worker = target_dir().join("release/worker");
    if !worker.exists() {
        bail!("{} is missing: cargo build --release -p farm-worker", worker.display());
    }
    println!("quality benchmark: fixed ladder (default), {seconds} s 1080p25 ProRes 422 HQ clips, VMAF v0.6.1 at 1080p");
    println!("{:<16} {:<6} {:>9} {:>7} {:>7}", "clip", "rung", "kb/s", "VMAF", "p5");
    let (mut total_bytes, mut total_cpu) = (0u64, 0.0);
    for (name, _what, picture) in CLIPS {
        if wanted.as_ref().is_some_and(|w| !w.iter().any(|c| c == name)) {
            continue;
        }
        let src = source(name, picture, seconds)?;
        let out = tempfile::tempdir()?;
        let before = children_cpu();
        run(Command::new(&worker).arg("transcode").arg(&src).arg(out.path()))?;
        let cpu = children_cpu() - before;
        let master = m3u8_rs::parse_master_playlist_res(&std::fs::read(out.path().join("index.m3u8"))?).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let audio_bytes = |group: &str| -> Result<u64> {
            let alt = master.alternatives.iter().find(|a| a.group_id == group && a.default).context("audio group")?;
            segment_bytes(&out.path().join(alt.uri.as_ref().context("uri")?))
        };
        let mut clip_bytes = 0;
        for v in master.variants.iter().filter(|v| !v.is_i_frame) {
            let playlist = out.path().join(&v.uri);
            let bytes = segment_bytes(&playlist)? + v.audio.as_deref().map(audio_bytes).transpose()?.unwrap_or(0);
            clip_bytes += segment_bytes(&playlist)?;
            let (mean, p5) = vmaf(&ffmpeg, &playlist, &src, &out.path().join("vmaf.json"))?;
            let rung = v.uri.trim_end_matches("/index.m3u8");
            println!("{name:<16} {rung:<6} {:>9.0} {mean:>7.2} {p5:>7.2}", bytes as f64 * 8.0 / 1000.0 / f64::from(seconds));
        }
        for alt in &master.alternatives {
            clip_bytes += segment_bytes(&out.path().join(alt.uri.as_ref().context("uri")?))?;
        }
        println!("{name:<16} all    {:>9.0} kB written, worker {cpu:.1} CPU s", clip_bytes as f64 / 1000.0);
        total_bytes += clip_bytes;
        total_cpu += cpu;
    }
    println!("total: {:.1} MB of segments, {total_cpu:.1} worker CPU s", total_bytes as f64 / 1e6);
    println!("reproduce: cargo run --release -p farm-benches --bin quality-bench -- --seconds {seconds}");
    Ok(())
}
