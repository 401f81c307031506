//! Accepting a job: the request checked at the boundary, its source probed, its tasks planned.
//!
//! Takes the raw request (content type and body); hands on a [`NewJob`] (the job row, its
//! tasks and ladder) for dispatching (`dispatch.rs`), or an [`ApiError`] that names the problem:
//! 415 for a body that is not JSON (a web page cannot POST a job as a "simple" request),
//! 400 for a malformed request or location (`..` included), 403 for a location outside the
//! allow-lists (the same answer whether a path outside exists or not), 409 when a live job
//! already writes the output, 422 for a source that is not usable media or a request over
//! the limits, 503 when storage cannot be reached.

use axum::http::StatusCode;
use farm_contract::ladder::per_title::Complexity;
use farm_contract::ladder::{Ladder, LadderMode, SegmentFormat, VideoCodec};
use farm_contract::review::{BurnIn, Review, ReviewRequest, ToneMap};
use farm_contract::task::{Priority, TaskPart};
use farm_contract::timeline::Grid;
use farm_media::source::SourceInfo;
use farm_storage::Location;
use serde::Deserialize;

use crate::app::{bad, internal, ApiError, AppState};
use crate::config::{Allowed, Limits};
use crate::db::{Job, State, Task};
use crate::live::JobPlan;
use farm_hls::playlist::live::LiveAudio;
use crate::probe::ProbeError;
use crate::split;

/// A job: a source, where its ladder goes, and how.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// `s3://bucket/key`, `swift://container/key` or a path the workers can read, inside
    /// `FARM_ALLOWED_SOURCES`.
    pub source: String,
    /// `s3://bucket/prefix`, `swift://container/prefix` or a folder, inside
    /// `FARM_ALLOWED_OUTPUTS`.
    pub output: String,
    #[serde(default)]
    pub ladder: Option<Ladder>,
    /// `fixed` or `per_title` (rates from the source's measured complexity); overrides the
    /// ladder's (default `fixed`).
    #[serde(default)]
    pub ladder_mode: Option<LadderMode>,
    /// `fmp4` (fragmented MP4, CMAF, with an init segment per rendition) or `ts` (MPEG-TS,
    /// for old players); overrides the ladder's (default `fmp4`).
    #[serde(default)]
    pub segment_format: Option<SegmentFormat>,
    /// `["h264"]`, or `["h264", "hevc"]` (an HEVC twin of every rung, fMP4 only);
    /// overrides the ladder's (default `["h264"]`).
    #[serde(default)]
    pub codecs: Option<Vec<VideoCodec>>,
    #[serde(default)]
    pub priority: Option<Priority>,
    /// The same key again answers the job it made (1 to 200 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
    /// Burnt into the picture: SMPTE timecode, the clip's name, the frame number.
    #[serde(default)]
    pub burn_in: Vec<BurnIn>,
    /// Visible watermark text, centred and semi-transparent (1 to 120 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 120)]
    pub watermark: Option<String>,
    /// A `.cube` 3D LUT (`s3://bucket/key`, `swift://container/key` or a path), inside `FARM_ALLOWED_SOURCES`,
    /// applied before scaling; a malformed LUT is refused naming the line.
    #[serde(default)]
    pub lut: Option<String>,
    /// HDR (PQ, HLG) to SDR: `auto` tone-maps (default), `off` converts without.
    #[serde(default)]
    pub tone_map: Option<ToneMap>,
    /// Timecode of the first frame, `HH:MM:SS:FF` or `HH:MM:SS;FF` (drop-frame);
    /// default: the source's own, else 00:00:00:00.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{2}:[0-5][0-9]:[0-5][0-9][:;][0-9]{2}$")]
    pub start_timecode: Option<String>,
    /// Forensic A/B watermarking: every video segment after the first encoded twice, as
    /// variants A and B with different invisible marks, and every share's playlists
    /// choosing A or B per segment by its own code word, so that a leaked copy can be
    /// traced to its share (`coordinator trace`). Without a `ladder`, 2 s segments (one
    /// mark position each). Encrypted jobs only (`FARM_MASTER_KEY_FILE`); default false.
    #[serde(default)]
    pub forensic_watermark: bool,
}

/// A job ready to be stored and dispatched.
pub struct NewJob {
    pub job: Job,
    pub tasks: Vec<Task>,
    pub ladder: Ladder,
    /// Wrapped content keys by key period (none without a master key).
    pub keys: crate::keys::NewKeys,
}

/// The review settings checked against the source: the LUT (allowed, readable, well
/// formed: 403, 422 naming the line, 503), burn-in text, start timecode at the source's rate.
pub async fn review(app: &AppState, req: &JobRequest, info: &SourceInfo) -> Result<Review, ApiError> {
    let unprocessable = |m: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m);
    let lut = match &req.lut {
        Some(text) => {
            let location = Location::parse(text).map_err(|e| bad(format!("lut: {e}")))?;
            app.allowed.sources.check("LUT", &location).map_err(|e| ApiError(StatusCode::FORBIDDEN, e.to_string()))?;
            let opened = farm_storage::open_source(text, &app.config.s3(), &tokio::runtime::Handle::current()).map_err(|e| bad(format!("lut: {e}")))?;
            let data = tokio::task::spawn_blocking(move || farm_media::lut::read(&opened))
                .await
                .map_err(internal)?
                .map_err(|e| match farm_storage::error::kind_of(&e) {
                    kind if kind.is_transient() => ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("lut {text}: storage unavailable; retry later")),
                    _ => unprocessable(format!("lut {text}: {e}")),
                })?;
            Some((text.as_str(), data))
        }
        None => None,
    };
    let request = ReviewRequest {
        burn_in: req.burn_in.clone(),
        watermark: req.watermark.clone(),
        lut: req.lut.clone(),
        tone_map: req.tone_map.unwrap_or_default(),
        start_timecode: req.start_timecode.clone(),
    };
    let lut = lut.as_ref().map(|(t, d)| (*t, d.as_slice()));
    farm_media::review::resolve(&request, &req.source, info, lut).map(|(review, _)| review).map_err(unprocessable)
}

/// The request body, if it is JSON and well formed.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<JobRequest, ApiError> {
    let json = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError(StatusCode::UNSUPPORTED_MEDIA_TYPE, "job requests must be sent as Content-Type: application/json".into()));
    }
    let req: JobRequest = serde_json::from_slice(body).map_err(|e| bad(format!("invalid job request: {e}")))?;
    if let Some(key) = &req.idempotency_key {
        if key.is_empty() || key.len() > 200 {
            return Err(bad("idempotency_key must be 1-200 characters"));
        }
    }
    Ok(req)
}

/// The source and output, parsed, normalised and inside the allow-lists.
pub fn locations(allowed: &Allowed, req: &JobRequest) -> Result<(Location, Location), ApiError> {
    let source = Location::parse(&req.source).map_err(|e| bad(format!("source: {e}")))?;
    let output = Location::parse(&req.output).map_err(|e| bad(format!("output: {e}")))?;
    let forbidden = |e: farm_storage::AllowError| ApiError(StatusCode::FORBIDDEN, e.to_string());
    allowed.sources.check("source", &source).map_err(forbidden)?;
    allowed.outputs.check("output", &output).map_err(forbidden)?;
    Ok((source, output))
}

/// How an output is stored with its job (and compared with other live jobs' outputs).
pub fn stored_output(output: &Location) -> String {
    output.to_string().trim_end_matches('/').to_string()
}

/// The ladder, valid and within the configured limits.
pub fn ladder(limits: &Limits, req: &JobRequest) -> Result<Ladder, ApiError> {
    let mut ladder = match &req.ladder {
        Some(ladder) => ladder.clone(),
        None if req.forensic_watermark => Ladder::forensic(),
        None => Ladder::default(),
    };
    ladder.audio.settle();
    ladder.ladder_mode = req.ladder_mode.unwrap_or(ladder.ladder_mode);
    ladder.settle_segment_format(req.segment_format);
    ladder.codecs = req.codecs.clone().unwrap_or(ladder.codecs);
    // The farm decides per-title rates from the source, whatever a request says.
    ladder.decision = None;
    ladder.validate().map_err(|e| bad(format!("ladder: {e}")))?;
    let over = |m: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m);
    if ladder.video.len() > limits.max_rungs {
        return Err(over(format!("ladder: {} video renditions, at most {} allowed (FARM_MAX_RUNGS)", ladder.video.len(), limits.max_rungs)));
    }
    if !limits.allowed_presets.iter().any(|p| p.trim() == ladder.x264.preset) {
        return Err(over(format!("ladder: x264 preset {:?} is not allowed here (FARM_ALLOWED_PRESETS: {})", ladder.x264.preset, limits.allowed_presets.join(","))));
    }
    Ok(ladder)
}

/// What the source is, probed in a child process; for a per-title ladder, how hard it is
/// to encode too.
pub async fn probe(app: &AppState, source: &Location, ladder: &Ladder) -> Result<(SourceInfo, Option<Complexity>), ApiError> {
    let request = crate::probe::ProbeRequest {
        location: source.to_string(),
        complexity_for: (ladder.ladder_mode == LadderMode::PerTitle).then(|| ladder.clone()),
    };
    app.prober.probe(&request).await.map_err(|e| match e {
        ProbeError::Refused(m) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, m),
        ProbeError::Timeout(_) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        ProbeError::Unavailable(_) => ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("{e}; retry later")),
        ProbeError::Crashed(_) => {
            tracing::warn!(error = %e, source = %source, "probe failed");
            ApiError(StatusCode::UNPROCESSABLE_ENTITY, "the source could not be probed: it is not media this farm can read".into())
        }
    })
}

/// The job and its chunk tasks, from the probe's facts.
#[allow(clippy::too_many_arguments)]
pub fn plan(app: &AppState, req: &JobRequest, (source, output): &(Location, Location), mut ladder: Ladder, (info, complexity): &(SourceInfo, Option<Complexity>), review: &Review, id: String, now: i64) -> Result<NewJob, ApiError> {
    let limits = &app.config.limits;
    let unprocessable = |m: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m);
    if req.forensic_watermark && app.master_key.is_none() {
        // Unencrypted output hands every viewer both variants: nothing to trace.
        return Err(unprocessable("forensic_watermark needs encrypted jobs: this farm has no FARM_MASTER_KEY_FILE".into()));
    }
    let duration = info
        .frames_expected()
        .map(|f| info.rate.frames_to_seconds(f))
        .or(info.duration_seconds)
        .ok_or_else(|| unprocessable("the source states no duration".into()))?;
    if duration > limits.max_source_seconds {
        return Err(unprocessable(format!("the source lasts {duration:.0} s, at most {:.0} s allowed (FARM_MAX_SOURCE_SECONDS)", limits.max_source_seconds)));
    }
    let (display_w, display_h) = info.display_size();
    if ladder.ladder_mode == LadderMode::PerTitle {
        let complexity = complexity.as_ref().ok_or_else(|| internal("the probe measured no complexity for a per-title ladder"))?;
        ladder.decide(display_w, display_h, complexity);
        tracing::info!(job = %id, complexity_kbps = complexity.kbps, probe_seconds = complexity.seconds, decision = ?ladder.decision, "per-title ladder decided");
    }
    let renditions = ladder.fit(display_w, display_h);
    let low_audio = ladder.audio.low_group(&renditions);
    let (_, audio_renditions) = farm_media::transcode::audio::plan(&info.audio, &ladder.audio, true, low_audio);
    let has_audio = !audio_renditions.is_empty();
    // Long sources get longer chunks rather than more tasks than the limit.
    let chunk_seconds = app.config.chunk_seconds.max(duration / limits.max_tasks_per_job as f64);
    let parts = split::plan(duration, has_audio, &ladder, chunk_seconds);
    if parts.len() > limits.max_tasks_per_job {
        return Err(unprocessable(format!("the job would need {} tasks, at most {} allowed (FARM_MAX_TASKS_PER_JOB)", parts.len(), limits.max_tasks_per_job)));
    }
    let low_audio_rungs = if has_audio { ladder.audio.low_rungs(&renditions) } else { Vec::new() };
    let plan = JobPlan {
        grid: Grid::new(info.rate, ladder.cuts(), ladder.gop_ms()),
        total_frames: info.frames_expected().unwrap_or((duration * info.rate.as_f64()).round() as u64),
        renditions,
        audio: has_audio.then(|| (ladder.audio.sample_rate, ladder.audio.channels, u64::from(ladder.audio.bitrate_kbps) * 1000)),
        audio_renditions: audio_renditions
            .iter()
            .map(|r| LiveAudio {
                name: r.name.clone(),
                label: Some(r.label.clone()),
                language: r.language.clone(),
                channels: r.spec.channels,
                bandwidth: u64::from(r.spec.bitrate_kbps) * 1000,
                source_streams: r.source_streams.clone(),
                group: Some(r.group.to_string()),
            })
            .collect(),
        low_audio_rungs,
        segment_format: ladder.segment_format(),
    };
    let job = Job {
        id: id.clone(),
        state: State::Queued,
        source: source.to_string(),
        output: stored_output(output),
        priority: req.priority.unwrap_or(Priority::Normal),
        ladder: serde_json::to_string(&ladder).map_err(internal)?,
        idempotency_key: req.idempotency_key.clone(),
        error: None,
        master_playlist: None,
        plan: Some(serde_json::to_string(&plan).map_err(internal)?),
        review: Some(serde_json::to_string(review).map_err(internal)?),
        forensic_watermark: req.forensic_watermark,
        created_ms: now,
        updated_ms: now,
    };
    let frames_total = info.frames_expected().map(|f| f as i64);
    let tasks = parts
        .iter()
        .enumerate()
        .map(|(i, part)| Task {
            id: format!("{id}-{i:04}"),
            job_id: id.clone(),
            part: *part,
            state: State::Queued,
            frames_done: 0,
            frames_total: match part {
                TaskPart::Video { start, end, .. } => Some(((end.unwrap_or(duration) - start) * info.rate.as_f64()) as i64),
                _ => frames_total,
            },
            error: None,
        })
        .collect();
    let keys = match &app.master_key {
        Some(master) => crate::keys::for_new_job(master, &id, duration, app.config.key_period_seconds).map_err(internal)?,
        None => crate::keys::NewKeys::default(),
    };
    Ok(NewJob { job, tasks, ladder, keys })
}
