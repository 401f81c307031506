//! The quality benchmark's measurements: VMAF of a rung, bytes of a playlist's segments,
//! BD-rate (PyPI `bjontegaard`), the worker's CPU time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

pub fn run(cmd: &mut Command) -> Result<String> {
    outputs(cmd).map(|(_, stderr)| stderr)
}

/// Runs `cmd` to success: its stdout and its stderr, as text.
pub fn outputs(cmd: &mut Command) -> Result<(String, String)> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// Installs the PyPI packages the benchmark needs when missing: `imageio-ffmpeg` (an
/// FFmpeg build with libvmaf; Debian's has none) and `bjontegaard`.
pub fn python_tools() -> Result<PathBuf> {
    let find = || Command::new("python3").args(["-c", "import bjontegaard, imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"]).output();
    let mut out = find()?;
    if !out.status.success() {
        run(Command::new("python3").args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "imageio-ffmpeg==0.8.1", "bjontegaard==1.3.0"]))?;
        out = find()?;
    }
    ensure!(out.status.success(), "imageio-ffmpeg, bjontegaard: {}", String::from_utf8_lossy(&out.stderr));
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// CPU seconds of this process's waited-for children so far.
pub fn children_cpu() -> f64 {
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
pub fn segment_bytes(playlist: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(playlist)?;
    let dir = playlist.parent().context("folder")?;
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| Ok(std::fs::metadata(dir.join(l))?.len())).sum()
}

/// Both sides stated alike: FFmpeg 7+ negotiates colour properties between filters, and
/// would convert the untagged source towards the BT.709-tagged rung (PSNR-Y 22 dB where
/// Debian's FFmpeg measures 44), scoring a conversion instead of the encode.
const SAME: &str = "setparams=range=tv:colorspace=bt709:color_primaries=bt709:color_trc=bt709";

/// VMAF of `rung` (scaled to the source's `size`) against `source`: mean and
/// 5th-percentile frame.
pub fn vmaf(ffmpeg: &Path, rung: &Path, source: &Path, size: (u32, u32), log: &Path) -> Result<(f64, f64)> {
    let mut scores = vmaf_frames(ffmpeg, rung, source, size, log)?;
    scores.sort_by(f64::total_cmp);
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    Ok((mean, scores[(scores.len() - 1) * 5 / 100]))
}

/// VMAF of every frame of `rung` against `source`, in order, as [`vmaf`] scores them.
pub fn vmaf_frames(ffmpeg: &Path, rung: &Path, source: &Path, (w, h): (u32, u32), log: &Path) -> Result<Vec<f64>> {
    let graph = format!(
        "[0:v]setpts=PTS-STARTPTS,{SAME},scale={w}:{h}:flags=bicubic,format=yuv420p[d];[1:v]setpts=PTS-STARTPTS,{SAME},format=yuv420p[r];[d][r]libvmaf=model=version=vmaf_v0.6.1:n_threads=2:log_fmt=json:log_path={}",
        log.display()
    );
    run(Command::new(ffmpeg).args(["-nostdin", "-v", "error", "-i"]).arg(rung).arg("-i").arg(source).args(["-lavfi", &graph, "-f", "null", "-"]))?;
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(log)?)?;
    let scores: Vec<f64> = report["frames"].as_array().context("frames")?.iter().filter_map(|f| f["metrics"]["vmaf"].as_f64()).collect();
    ensure!(!scores.is_empty(), "no VMAF frames in {}", log.display());
    Ok(scores)
}

/// BD-rate (%) of `test` against `anchor`, each a list of (kb/s, VMAF), with PyPI
/// `bjontegaard` (PCHIP); `None` when the curves cannot be compared (not increasing, no
/// overlap in quality).
pub fn bd_rate(anchor: &[(f64, f64)], test: &[(f64, f64)]) -> Option<f64> {
    let list = |points: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| -> String {
        let mut sorted = points.to_vec();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        format!("[{}]", sorted.iter().map(|p| format!("{:.4}", f(p))).collect::<Vec<_>>().join(","))
    };
    let script = format!(
        "import bjontegaard as bd, math\ntry:\n v = bd.bd_rate({}, {}, {}, {}, method='pchip', require_matching_points=False)\n print(v if math.isfinite(v) else 'nan')\nexcept Exception as e:\n print('nan')",
        list(anchor, |p| p.0), list(anchor, |p| p.1), list(test, |p| p.0), list(test, |p| p.1)
    );
    let out = Command::new("python3").args(["-W", "ignore", "-c", &script]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The 5th-percentile VMAF of a ladder at `kbps`, linear in log rate between its rungs;
/// `None` outside its range.
pub fn p5_at(ladder: &[(f64, f64)], kbps: f64) -> Option<f64> {
    let mut sorted = ladder.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted.windows(2).find(|w| w[0].0 <= kbps && kbps <= w[1].0).map(|w| {
        let t = if w[1].0 > w[0].0 { (kbps.ln() - w[0].0.ln()) / (w[1].0.ln() - w[0].0.ln()) } else { 0.0 };
        w[0].1 + t * (w[1].1 - w[0].1)
    })
}

/// The worker's own x264 options (`farm_media::transcode::encode::x264_options`) spelled as
/// `ffmpeg` program arguments, so that a benchmark's CLI encode is the worker's.
#[allow(dead_code)] // the quality benchmark encodes through the worker itself
pub fn worker_x264_args(x264: &farm_contract::ladder::X264Settings, grid: &farm_contract::timeline::Grid) -> Vec<String> {
    farm_media::transcode::encode::x264_options(x264, grid)
        .into_iter()
        .flat_map(|(k, v)| [format!("-{}", if k == "profile" { "profile:v" } else { k.as_str() }), v])
        .collect()
}
