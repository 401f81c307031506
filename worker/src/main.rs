//! `worker`: the transcoding worker's command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use farm_contract::ladder::Ladder;
use farm_contract::review::{BurnIn, ReviewRequest, ToneMap};
use farm_media::job::{self, Part, Task};
use farm_media::progress::Console;

use farm_queue::Topology;
use farm_worker::consume::{self, QueueSource, ServeConfig};
use farm_storage::{open_sink, open_source, StorageArgs};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "worker", version, about = "HLS transcoding worker for post-production review")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: farm_service::logging::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Ask the worker serving in this pod to drain (the Kubernetes preStop hook): no new
    /// tasks; the task in hand finishes or is handed back
    Drain {
        /// The worker's FARM_WORKER_LISTEN address (its port is asked on loopback)
        #[arg(long, env = "FARM_WORKER_LISTEN")]
        listen: std::net::SocketAddr,
    },
    /// Transcode a source into an HLS ladder in OUTPUT_DIR (one shot).
    Transcode(TranscodeArgs),
    /// Write the playlists of OUTPUT from its part manifests (after chunked runs).
    Playlists {
        /// Folder or s3://bucket/prefix holding the segments and parts/*.json
        output: String,
        #[command(flatten)]
        s3: StorageArgs,
    },
    /// Serve tasks from RabbitMQ until SIGTERM/SIGINT (the task in hand drains first).
    Serve(ServeArgs),
    /// Print what the worker sees in a source, as JSON.
    Probe {
        /// A local path or s3://bucket/key
        source: String,
        #[command(flatten)]
        s3: StorageArgs,
    },
}


#[derive(clap::Args)]
struct ServeArgs {
    /// RabbitMQ URL
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f", hide_env_values = true, hide_default_value = true)]
    amqp_url: String,
    /// File holding the key the coordinator signs tasks with (tasks without a valid
    /// signature are dead-lettered)
    #[arg(long, env = "FARM_TASK_KEY_FILE")]
    task_key_file: PathBuf,
    /// Comma-separated locations a task's source must lie inside (as the coordinator's); empty: any
    #[arg(long, env = "FARM_ALLOWED_SOURCES", default_value = "", value_delimiter = ',')]
    allowed_sources: Vec<String>,
    /// Comma-separated locations a task's output must lie inside; empty: any
    #[arg(long, env = "FARM_ALLOWED_OUTPUTS", default_value = "", value_delimiter = ',')]
    allowed_outputs: Vec<String>,
    /// Prefix of the farm's exchanges and queues
    #[arg(long, env = "FARM_QUEUE_PREFIX", default_value = "farm")]
    queue_prefix: String,
    /// Seconds a task in hand may run on after SIGTERM before it is stopped and requeued
    #[arg(long, env = "FARM_DRAIN_SECONDS", default_value_t = 120)]
    drain_seconds: u64,
    /// Seconds after which a task is stopped and handed back for another try; keep it below
    /// RabbitMQ's consumer_timeout (30 min by default)
    #[arg(long, env = "FARM_TASK_DEADLINE_SECONDS", default_value_t = consume::DEFAULT_TASK_DEADLINE_SECONDS)]
    task_deadline_seconds: u64,
    /// Seconds a later chunk of a job waits before starting until the job is playable, when
    /// the job's first chunk runs on the same CPUs of the same host, so that it does not
    /// slow the chunk that makes the job playable (0: never)
    #[arg(long, env = "FARM_HOLD_SECONDS", default_value_t = consume::DEFAULT_HOLD_SECONDS)]
    hold_seconds: u64,
    /// x264 threads (slices) per rendition (0: as many as cores, up to 4, fewer for small rungs: one per 17 macroblock rows)
    #[arg(long, env = "FARM_X264_THREADS", default_value_t = 0)]
    x264_threads: usize,
    /// Decoder threads (0: FFmpeg decides)
    #[arg(long, env = "FARM_DECODE_THREADS", default_value_t = 0)]
    decode_threads: usize,
    /// Address for /metrics (Prometheus) and /healthz, e.g. 0.0.0.0:9464 (default: none)
    #[arg(long, env = "FARM_WORKER_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Seconds without a new frame after which the task in hand is stopped and handed
    /// back, and /healthz answers 503 (0: never)
    #[arg(long, env = "FARM_STALL_SECONDS", default_value_t = farm_worker::watchdog::DEFAULT_STALL_SECONDS)]
    stall_seconds: u64,
    /// Token that lets GET /drain come from outside the pod (`Authorization: Bearer`);
    /// without it only the pod itself (`worker drain`) can start a drain
    #[arg(long, env = "FARM_DRAIN_TOKEN", hide_env_values = true)]
    drain_token: Option<String>,
    /// TrueType font for burn-ins (Debian package fonts-dejavu-core)
    #[arg(long, env = "FARM_FONT_FILE", default_value = farm_media::transcode::picture::DEFAULT_FONT)]
    font: PathBuf,
    #[command(flatten)]
    s3: StorageArgs,
}

#[derive(clap::Args)]
struct TranscodeArgs {
    /// Camera original (MOV, MXF, MP4, TS...): a local path or s3://bucket/key
    source: String,
    /// Where segments and playlists go: a local folder (created if missing) or s3://bucket/prefix
    output: String,
    #[command(flatten)]
    s3: StorageArgs,
    /// Ladder as JSON (default: the built-in review ladder, see the README)
    #[arg(long, env = "FARM_LADDER")]
    ladder: Option<PathBuf>,
    /// Segment length in seconds (overrides the ladder's)
    #[arg(long, env = "FARM_SEGMENT_SECONDS")]
    segment_seconds: Option<f64>,
    /// Number of short leading segments (overrides the ladder's; 0: every segment is
    /// --segment-seconds long)
    #[arg(long, env = "FARM_LEAD_SEGMENTS")]
    lead_segments: Option<u32>,
    /// Encode from this time (seconds, snapped to a segment boundary): the video renditions
    /// and the audio rendition's segments of the range, as a farm's chunk task does
    #[arg(long)]
    start: Option<f64>,
    /// Encode up to this time (seconds, snapped to a segment boundary)
    #[arg(long)]
    end: Option<f64>,
    /// Encode only the audio rendition, over the whole source (as the audio task of jobs
    /// split before chunks had audio)
    #[arg(long, conflicts_with_all = ["start", "end"])]
    audio_only: bool,
    /// Rates of the rungs: fixed (the ladder's), or per-title (from the source's measured
    /// complexity: capped CRF at the ladder's quality target); overrides the ladder's
    #[arg(long, value_enum)]
    ladder_mode: Option<LadderModeArg>,
    /// Segment container (overrides the ladder's; default fmp4): fmp4 (fragmented MP4 with an init segment) or ts (MPEG-TS, for old players)
    #[arg(long, value_enum)]
    segment_format: Option<SegmentFormatArg>,
    /// Video codecs, comma-separated (overrides the ladder's): h264, or h264,hevc (an HEVC twin of every rung; needs --segment-format fmp4)
    #[arg(long, value_enum, value_delimiter = ',')]
    codecs: Option<Vec<CodecArg>>,
    /// x264 threads (slices) per rendition (0: as many as cores, up to 4, fewer for small rungs: one per 17 macroblock rows)
    #[arg(long, env = "FARM_X264_THREADS", default_value_t = 0)]
    x264_threads: usize,
    /// Decoder threads (0: FFmpeg decides)
    #[arg(long, env = "FARM_DECODE_THREADS", default_value_t = 0)]
    decode_threads: usize,
    #[command(flatten)]
    review: ReviewArgs,
}

/// What makes the ladder a review copy (see the transcoding docs).
#[derive(clap::Args)]
struct ReviewArgs {
    /// Burn into the picture, comma-separated: timecode, clip_name, frame_number
    #[arg(long, value_delimiter = ',', value_parser = parse_burn_in)]
    burn_in: Vec<BurnIn>,
    /// Visible watermark text, centred and semi-transparent (e.g. "CONFIDENTIAL - SHOW - VENDOR")
    #[arg(long)]
    watermark: Option<String>,
    /// 3D LUT in .cube format (local path or s3://bucket/key), applied before scaling
    #[arg(long)]
    lut: Option<String>,
    /// HDR (PQ, HLG) to SDR: auto tone-maps, off converts by the transfer functions alone
    #[arg(long, value_enum, default_value = "auto")]
    tone_map: ToneMapArg,
    /// Timecode of the first frame, HH:MM:SS:FF (HH:MM:SS;FF for drop-frame); default: the
    /// source's own, else 00:00:00:00
    #[arg(long)]
    start_timecode: Option<String>,
    /// TrueType font for burn-ins (Debian package fonts-dejavu-core)
    #[arg(long, env = "FARM_FONT_FILE", default_value = farm_media::transcode::picture::DEFAULT_FONT)]
    font: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LadderModeArg {
    Fixed,
    PerTitle,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SegmentFormatArg {
    Ts,
    Fmp4,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CodecArg {
    H264,
    Hevc,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ToneMapArg {
    Auto,
    Off,
}

fn parse_burn_in(text: &str) -> Result<BurnIn, String> {
    BurnIn::parse(text).ok_or_else(|| format!("{text:?} is not one of timecode, clip_name, frame_number"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    farm_service::logging::init(cli.log.log_format);
    // FFmpeg's own messages: warnings and worse only.
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Object-store clients run on this runtime; the pipeline's threads wait on it.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = runtime()?;
    match cli.command {
        Command::Transcode(args) => transcode(args, &rt),
        Command::Serve(args) => {
            let shutdown = CancellationToken::new();
            let token = shutdown.clone();
            on_signals(&rt, move || token.cancel())?;
            farm_worker::metrics::init();
            let heartbeat = std::sync::Arc::new(farm_worker::watchdog::Heartbeat::default());
            let stall = Duration::from_secs(args.stall_seconds);
            let endpoint = match args.listen {
                Some(addr) => {
                    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).with_context(|| format!("listening on {addr}"))?;
                    tracing::info!(address = %addr, "metrics and health on /metrics, /healthz");
                    // Served until the process exits: a draining worker still answers scrapes.
                    let endpoint = farm_worker::metrics::Endpoint {
                        drain: shutdown.clone(),
                        heartbeat: heartbeat.clone(),
                        stall,
                        drain_token: args.drain_token.clone(),
                    };
                    Some(rt.spawn(farm_worker::metrics::serve(listener, endpoint)))
                }
                None => None,
            };
            let config = ServeConfig {
                queue: QueueSource::Amqp(args.amqp_url),
                topology: Topology::new(&args.queue_prefix),
                s3: args.s3.settings(),
                x264_threads: args.x264_threads,
                decode_threads: args.decode_threads,
                drain: Duration::from_secs(args.drain_seconds),
                idle_poll: Duration::from_millis(250),
                task_deadline: Duration::from_secs(args.task_deadline_seconds.max(1)),
                hold: Duration::from_secs(args.hold_seconds),
                stall,
                heartbeat,
                font: args.font,
                admission: farm_worker::admit::Admission {
                    key: Some(farm_contract::signature::TaskKey::from_file(&args.task_key_file).map_err(anyhow::Error::msg)?),
                    sources: farm_storage::AllowList::parse(&args.allowed_sources)?,
                    outputs: farm_storage::AllowList::parse(&args.allowed_outputs)?,
                },
            };
            let served = rt.block_on(consume::run(config, shutdown));
            drop(endpoint);
            served
        }
        Command::Playlists { output, s3 } => {
            let sink = open_sink(&output, &s3.settings(), rt.handle()).with_context(|| format!("output {output}"))?;
            match job::publish(sink.as_ref(), None)? {
                Some(master) => println!("{}", sink.locate(&master)),
                None => anyhow::bail!("the parts in {output} do not cover the whole source yet"),
            }
            Ok(())
        }
        Command::Drain { listen } => {
            let url = format!("http://127.0.0.1:{}/drain", listen.port());
            let reply = reqwest::blocking::get(&url).with_context(|| format!("asking {url}"))?;
            anyhow::ensure!(reply.status().is_success(), "{url} answered {}", reply.status());
            print!("{}", reply.text()?);
            Ok(())
        }
        Command::Probe { source, s3 } => {
            let s = farm_media::source::open(&open_source(&source, &s3.settings(), rt.handle())?)?;
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

/// Calls `first` on the first SIGINT/SIGTERM; exits at once on the second.
/// The one shutdown path (`farm_service::shutdown`), on `rt`; `first` runs on the first signal.
fn on_signals(rt: &tokio::runtime::Runtime, first: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
    let token = rt.block_on(async { farm_service::shutdown::on_signals() })?;
    rt.spawn(async move {
        token.cancelled().await;
        first();
    });
    Ok(())
}

/// `--ladder-mode`, `--segment-format` and `--codecs` over the ladder's.
fn encoding_overrides(ladder: &mut Ladder, args: &TranscodeArgs) -> anyhow::Result<()> {
    use farm_contract::ladder::{LadderMode, SegmentFormat, VideoCodec};
    if let Some(mode) = args.ladder_mode {
        ladder.ladder_mode = match mode {
            LadderModeArg::Fixed => LadderMode::Fixed,
            LadderModeArg::PerTitle => LadderMode::PerTitle,
        };
        ladder.decision = None;
    }
    ladder.settle_segment_format(args.segment_format.map(|format| match format {
        SegmentFormatArg::Ts => SegmentFormat::Ts,
        SegmentFormatArg::Fmp4 => SegmentFormat::Fmp4,
    }));
    if let Some(codecs) = &args.codecs {
        ladder.codecs = codecs.iter().map(|c| match c {
            CodecArg::H264 => VideoCodec::H264,
            CodecArg::Hevc => VideoCodec::Hevc,
        }).collect();
    }
    ladder.validate().context("--ladder-mode, --segment-format, --codecs")?;
    Ok(())
}

/// The review settings checked against the source (as the coordinator checks a job's).
fn review(args: &TranscodeArgs, source: &farm_storage::SourceLocation, rt: &tokio::runtime::Runtime) -> anyhow::Result<(farm_contract::review::Review, Option<farm_storage::SourceLocation>)> {
    let r = &args.review;
    let request = ReviewRequest {
        burn_in: r.burn_in.clone(),
        watermark: r.watermark.clone(),
        lut: r.lut.clone(),
        tone_map: match r.tone_map {
            ToneMapArg::Auto => ToneMap::Auto,
            ToneMapArg::Off => ToneMap::Off,
        },
        start_timecode: r.start_timecode.clone(),
    };
    let info = farm_media::source::open(source).with_context(|| format!("opening {}", args.source))?.info;
    let lut = match &r.lut {
        Some(text) => {
            let location = open_source(text, &args.s3.settings(), rt.handle()).with_context(|| format!("--lut {text}"))?;
            let data = farm_media::lut::read(&location).with_context(|| format!("reading the LUT {text}"))?;
            Some((text.as_str(), location, data))
        }
        None => None,
    };
    let (review, _) = farm_media::review::resolve(&request, &args.source, &info, lut.as_ref().map(|(t, _, d)| (*t, d.as_slice())))
        .map_err(anyhow::Error::msg)?;
    Ok((review, lut.map(|(_, location, _)| location)))
}

fn transcode(args: TranscodeArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
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
        // Leading segments are never longer than the others.
        ladder.lead_seconds = ladder.lead_seconds.min(seconds);
        ladder.validate().context("--segment-seconds")?;
    }
    if let Some(count) = args.lead_segments {
        ladder.lead_segments = count;
        ladder.validate().context("--lead-segments")?;
    }
    encoding_overrides(&mut ladder, &args)?;
    let part = if args.audio_only {
        Part::Audio
    } else if args.start.is_some() || args.end.is_some() {
        Part::Video { start: args.start.unwrap_or(0.0), end: args.end, audio: true }
    } else {
        Part::Whole
    };
    let source = open_source(&args.source, &args.s3.settings(), rt.handle())?;
    let (review, lut) = review(&args, &source, rt)?;
    let task = Task {
        source,
        ladder,
        part,
        x264_threads: args.x264_threads,
        decode_threads: args.decode_threads,
        publish: true,
        job_id: None,
        review: Some(review),
        lut,
        font: args.review.font.clone(),
        keys: None,
        forensic_seed: None,
    };
    let sink = open_sink(&args.output, &args.s3.settings(), rt.handle())
        .with_context(|| format!("output {}", args.output))?;

    // First Ctrl-C / SIGTERM stops at the next frame and leaves no playlist naming a
    // missing segment; a second one exits at once.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    on_signals(rt, move || flag.store(true, Ordering::SeqCst))?;

    let progress = Console::new("transcoding");
    let started = std::time::Instant::now();
    let outcome = job::run(&task, sink.as_ref(), &progress, &cancel)
        .with_context(|| format!("transcoding {}", args.source))?;
    let secs = started.elapsed().as_secs_f64();
    let fetched = outcome.source_read.unwrap_or_default();
    tracing::info!(
        frames = outcome.frames,
        source_bytes = outcome.source_size,
        fetched_requests = fetched.requests,
        fetched_bytes = fetched.bytes,
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
