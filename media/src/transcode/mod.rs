//! The transcoding pipeline of one task: decode once, fan out to every rendition.
//!
//! ```text
//! source -> decode (this thread) -+-> video rendition 1 thread: scale -> x264 -> segment -> sink
//!                                 +-> video rendition N thread: ...
//!                                 +-> audio thread: mix -> AAC -> segment -> sink
//! ```
//! Channels between the stages are bounded, so memory stays flat whatever the source's
//! length; each rendition encoder runs on its own thread, so the cores stay busy even
//! where one encoder would leave them idle.

pub mod audio;
pub mod audio_in;
pub mod audio_plan;
pub mod decode;
pub mod encode;
pub mod filter;
pub mod fmp4;
pub mod lut_kernel;
pub mod mux;
pub mod picture;
pub mod seal;
pub mod seek;
pub mod segment;
pub mod tails;
pub mod thumbnails;
pub mod video;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Duration;

use farm_contract::ladder::{AudioSpec, FittedRendition, X264Settings};
use farm_contract::manifest::{RenditionPart, SegmentRecord};
use farm_contract::timeline::Grid;

use crate::error::{Result, TranscodeError};
use crate::progress::Progress;
use farm_storage::Sink;
use crate::source::Source;

/// Pictures in flight per rendition. Small: decoded 4:2:2 10-bit 1080p frames are 8 MB,
/// and they are shared between renditions, not copied.
const VIDEO_QUEUE: usize = 4;
const AUDIO_QUEUE: usize = 256;

pub struct PipelinePlan<'a> {
    pub grid: Grid,
    pub renditions: &'a [FittedRendition],
    pub x264: &'a X264Settings,
    pub first_frame: u64,
    pub end_frame: Option<u64>,
    /// Stream indices of the audio tracks to decode; empty for no audio rendition.
    pub audio_tracks: &'a [usize],
    /// The audio renditions made of them (inputs index `audio_tracks`).
    pub audio_renditions: &'a [audio::AudioRendition],
    pub audio: &'a AudioSpec,
    /// The audio samples this task encodes and the audio segments it writes.
    pub audio_range: audio::AudioRange,
    pub x264_threads: usize,
    pub decode_threads: usize,
    /// The picture chain (colour, LUT, burn-ins) before the renditions scale.
    pub picture: &'a picture::PictureSetup,
    /// Scrubbing thumbnails and poster of this task's frames, when the job has them.
    pub thumbnails: Option<ThumbnailPlan>,
    /// Frames this task will produce, for progress (estimate).
    pub frames_total: Option<u64>,
    /// Encrypted jobs: the task's content keys; `None` writes plain segments.
    pub sealer: Option<&'a seal::Sealer>,
    /// The segments' container.
    pub segment_format: farm_contract::ladder::SegmentFormat,
    /// Forensic jobs: the job's mark seed; every video rendition is encoded as variant A
    /// and as variant B.
    pub forensic_seed: Option<&'a [u8; 32]>,
}

/// x264 threads per rendition. An explicit setting applies to every rendition. By default
/// each encoder gets as many threads as there are cores, up to 4: the renditions already
/// run side by side, and x264's own default (1.5 x cores, plus lookahead threads, for
/// every encoder) measured 6 % slower on 2 cores (see the README's benchmark notes). The
/// threads are slices, and a slice shorter than [`MIN_SLICE_ROWS`] macroblock rows costs
/// quality: no prediction across slices, contexts reset at each. So a small rung gets fewer
/// (360p and 234p one): on the quality benchmark's `fast-pan` at 160 kb/s, 416x234 with
/// 1, 2 and 4 slices scored VMAF 29.1, 23.6 and 20.0 (5th-percentile frame 21.4, 14.6,
/// 9.8); 640x360 at 800 kb/s 75.2, 74.6 and 73.5. The largest rung sets the wall time.
fn x264_threads(plan: &PipelinePlan, rendition: &FittedRendition) -> usize {
    if plan.x264_threads > 0 {
        return plan.x264_threads;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    default_slices(cores, rendition.height)
}

/// Slices for a rendition `height` pixels high on `cores` cores.
fn default_slices(cores: usize, height: u32) -> usize {
    let rows = height.div_ceil(16) as usize;
    cores.clamp(1, 4).min(rows / MIN_SLICE_ROWS).max(1)
}

/// The fewest macroblock rows an x264 slice gets by default: 1080p takes 4 slices, 720p
/// and 540p 2, smaller rungs 1.
const MIN_SLICE_ROWS: usize = 17;

/// Which thumbnails (and whether the poster) a task writes.
#[derive(Debug, Clone)]
pub struct ThumbnailPlan {
    pub spec: farm_contract::thumbnails::Thumbnails,
    pub wanted: std::ops::Range<u64>,
    pub poster: Option<(u64, u32, u32)>,
}

pub struct PipelineOutput {
    pub video: Vec<RenditionPart>,
    /// Forensic jobs: the video renditions' variant B (`video` holds variant A).
    pub variant_b: Vec<RenditionPart>,
    pub audio: Vec<RenditionPart>,
    /// Keys of the thumbnail sprites written.
    pub sprites: Vec<String>,
    pub stats: decode::DecodeStats,
}

pub fn run(
    source: &mut Source,
    plan: &PipelinePlan,
    sink: &dyn Sink,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<PipelineOutput> {
    let (audio_decoders, audio_inputs) = decode::open_audio(source, plan.audio_tracks)?;
    let decode_video = !plan.renditions.is_empty();
    let counters: Vec<AtomicU64> = plan.renditions.iter().map(|_| AtomicU64::new(0)).collect();
    let audio_samples: Vec<AtomicU64> = plan.audio_renditions.iter().map(|_| AtomicU64::new(0)).collect();
    let finished = AtomicBool::new(false);
    // Set before the stages see the end of their input when it is the end of the range:
    // a stage whose input stops otherwise writes no partial last segment.
    let input_complete = AtomicBool::new(false);
    let on_segment = |record: &SegmentRecord| progress.segment(record);

    std::thread::scope(|scope| {
        // However this closure ends (a stage's panic included), the progress thread stops,
        // so the scope can end: before, a panicking encoder left it reporting forever.
        let _finished = SetOnDrop(&finished);
        let output = segment::Output { sink, on_segment: &on_segment, sealer: plan.sealer, format: plan.segment_format };
        let (mut video_tx, jobs) = video_jobs(plan, output, &counters, &input_complete);
        let mut video_threads = Vec::new();
        for (job, rx) in jobs {
            let name = job.rendition.name.clone();
            let handle = std::thread::Builder::new()
                .name(format!("encode-{name}"))
                .spawn_scoped(scope, move || video::run(job, rx))
                .expect("spawn encoder thread");
            video_threads.push(handle);
        }
        let thumbnail_thread = plan.thumbnails.clone().filter(|_| decode_video).map(|t| {
            let (tx, rx) = sync_channel(VIDEO_QUEUE);
            video_tx.push(tx);
            let rate = plan.grid.rate;
            let job = thumbnails::ThumbnailJob { spec: t.spec, rate, wanted: t.wanted, poster: t.poster, sink, input_complete: &input_complete };
            std::thread::Builder::new()
                .name("thumbnails".into())
                .spawn_scoped(scope, move || thumbnails::run(job, rx))
                .expect("spawn thumbnail thread")
        });
        let mut audio_routes = Vec::new();
        let mut audio_threads = Vec::new();
        if !audio_inputs.is_empty() {
            for (rendition, encoded) in plan.audio_renditions.iter().zip(&audio_samples) {
                let (tx, rx) = sync_channel(AUDIO_QUEUE);
                audio_routes.push(decode::AudioRoute { tx, inputs: rendition.inputs.clone() });
                let inputs = rendition.inputs.iter().map(|&i| audio_inputs[i]).collect();
                let input_complete = &input_complete;
                let job = audio::AudioJob { rendition, inputs, cuts: plan.grid.cuts, range: plan.audio_range, output, encoded, input_complete };
                let handle = std::thread::Builder::new()
                    .name(format!("encode-{}", rendition.name))
                    .spawn_scoped(scope, move || audio::run(job, rx))
                    .expect("spawn audio thread");
                audio_threads.push(handle);
            }
        }
        // Progress: the slowest rendition decides, audio counted in frames.
        scope.spawn(|| report_progress(plan, &counters, &audio_samples, &finished, progress));

        let request = decode::DecodeRequest {
            picture: plan.picture,
            first_frame: plan.first_frame,
            end_frame: plan.end_frame,
            decode_video,
            threads: plan.decode_threads,
            sample: false,
            audio_from: (!plan.audio_tracks.is_empty())
                .then(|| plan.audio_range.feed_start as f64 / f64::from(plan.audio.sample_rate)),
            audio_until: plan.audio_range.feed_end.map(|end| end as f64 / f64::from(plan.audio.sample_rate)),
        };
        let outputs = decode::Outputs { video: video_tx, audio: audio_routes };
        let decoded = decode::run(source, &request, audio_decoders, &outputs, cancel);
        input_complete.store(decoded.is_ok(), Ordering::SeqCst);
        drop(outputs); // the encoders see the end of their input

        // A stage that stopped because another failed reports `Cancelled`: report the cause.
        let (encoded, audio_parts, sprites, mut first_error) = collect(video_threads, audio_threads, thumbnail_thread);
        finished.store(true, Ordering::Relaxed);
        // A decode error caused by a failed encoder (closed channel) is reported as the
        // encoder's error; a real decode error wins otherwise.
        let stats = match decoded {
            Ok(stats) => stats,
            Err(TranscodeError::Cancelled) if first_error.is_some() && !cancel.load(Ordering::Relaxed) => {
                return Err(first_error.take().expect("checked"));
            }
            Err(e) => return Err(e),
        };
        if let Some(e) = first_error {
            return Err(e);
        }
        let (video_parts, variant_b) = encoded.into_iter().map(|e| (e.part, e.variant_b)).unzip::<_, _, Vec<_>, Vec<_>>();
        let variant_b = variant_b.into_iter().flatten().collect();
        Ok(PipelineOutput { video: video_parts, variant_b, audio: audio_parts, sprites, stats })
    })
}

/// One encoder job per rendition with its input. The largest rendition scales from the
/// decoded picture and hands its 8-bit 4:2:0 picture on to the smaller ones, which scale
/// from that: cheaper than scaling every rung from 10-bit 4:2:2 (about 1.3 CPU-s less per
/// 20 s of 1080p, measured). Returns the decoder's senders (to the largest) and the jobs.
#[allow(clippy::type_complexity)]
fn video_jobs<'a>(
    plan: &'a PipelinePlan,
    output: segment::Output<'a>,
    counters: &'a [AtomicU64],
    input_complete: &'a AtomicBool,
) -> (Vec<SyncSender<ffmpeg_next::frame::Video>>, Vec<(video::VideoJob<'a>, Receiver<ffmpeg_next::frame::Video>)>) {
    let (mut video_tx, mut video_rx): (Vec<_>, Vec<_>) = plan.renditions.iter().map(|_| sync_channel(VIDEO_QUEUE)).unzip();
    let cascade = video_tx.split_off(1.min(video_tx.len()));
    let mut forward = Some(cascade);
    let mut jobs = Vec::new();
    for (rendition, encoded) in plan.renditions.iter().zip(counters) {
        let job = video::VideoJob {
            forward: forward.take().unwrap_or_default(),
            rendition,
            x264: plan.x264,
            grid: plan.grid,
            threads: x264_threads(plan, rendition),
            output,
            encoded,
            input_complete,
            bt709: plan.picture.review.is_some(),
            mark: plan.forensic_seed,
        };
        jobs.push((job, video_rx.remove(0)));
    }
    (video_tx, jobs)
}

/// Reports frames done every 250 ms until `finished`: the slowest rendition's count (with
/// the audio's, in frames, for a task that opens the timeline).
fn report_progress(plan: &PipelinePlan, counters: &[AtomicU64], audio_samples: &[AtomicU64], finished: &AtomicBool, progress: &dyn Progress) {
    let rate = plan.grid.rate.as_f64();
    let sample_rate = f64::from(plan.audio.sample_rate);
    loop {
        let video_done = counters.iter().map(|c| c.load(Ordering::Relaxed)).min();
        let audio_done = (!plan.audio_tracks.is_empty())
            .then(|| audio_samples.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0))
            .map(|samples| (samples as f64 / sample_rate * rate) as u64);
        let done = match (video_done, audio_done) {
            (Some(v), Some(a)) if plan.first_frame == 0 => v.min(a),
            (Some(v), _) => v,
            (None, Some(a)) => a,
            (None, None) => 0,
        };
        progress.frames(done, plan.frames_total);
        if finished.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

type Stage<'a, T = RenditionPart> = std::thread::ScopedJoinHandle<'a, Result<T>>;

/// The encoders' parts, the sprites written, and the first error that is not a stage
/// stopping because another one failed.
#[allow(clippy::type_complexity)]
fn collect(
    video: Vec<Stage<'_, video::Encoded>>,
    audio: Vec<Stage<'_>>,
    thumbnails: Option<Stage<'_, Vec<String>>>,
) -> (Vec<video::Encoded>, Vec<RenditionPart>, Vec<String>, Option<TranscodeError>) {
    let mut errors: Vec<TranscodeError> = Vec::new();
    let video_parts = joined(video, "video encoding", &mut errors);
    let audio_parts = joined(audio, "audio encoding", &mut errors);
    let sprites = match thumbnails.map(|h| join(h, "thumbnails")) {
        Some(Ok(sprites)) => sprites,
        Some(Err(e)) => {
            errors.push(e);
            Vec::new()
        }
        None => Vec::new(),
    };
    (video_parts, audio_parts, sprites, first_cause(errors))
}

/// What `handles` returned, their errors added to `errors`.
fn joined<T>(handles: Vec<Stage<'_, T>>, stage: &str, errors: &mut Vec<TranscodeError>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles {
        match join(handle, stage) {
            Ok(part) => out.push(part),
            Err(e) => errors.push(e),
        }
    }
    out
}

/// The first error that is not a stage stopping because another one failed.
fn first_cause(mut errors: Vec<TranscodeError>) -> Option<TranscodeError> {
    let cause = errors.iter().position(|e| !matches!(e, TranscodeError::Cancelled)).unwrap_or(0);
    (!errors.is_empty()).then(|| errors.swap_remove(cause))
}

/// Sets its flag when dropped, on return and on unwinding alike.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A stage's result; a panic becomes a retryable error instead of taking the task down.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T>>, stage: &str) -> Result<T> {
    handle.join().unwrap_or_else(|payload| Err(TranscodeError::panicked(stage, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_rungs_encode_in_one_slice_and_large_ones_in_up_to_four() {
        let ladder = [1080, 720, 540, 360, 234];
        let slices = |cores| ladder.map(|h| default_slices(cores, h));
        assert_eq!(slices(8), [4, 2, 2, 1, 1]);
        assert_eq!(slices(2), [2, 2, 2, 1, 1]);
        assert_eq!(slices(1), [1; 5]);
        assert_eq!(default_slices(16, 2160), 4);
    }

    /// Issue 14, defect 5: a panicking encoder left the pipeline's progress thread running
    /// forever, so the task never ended while it kept reporting progress.
    #[test]
    fn a_panicking_stage_fails_the_pipeline_and_stops_its_progress_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let finished = AtomicBool::new(false);
            let result: Result<()> = std::thread::scope(|scope| {
                let _finished = SetOnDrop(&finished);
                scope.spawn(|| {
                    while !finished.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                });
                let stage = scope.spawn(|| -> Result<()> { panic!("corrupt frame") });
                join(stage, "video encoding")
            });
            let _ = tx.send(result);
        });
        let result = rx.recv_timeout(Duration::from_secs(10)).expect("the pipeline ended");
        match result {
            Err(e @ TranscodeError::Panicked { .. }) => {
                assert!(e.is_retryable());
                assert!(e.to_string().contains("video encoding stage crashed: corrupt frame"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
}
