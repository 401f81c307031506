//! `worker`: the transcoding worker's command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use farm_shared::ladder::Ladder;
use farm_worker::job::{self, Part, Task};
use farm_worker::progress::Console;
use farm_worker::sink::{LocalDir, Sink};
use farm_worker::source::SourceLocation;

#[derive(Parser)]
#[command(name = "worker", version, about = "HLS transcoding worker for post-production review")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transcode a source into an HLS ladder in OUTPUT_DIR (one shot).
    Transcode(TranscodeArgs),
    /// Write the playlists of OUTPUT_DIR from its part manifests (after chunked runs).
    Playlists {
        /// Folder holding the segments and parts/*.json
        output_dir: PathBuf,
    },
    /// Print what the worker sees in a source, as JSON.
    Probe { source: PathBuf },
}

#[derive(clap::Args)]
struct TranscodeArgs {
    /// Camera original (MOV, MXF, MP4, TS...)
    source: PathBuf,
    /// Folder for segments and playlists; created if missing
    output_dir: PathBuf,
    /// Ladder as JSON (default: the built-in review ladder, see the README)
    #[arg(long, env = "FARM_LADDER")]
    ladder: Option<PathBuf>,
    /// Segment length in seconds (overrides the ladder's)
    #[arg(long, env = "FARM_SEGMENT_SECONDS")]
    segment_seconds: Option<f64>,
    /// Encode video from this time (seconds, snapped to a segment boundary)
    #[arg(long)]
    start: Option<f64>,
    /// Encode video up to this time (seconds, snapped to a segment boundary)
    #[arg(long)]
    end: Option<f64>,
    /// Encode only the audio rendition (for jobs split into video ranges)
    #[arg(long, conflicts_with_all = ["start", "end"])]
    audio_only: bool,
    /// x264 threads per rendition (0: x264 decides)
    #[arg(long, env = "FARM_X264_THREADS", default_value_t = 0)]
    x264_threads: usize,
    /// Decoder threads (0: FFmpeg decides)
    #[arg(long, env = "FARM_DECODE_THREADS", default_value_t = 0)]
    decode_threads: usize,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // FFmpeg's own messages: warnings and worse only.
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Transcode(args) => transcode(args),
        Command::Playlists { output_dir } => {
            let sink = LocalDir::new(&output_dir)?;
            match job::publish(&sink)? {
                Some(master) => println!("{}", sink.locate(&master)),
                None => anyhow::bail!("the parts in {} do not cover the whole source yet", output_dir.display()),
            }
            Ok(())
        }
        Command::Probe { source } => {
            let s = farm_worker::source::open(&SourceLocation::Local(source))?;
            let i = &s.info;
            let json = serde_json::json!({
                "container": i.container, "codec": i.codec, "width": i.width, "height": i.height,
                "sar": [i.sar.0, i.sar.1], "rotation": i.rotation, "display": i.display_size(),
                "frame_rate": [i.rate.num, i.rate.den], "interlaced": i.interlaced,
                "frames": i.frames_expected(), "duration": i.duration_seconds,
                "audio": i.audio.iter().map(|a| serde_json::json!({
                    "stream": a.index, "channels": a.channels, "sample_rate": a.sample_rate, "codec": a.codec,
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(())
        }
    }
}

fn transcode(args: TranscodeArgs) -> anyhow::Result<()> {
    let mut ladder = match &args.ladder {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read ladder {}", path.display()))?;
            Ladder::from_json(&text).with_context(|| format!("ladder {}", path.display()))?
        }
        None => Ladder::default(),
    };
    if let Some(seconds) = args.segment_seconds {
        ladder.segment_seconds = seconds;
        // Keep the keyframe interval dividing the segment: 2 s where it can, else the segment.
        if (seconds / ladder.gop_seconds).fract().abs() > 1e-9 {
            ladder.gop_seconds = seconds;
        }
        ladder.validate().context("--segment-seconds")?;
    }
    let part = if args.audio_only {
        Part::Audio
    } else if args.start.is_some() || args.end.is_some() {
        Part::Video { start: args.start.unwrap_or(0.0), end: args.end }
    } else {
        Part::Whole
    };
    let task = Task {
        source: SourceLocation::Local(args.source.clone()),
        ladder,
        part,
        x264_threads: args.x264_threads,
        decode_threads: args.decode_threads,
    };
    let sink = LocalDir::new(&args.output_dir)
        .with_context(|| format!("cannot create {}", args.output_dir.display()))?;

    // First Ctrl-C / SIGTERM stops at the next frame and leaves no playlist naming a
    // missing segment; a second one exits at once.
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::spawn(move || {
            rt.block_on(async {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
                for _ in 0..2 {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    if cancel.swap(true, Ordering::SeqCst) {
                        eprintln!("second signal: exiting now");
                        std::process::exit(130);
                    }
                    eprintln!("stopping after the current frame (signal again to exit now)");
                }
            });
        });
    }

    let progress = Console::new("transcoding");
    let started = std::time::Instant::now();
    let outcome = job::run(&task, &sink, &progress, &cancel)
        .with_context(|| format!("transcoding {}", args.source.display()))?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        frames = outcome.frames,
        segments = outcome.segments,
        renditions = ?outcome.renditions,
        repeated_frames = outcome.repeated_frames,
        dropped_frames = outcome.dropped_frames,
        seconds = format!("{secs:.1}"),
        "done"
    );
    match outcome.master {
        Some(master) => println!("{}", sink.locate(&master)),
        None => println!("part written to {}; playlists follow when every part is there", sink.locate("parts/")),
    }
    Ok(())
}
