//! One task, top to bottom: open the source, fit the ladder, run the pipeline, record the
//! part, publish playlists when the job's parts are complete.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use farm_contract::ladder::{Ladder, LadderMode, AUDIO_GROUP, LOW_AUDIO_GROUP};
use farm_contract::review::Review;
use farm_contract::manifest::{PartKind, PartManifest, RenditionPart, MANIFEST_VERSION};
use farm_contract::timeline::Grid;

use crate::error::{Result, TranscodeError};
use crate::progress::Progress;
use farm_storage::Sink;
use crate::source;
use farm_storage::SourceLocation;
use farm_storage::ReadStats;
use crate::lut::{self, Cube};
use crate::transcode::picture::PictureSetup;
use crate::transcode::{self, audio, PipelinePlan, ThumbnailPlan};

/// Which part of a job a task encodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    /// Every video rendition and the audio rendition, in one pass.
    Whole,
    /// Video renditions for `[start, end)` seconds, snapped to segment boundaries, and
    /// with `audio` the audio rendition's segments of the same range.
    Video { start: f64, end: Option<f64>, audio: bool },
    /// The audio rendition over the whole source (jobs split before chunks had audio).
    Audio,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub source: SourceLocation,
    pub ladder: Ladder,
    pub part: Part,
    /// x264 threads per rendition; 0: as many as cores, up to 4, fewer for small rungs.
    pub x264_threads: usize,
    /// Decoder threads; 0 lets FFmpeg choose.
    pub decode_threads: usize,
    /// Write the playlists when this task completes the job's parts. The one-shot command
    /// does; in the farm the coordinator alone writes playlists (EVENT while the job runs,
    /// VOD at the end), so that they never go back and forth.
    pub publish: bool,
    /// The farm job this task belongs to, recorded in its part manifests.
    pub job_id: Option<String>,
    /// Colour, LUT and burn-ins; `None` for tasks split before review settings existed.
    pub review: Option<Review>,
    /// Where the review's LUT is, opened like the source.
    pub lut: Option<SourceLocation>,
    /// The font burn-ins are drawn with.
    pub font: PathBuf,
    /// Encrypted jobs: the content keys of the periods this task's range touches.
    pub keys: Option<farm_contract::task::TaskKeys>,
    /// Forensic jobs: the job's mark seed (A/B variants of every video segment).
    pub forensic_seed: Option<[u8; 32]>,
}

impl Task {
    /// The whole of `source` through `ladder` as the one-shot command runs it (playlists
    /// written, no review settings, no keys, no mark), for other settings to be set on.
    pub fn whole(source: SourceLocation, ladder: Ladder) -> Self {
        Self {
            source,
            ladder,
            part: Part::Whole,
            x264_threads: 0,
            decode_threads: 0,
            publish: true,
            job_id: None,
            review: None,
            lut: None,
            font: PathBuf::new(),
            keys: None,
            forensic_seed: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub renditions: Vec<String>,
    pub frames: u64,
    pub segments: u64,
    /// Key of the master playlist, once every part of the job is there.
    pub master: Option<String>,
    pub repeated_frames: u64,
    pub dropped_frames: u64,
    /// Size of the original, and what was fetched of it from object storage.
    pub source_size: u64,
    pub source_read: Option<ReadStats>,
}

pub fn run(task: &Task, sink: &dyn Sink, progress: &dyn Progress, cancel: &AtomicBool) -> Result<Outcome> {
    task.ladder.validate()?;
    let mut source = source::open(&task.source)?;
    let info = source.info.clone();
    let ladder = decided(&task.ladder, &mut source)?;
    let grid = Grid::new(info.rate, ladder.cuts(), ladder.gop_ms());
    let (display_w, display_h) = info.display_size();
    let renditions = ladder.fit(display_w, display_h);
    let low_audio = ladder.audio.low_group(&renditions);
    let (tracks, audio_renditions) = audio::plan(&info.audio, &ladder.audio, task.review.is_some(), low_audio);
    log_opened(task, &info, &renditions, tracks.len());
    let expected = info.frames_expected();
    let (first_segment, end_segment) = segment_range(&task.part, &grid, expected)?;
    let first_frame = grid.segment_start(first_segment);
    let end_frame = end_segment.map(|k| grid.segment_start(k));
    let with_video = task.part != Part::Audio;
    let with_audio = match task.part {
        Part::Whole | Part::Audio => true,
        Part::Video { audio, .. } => audio,
    };
    let audio_tracks: &[usize] = if with_audio { &tracks } else { &[] };
    let audio_end = expected.map(|f| grid.samples_at_frame(f, ladder.audio.sample_rate));
    let cube = read_lut(task)?;
    let smallest_height = renditions.iter().map(|r| r.height).min().unwrap_or(display_h);
    let picture = PictureSetup::prepare(task.review.clone(), cube.as_ref(), task.font.clone(), first_frame, smallest_height)
        .map_err(|e| TranscodeError::Picture(e.to_string()))?;
    let sealer = task
        .keys
        .as_ref()
        .map(crate::transcode::seal::Sealer::from_task)
        .transpose()
        .map_err(TranscodeError::Keys)?;
    let plan = PipelinePlan {
        grid,
        renditions: if with_video { &renditions } else { &[] },
        x264: &ladder.x264,
        first_frame,
        end_frame,
        audio_tracks,
        audio_renditions: &audio_renditions,
        audio: &ladder.audio,
        audio_range: audio::AudioRange::new(grid.cuts, ladder.audio.sample_rate, first_segment, end_segment, audio_end),
        x264_threads: task.x264_threads,
        picture: &picture,
        thumbnails: thumbnail_plan(task, &grid, first_frame, end_frame, (display_w, display_h)),
        decode_threads: task.decode_threads,
        frames_total: match (end_frame, expected) {
            (Some(end), _) => Some(end - first_frame),
            (None, Some(total)) => Some(total.saturating_sub(first_frame)),
            (None, None) => None,
        },
        sealer: sealer.as_ref(),
        segment_format: ladder.segment_format(),
        forensic_seed: task.forensic_seed.as_ref(),
    };
    let mut out = transcode::run(&mut source, &plan, sink, progress, cancel)?;
    let low_rungs = ladder.audio.low_rungs(&renditions);
    if !low_rungs.is_empty() && !tracks.is_empty() {
        for part in &mut out.video {
            part.group = Some(if low_rungs.contains(&part.name) { LOW_AUDIO_GROUP } else { AUDIO_GROUP }.to_string());
        }
    }
    progress.finish();

    let written = out.video.iter().map(|r| r.segments.len() as u64).max().unwrap_or(0);
    // The range this task covers: its video segments (a chunk's audio part covers the same
    // range), or for the audio over the whole source, its audio segments.
    let (covered, is_last) = match out.audio.first() {
        Some(audio) if !with_video => (0..audio.segments.len() as u64, true),
        _ => (first_segment..first_segment + written, end_segment.is_none() || out.stats.hit_end_of_source),
    };
    let write_part = |kind: PartKind, audio_expected: bool, renditions: Vec<RenditionPart>| {
        let video = kind == PartKind::Video;
        let part = PartManifest {
            version: MANIFEST_VERSION,
            kind,
            grid,
            first_segment: covered.start,
            end_segment: covered.end,
            is_last,
            audio_expected,
            renditions,
            job_id: task.job_id.clone(),
            review: task.review.clone().filter(|_| video),
            colour: out.stats.colour.clone().filter(|_| video),
            sprites: if video { out.sprites.clone() } else { Vec::new() },
            variant_b: if video { out.variant_b.clone() } else { Vec::new() },
        };
        put_json(sink, &PartManifest::key(kind, covered.start, covered.end), &part)
    };
    let mut segments = 0;
    if with_video {
        segments += written * out.video.len() as u64;
        write_part(PartKind::Video, !tracks.is_empty(), out.video.clone())?;
    }
    if !out.audio.is_empty() {
        segments += out.audio.iter().map(|a| a.segments.len() as u64).sum::<u64>();
        write_part(PartKind::Audio, true, out.audio.clone())?;
    }
    let master = if task.publish { publish(sink, task.job_id.as_deref())? } else { None };
    Ok(Outcome {
        renditions: out.video.iter().map(|r| r.name.clone()).chain(out.audio.iter().map(|a| a.name.clone())).collect(),
        frames: out.stats.frames,
        segments,
        master,
        repeated_frames: out.stats.repeated,
        dropped_frames: out.stats.dropped,
        source_size: source.size,
        source_read: source.read_stats(),
    })
}

fn log_opened(task: &Task, info: &source::SourceInfo, renditions: &[farm_contract::ladder::FittedRendition], audio_tracks: usize) {
    let (display_w, display_h) = info.display_size();
    tracing::info!(
        source = %task.source,
        container = %info.container,
        codec = %info.codec,
        size = format!("{}x{}", info.width, info.height),
        display = format!("{display_w}x{display_h}"),
        fps = format!("{}/{}", info.rate.num, info.rate.den),
        interlaced = info.interlaced,
        rotation = info.rotation,
        audio_tracks,
        renditions = ?renditions.iter().map(|r| format!("{} {}x{}", r.name, r.width, r.height)).collect::<Vec<_>>(),
        "source opened"
    );
}

/// The segments `[first, end)` the task covers (end `None`: to the source's end), snapped
/// to the grid; an empty range, or one starting past the source's end, is refused.
fn segment_range(part: &Part, grid: &Grid, expected: Option<u64>) -> Result<(u64, Option<u64>)> {
    let (first_segment, end_segment) = match *part {
        Part::Whole | Part::Audio => (0, None),
        Part::Video { start, end, .. } => {
            if end.is_some_and(|e| e <= start) || start < 0.0 {
                return Err(TranscodeError::Range(format!("[{start}, {end:?}) is empty")));
            }
            grid.snap_range(start, end)
        }
    };
    let first_frame = grid.segment_start(first_segment);
    if let Some(total) = expected {
        if first_segment > 0 && first_frame >= total {
            return Err(TranscodeError::Range(format!(
                "the range starts at frame {first_frame}, after the source's end ({total} frames)"
            )));
        }
    }
    Ok((first_segment, end_segment))
}

/// The thumbnails whose frames lie in this task's range, and the poster if it does.
fn thumbnail_plan(task: &Task, grid: &Grid, first: u64, end: Option<u64>, display: (u32, u32)) -> Option<ThumbnailPlan> {
    let review = task.review.as_ref()?;
    let spec = review.thumbnails?;
    let end = end.unwrap_or(u64::MAX / 4);
    let poster = (first..end).contains(&review.poster_frame).then(|| {
        let (w, h) = transcode::thumbnails::poster_size(display.0, display.1);
        (review.poster_frame, w, h)
    });
    Some(ThumbnailPlan { spec, wanted: spec.in_frames(first, end, grid.rate), poster })
}

/// The job's LUT, if it names one: the bytes the coordinator checked (same SHA-256), parsed.
fn read_lut(task: &Task) -> Result<Option<Cube>> {
    let (Some(lut_ref), Some(location)) = (task.review.as_ref().and_then(|r| r.lut.as_ref()), task.lut.as_ref()) else {
        return Ok(None);
    };
    let path = location.to_string();
    let data = lut::read(location).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
            TranscodeError::Lut { path: path.clone(), detail: source.to_string() }
        }
        _ => TranscodeError::LutIo { path: path.clone(), source },
    })?;
    let digest = lut::sha256_hex(&data);
    if digest != lut_ref.sha256 {
        return Err(TranscodeError::Lut {
            path,
            detail: format!("changed since the job was submitted (SHA-256 {digest}, the job's is {}): every chunk must apply the same LUT", lut_ref.sha256),
        });
    }
    Cube::parse(&data).map(Some).map_err(|e| TranscodeError::Lut { path, detail: e.to_string() })
}

/// The task's ladder with its per-title decision: a farm's tasks carry the job's; a task
/// without one (the command line's) measures the source itself, which gives every chunk
/// of a source the same decision, the probe being deterministic.
fn decided<'a>(ladder: &'a Ladder, source: &mut source::Source) -> Result<std::borrow::Cow<'a, Ladder>> {
    if ladder.ladder_mode != LadderMode::PerTitle || ladder.decision.is_some() {
        return Ok(std::borrow::Cow::Borrowed(ladder));
    }
    let complexity = crate::complexity::measure(source, ladder)?;
    // The samples left the demuxer mid-file: the task reads from a fresh start.
    *source = source::open(&source.location.clone())?;
    let (w, h) = source.info.display_size();
    let mut decided = ladder.clone();
    decided.decide(w, h, &complexity);
    tracing::info!(complexity_kbps = complexity.kbps, probe_seconds = complexity.seconds, decision = ?decided.decision, "per-title ladder decided");
    Ok(std::borrow::Cow::Owned(decided))
}

/// Writes the playlists if the parts in `sink` cover the whole job; returns the master's key.
pub fn publish(sink: &dyn Sink, job_id: Option<&str>) -> Result<Option<String>> {
    farm_hls::publish::publish(sink, job_id).map_err(|e| match e {
        farm_hls::publish::PublishError::Storage { key, source } => TranscodeError::Output { key, source },
        farm_hls::publish::PublishError::Assemble(m) => TranscodeError::Assemble(m),
    })
}

fn put_json(sink: &dyn Sink, key: &str, value: &PartManifest) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).expect("manifests serialise");
    sink.put(key, &data).map_err(|source| TranscodeError::Output { key: key.into(), source })
}
