//! Small camera-like sources made with the `ffmpeg` CLI, cached under `target/fixtures`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// The workspace's `target` folder.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").join("target")
}

pub fn fixtures_dir() -> PathBuf {
    let dir = target_dir().join("fixtures");
    std::fs::create_dir_all(&dir).expect("fixtures dir");
    dir
}

static MAKING: Mutex<()> = Mutex::new(());

/// Makes `name` with the ffmpeg arguments given (output path appended), once.
pub fn make(name: &str, args: &[&str]) -> Result<PathBuf> {
    let path = fixtures_dir().join(name);
    let _guard = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if path.exists() {
        return Ok(path);
    }
    let tmp = fixtures_dir().join(format!("tmp-{}-{name}", std::process::id()));
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(&tmp)
        .output()
        .context("running ffmpeg (is the ffmpeg CLI installed?)")?;
    if !out.status.success() {
        bail!("ffmpeg could not make {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// A test picture and tones: `testsrc2` with a moving pattern, so that encoders work.
fn lavfi_video(size: &str, rate: &str, seconds: f64) -> String {
    format!("testsrc2=size={size}:rate={rate}:duration={seconds}")
}

fn lavfi_tone(freq: u32, seconds: f64) -> String {
    format!("sine=frequency={freq}:sample_rate=48000:duration={seconds}")
}

/// The kinds of originals a facility receives, each small and a few seconds long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ProRes 422 HQ 10-bit 4:2:2 in MOV, 25 fps, stereo 24-bit PCM.
    ProRes422,
    /// ProRes 4444 with alpha in MOV, 23.976 fps, odd picture size, no audio.
    ProRes4444Odd,
    /// DNxHR HQ in MXF OP1a, 23.976 fps, two mono PCM tracks.
    DnxhrMxf,
    /// Camera H.264 in MP4, 29.97 fps with B-frames, 5.1 AAC.
    H264Mp4,
    /// Camera HEVC 10-bit in MOV, 50 fps, rotated 90 degrees, no audio.
    HevcRotated,
    /// MPEG-2 in MXF, interlaced 25i, 720x576 with 16:15 pixels (4:3), mono PCM.
    Mpeg2InterlacedMxf,
    /// H.264 in MOV at 59.94 fps, four mono PCM tracks.
    H264MultiTrack,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::ProRes422,
        Kind::ProRes4444Odd,
        Kind::DnxhrMxf,
        Kind::H264Mp4,
        Kind::HevcRotated,
        Kind::Mpeg2InterlacedMxf,
        Kind::H264MultiTrack,
    ];

    pub fn make(self) -> Result<PathBuf> {
        match self {
            Kind::ProRes422 => make(
                "prores422.mov",
                &[
                    "-f", "lavfi", "-i", &lavfi_video("640x360", "25", 8.0),
                    "-f", "lavfi", "-i", &lavfi_tone(440, 8.0),
                    "-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le",
                    "-c:a", "pcm_s24le", "-ac", "2",
                ],
            ),
            Kind::ProRes4444Odd => make(
                "prores4444-odd.mov",
                &[
                    "-f", "lavfi", "-i", &lavfi_video("321x181", "24000/1001", 3.0),
                    "-c:v", "prores_ks", "-profile:v", "4", "-pix_fmt", "yuva444p10le",
                ],
            ),
            Kind::DnxhrMxf => make(
                "dnxhr.mxf",
                &[
                    "-f", "lavfi", "-i", &lavfi_video("640x360", "24000/1001", 4.0),
                    "-f", "lavfi", "-i", &lavfi_tone(300, 4.0),
                    "-f", "lavfi", "-i", &lavfi_tone(500, 4.0),
                    "-map", "0", "-map", "1", "-map", "2",
                    "-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p",
                    "-c:a", "pcm_s24le", "-ac", "1", "-f", "mxf",
                ],
            ),
            Kind::H264Mp4 => make(
                "camera-h264.mp4",
                &[
                    "-f", "lavfi", "-i", &lavfi_video("480x270", "30000/1001", 5.0),
                    "-f", "lavfi", "-i", &lavfi_tone(440, 5.0),
                    "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "30",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "6",
                ],
            ),
            Kind::HevcRotated => {
                let plain = make(
                    "camera-hevc-plain.mov",
                    &[
                        "-f", "lavfi", "-i", &lavfi_video("480x270", "50", 3.0),
                        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
                        "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1",
                    ],
                )?;
                // FFmpeg 5.1 writes the display matrix when remuxing with a rotate tag.
                make(
                    "camera-hevc-rotated.mov",
                    &["-i", plain.to_str().expect("utf-8"), "-c", "copy", "-metadata:s:v:0", "rotate=90"],
                )
            }
            Kind::Mpeg2InterlacedMxf => make(
                "mpeg2-interlaced.mxf",
                &[
                    "-f", "lavfi", "-i", &lavfi_video("720x576", "25", 3.0),
                    "-f", "lavfi", "-i", &lavfi_tone(1000, 3.0),
                    "-c:v", "mpeg2video", "-b:v", "8M", "-flags", "+ilme+ildct", "-top", "1",
                    "-aspect", "4:3", "-c:a", "pcm_s16le", "-ac", "1", "-f", "mxf",
                ],
            ),
            Kind::H264MultiTrack => make(
                "h264-multitrack.mov",
                &[
                    "-f", "lavfi", "-i", &lavfi_video("320x180", "60000/1001", 3.0),
                    "-f", "lavfi", "-i", &lavfi_tone(200, 3.0),
                    "-f", "lavfi", "-i", &lavfi_tone(400, 3.0),
                    "-f", "lavfi", "-i", &lavfi_tone(600, 3.0),
                    "-f", "lavfi", "-i", &lavfi_tone(800, 3.0),
                    "-map", "0", "-map", "1", "-map", "2", "-map", "3", "-map", "4",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-c:a", "pcm_s16le", "-ac", "1",
                ],
            ),
        }
    }

    pub fn has_audio(self) -> bool {
        !matches!(self, Kind::ProRes4444Odd | Kind::HevcRotated)
    }
}

/// A ladder for small test sources: three rungs that a 640x360 source fills.
pub const SMALL_LADDER: &str = r#"{
  "version": 1,
  "video": [
    {"name": "360p", "width": 640, "height": 360, "bitrate_kbps": 900},
    {"name": "240p", "width": 426, "height": 240, "bitrate_kbps": 500},
    {"name": "144p", "width": 256, "height": 144, "bitrate_kbps": 250}
  ]
}"#;

pub fn small_ladder_file() -> PathBuf {
    let path = fixtures_dir().join("small-ladder.json");
    if !path.exists() {
        std::fs::write(&path, SMALL_LADDER).expect("write ladder");
    }
    path
}

/// `name`: a 320x180 25 fps picture and eight mono PCM tracks, track N a sine at 300 x N Hz,
/// `seconds` long, with `extra` ffmpeg output options (track titles, languages), made once.
pub fn eight_tone_tracks(name: &str, seconds: u32, extra: &[&str]) -> Result<PathBuf> {
    let mut args: Vec<String> = vec!["-f".into(), "lavfi".into(), "-i".into(), format!("testsrc2=size=320x180:rate=25:duration={seconds}")];
    for n in 1..=8 {
        args.extend(["-f", "lavfi", "-i"].map(String::from));
        args.push(format!("sine=frequency={}:sample_rate=48000:duration={seconds}", 300 * n));
    }
    args.extend(["-map", "0:v"].map(String::from));
    for n in 1..=8 {
        args.extend(["-map".into(), format!("{n}:a")]);
    }
    args.extend(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    make(name, &refs)
}

/// Benchmark source: 1080p25 ProRes 422 HQ with film grain and stereo PCM, `seconds` long
/// (made once as 20 s, longer ones by looping it), under `target/bench-fixtures`.
pub fn prores_1080p(seconds: u32) -> Result<PathBuf> {
    let dir = target_dir().join("bench-fixtures");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("prores422hq-1080p25-{seconds}s.mov"));
    if path.exists() {
        return Ok(path);
    }
    let run = |args: &[&str], out: &Path| -> Result<()> {
        let status = Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-y"]).args(args).arg(out).status()?;
        if !status.success() {
            bail!("ffmpeg failed making {}", out.display());
        }
        Ok(())
    };
    let base = dir.join("prores422hq-1080p25-20s.mov");
    if !base.exists() {
        eprintln!("making a 20 s 1080p25 ProRes 422 HQ source with film grain (once)...");
        let tmp = dir.join("tmp-base.mov");
        run(
            &[
                "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25:duration=20",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=20",
                "-vf", "noise=alls=12:allf=t",
                "-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le",
                "-c:a", "pcm_s24le", "-ac", "2",
            ],
            &tmp,
        )?;
        std::fs::rename(&tmp, &base)?;
    }
    if seconds == 20 {
        return Ok(base);
    }
    eprintln!("making a {seconds} s source by looping the 20 s one (once)...");
    let tmp = dir.join("tmp-long.mov");
    let loops = seconds.div_ceil(20).to_string();
    run(&["-stream_loop", &loops, "-i", base.to_str().expect("utf-8"), "-t", &seconds.to_string(), "-c", "copy"], &tmp)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// 15 s at 25 fps, 640x360 long-GOP H.264 (a probe seeks into it) with stereo PCM: three
/// 6 s chunks.
pub fn clip_15s() -> PathBuf {
    make(
        "clip-15s-h264.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=15",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=15",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
            "-c:a", "pcm_s16le", "-ac", "2",
        ],
    )
    .unwrap()
}

/// 30 s at 25 fps, 640x360 H.264 with stereo PCM: a short farm job.
pub fn clip_30s() -> PathBuf {
    make(
        "live-30s.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=30",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-ac", "2",
        ],
    )
    .unwrap()
}

/// A task message (current schema, the small ladder) as a coordinator would publish it.
pub fn task_message(job: &str, n: usize, source: &str, output: &str, part: farm_contract::task::TaskPart) -> Vec<u8> {
    serde_json::to_vec(&farm_contract::task::TaskMessage {
        schema: farm_contract::task::TASK_SCHEMA,
        job_id: job.into(),
        task_id: format!("{job}-{n}"),
        source: source.into(),
        output: output.into(),
        ladder: farm_contract::ladder::Ladder::from_json(SMALL_LADDER).unwrap(),
        part,
        review: None,
        keys: None,
        forensic_seed: None,
    })
    .unwrap()
}
