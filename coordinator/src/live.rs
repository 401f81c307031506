//! Progressive publishing: EVENT playlists while a job runs, so review starts early.
//!
//! When a worker reports a new segment of a job (`task.segment`), and every second for every
//! running job in case an event was missed, the output's segment objects are listed; when
//! every rendition has its first segment the master and EVENT media playlists are written,
//! and they are extended as contiguous segments land. The final VOD playlists are written by
//! the tracker when the last task is done; both take the same lock so they never interleave.
//! Only the coordinator replica that holds the playlists lease ([`crate::leases`]) writes
//! playlists, and it checks the lease's fence before every write.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use farm_contract::ladder::{FittedRendition, SegmentFormat, AUDIO_GROUP, LOW_AUDIO_GROUP};
use farm_contract::manifest::{init_uri, is_media_key, segment_uri};
use farm_contract::timeline::Grid;
use farm_contract::manifest::RenditionPart;
use farm_contract::review::Review;
use farm_contract::thumbnails::{Thumbnails, REVIEW_JSON, THUMBNAILS_VTT};
use farm_hls::playlist::live::{live, LiveAudio, LivePlan, LiveVideo};
use farm_storage::Sinks;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::db::Store;

/// What the coordinator learnt from the probe, kept with the job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPlan {
    pub grid: Grid,
    pub total_frames: u64,
    pub renditions: Vec<FittedRendition>,
    /// Sample rate, channels and bit rate of the mix (the only audio rendition of jobs
    /// planned before per-track renditions).
    pub audio: Option<(u32, u32, u64)>,
    /// Every audio rendition, the mix first (empty in plans stored before them).
    #[serde(default)]
    pub audio_renditions: Vec<LiveAudio>,
    /// The rungs that play with the low audio group (audio by bandwidth).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub low_audio_rungs: Vec<String>,
    /// The segments' container (plans stored before fMP4: MPEG-TS).
    #[serde(default)]
    pub segment_format: SegmentFormat,
}

impl JobPlan {
    /// The plan stored with `job` (`None` before the probe has run).
    pub fn of(job: &crate::db::Job) -> Result<Option<JobPlan>, serde_json::Error> {
        job.plan.as_deref().map(serde_json::from_str).transpose()
    }

    fn live_audio(&self) -> Vec<LiveAudio> {
        match (&self.audio_renditions[..], self.audio) {
            ([], Some((_, channels, bandwidth))) => {
                vec![LiveAudio { name: farm_contract::manifest::AUDIO_RENDITION.into(), label: None, language: None, channels, bandwidth, source_streams: vec![], group: None }]
            }
            (renditions, _) => renditions.to_vec(),
        }
    }
}

#[derive(Default)]
struct Seen {
    segments: usize,
    codecs: HashMap<String, String>,
    playable: bool,
    /// The job's content keys, read once (`Some(None)`: the job is not encrypted).
    keys: Option<Option<Arc<crate::keys::JobKeys>>>,
}

pub struct Publisher {
    pub store: Store,
    pub sinks: Arc<Sinks>,
    /// Held while writing any playlist of any job.
    pub lock: Arc<Mutex<()>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Ids of jobs a worker wrote a segment for, from the tracker.
    pub new_segments: UnboundedReceiver<String>,
    /// Unwraps encrypted jobs' keys (for key tags and reading the first segment's codec).
    pub master_key: Option<crate::keys::MasterKey>,
    /// Live playlists are written only where this lease is held, and checked (fenced) before
    /// each write.
    pub lease: crate::leases::Lease,
}

/// Every running job is looked at this often even without segment events.
const SWEEP: Duration = Duration::from_secs(1);

impl Publisher {
    pub async fn run(mut self, broker: &Broker, shutdown: CancellationToken) {
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // None: look at every running job; Some: only at these.
            let only: Option<BTreeSet<String>> = tokio::select! {
                _ = sweep.tick() => None,
                Some(id) = self.new_segments.recv() => {
                    let mut ids = BTreeSet::from([id]);
                    while let Ok(id) = self.new_segments.try_recv() {
                        ids.insert(id);
                    }
                    Some(ids)
                }
                _ = shutdown.cancelled() => return,
            };
            if !self.lease.held() {
                // Another replica publishes; what this one saw is stale when it takes over.
                seen.clear();
                continue;
            }
            // A sweep reads every open job; a segment event only the jobs it names.
            let jobs = match &only {
                None => self.store.open_jobs().await,
                Some(ids) => self.jobs(ids).await,
            };
            let jobs = match jobs {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read open jobs");
                    continue;
                }
            };
            if only.is_none() {
                let open: HashSet<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
                seen.retain(|id, _| open.contains(id.as_str()));
            }
            for job in jobs {
                let Ok(Some(plan)) = JobPlan::of(&job) else { continue };
                let state = seen.entry(job.id.clone()).or_default();
                let review = job.review.as_deref().and_then(|r| serde_json::from_str::<Review>(r).ok());
                match self.refresh(&job.id, &job.output, &plan, review, state).await {
                    // Made playable by another replica, before this one took over.
                    Ok(Published::Already) => state.playable = true,
                    Ok(Published::Master) if !state.playable => {
                        state.playable = true;
                        self.metrics.playable(job.created_ms);
                        tracing::info!(job_id = %job.id, "job playable");
                        broker.publish_event("job.playable", &serde_json::json!({"job_id": job.id, "output": job.output})).await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(job_id = %job.id, error = format!("{e:#}"), "live playlists not updated"),
                }
            }
        }
    }

    /// The jobs with these ids that are not final yet.
    async fn jobs(&self, ids: &BTreeSet<String>) -> Result<Vec<crate::db::Job>, sqlx::Error> {
        let mut jobs = Vec::new();
        for id in ids {
            if let Some(job) = self.store.job(id).await?.filter(|j| !j.state.is_final()) {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Writes EVENT playlists when more segments are there; says whether a master exists.
    async fn refresh(&self, id: &str, output: &str, plan: &JobPlan, review: Option<Review>, seen: &mut Seen) -> anyhow::Result<Published> {
        let (sinks, output, plan, mut codecs, before) = (self.sinks.clone(), output.to_string(), plan.clone(), seen.codecs.clone(), seen.segments);
        let first_look = before == 0 && !seen.playable;
        let _guard = self.lock.lock().await;
        let unchanged = if seen.playable { Published::Master } else { Published::None };
        // The job may have finished while we waited for the lock: never overwrite VOD.
        if self.store.job(id).await?.is_none_or(|j| j.state.is_final()) {
            return Ok(unchanged);
        }
        if seen.keys.is_none() {
            seen.keys = Some(crate::keys::job_keys(&self.store, self.master_key.as_ref(), id).await?.map(Arc::new));
        }
        let job_keys = seen.keys.clone().flatten();
        let job_id = id.to_string();
        let (rt, lease) = (tokio::runtime::Handle::current(), self.lease.clone());
        let (count, codecs, playable) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let keying = |name: &str, k: u64| job_keys.as_ref().and_then(|keys| keys.playlist_key(&job_id, name, k, plan.grid.cuts.start_ms(k)));
            let sink = sinks.open(&output, &rt)?;
            let keys = sink.list("")?;
            let present: BTreeSet<String> = keys.iter().filter(|k| is_media_key(k)).cloned().collect();
            let sprites: Vec<&str> = keys.iter().map(String::as_str).filter(|k| Thumbnails::parse_sprite_key(k).is_some()).collect();
            let seen_now = present.len() + sprites.len();
            if seen_now == before {
                return Ok((before, codecs, None));
            }
            let already = first_look && keys.iter().any(|k| k == farm_hls::MASTER);
            let mut video = Vec::new();
            for r in &plan.renditions {
                if !codecs.contains_key(&r.name) {
                    if let Some(c) = read_codecs(&*sink, &plan, &r.name, &present, job_keys.as_deref())? {
                        codecs.insert(r.name.clone(), c);
                    }
                }
                video.push(LiveVideo {
                    name: r.name.clone(),
                    width: r.width,
                    height: r.height,
                    bandwidth: u64::from(r.maxrate_kbps) * 1000,
                    codecs: codecs.get(&r.name).cloned(),
                    audio_group: if plan.low_audio_rungs.contains(&r.name) { LOW_AUDIO_GROUP } else { AUDIO_GROUP }.to_string(),
                });
            }
            let sample_rate = plan.audio.map_or(48_000, |(rate, ..)| rate);
            let live_plan = LivePlan { grid: plan.grid, total_frames: plan.total_frames, video, sample_rate, audio: plan.live_audio(), segment_format: plan.segment_format };
            let keying: Option<farm_hls::playlist::live::Keying> = if job_keys.is_some() { Some(&keying) } else { None };
            let Some(mut playlists) = live(&live_plan, &present, keying) else { return Ok((seen_now, codecs, Some(Published::None))) };
            if let Some(review) = &review {
                playlists.files.extend(review_files(review, &live_plan, &sprites));
            }
            // Fenced, just before writing (and only when there is something to write):
            // nothing is written once another replica holds the lease. Not counted as seen,
            // so the next holder's or this one's next look writes it.
            if !rt.block_on(lease.check()) {
                return Ok((before, codecs, None));
            }
            // Media playlists first: a player that finds the master finds what it names.
            let (master, media): (Vec<_>, Vec<_>) = playlists.files.iter().partition(|(k, _)| k == farm_hls::MASTER);
            for (key, text) in media.into_iter().chain(master) {
                sink.put(key, text.as_bytes())?;
            }
            Ok((seen_now, codecs, Some(if already { Published::Already } else { Published::Master })))
        })
        .await??;
        seen.segments = count;
        seen.codecs = codecs;
        Ok(playable.unwrap_or(unchanged))
    }
}

/// What a refresh left: no master yet, a master (written now or before by this replica), or
/// a master another replica had written before this one took the lease over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Published {
    None,
    Master,
    Already,
}

/// A video rendition's codec string (`avc1`, `hvc1`), once it can be read: from the fMP4
/// init segment (never encrypted), or from the SPS of the first MPEG-TS segment (decrypted
/// with the job's key when the job is encrypted).
fn read_codecs(sink: &dyn farm_storage::Sink, plan: &JobPlan, name: &str, present: &BTreeSet<String>, keys: Option<&crate::keys::JobKeys>) -> anyhow::Result<Option<String>> {
    if let Some(init) = init_uri(name, plan.segment_format) {
        return Ok(if present.contains(&init) { farm_hls::codecs::video_from_init(&sink.get(&init)?) } else { None });
    }
    let first = segment_uri(name, 0, plan.segment_format);
    if !present.contains(&first) {
        return Ok(None);
    }
    let data = sink.get(&first)?;
    let data = match keys {
        Some(keys) => keys.open(name, 0, plan.grid.cuts.start_ms(0), &data).unwrap_or_default(),
        None => data,
    };
    Ok(farm_hls::codecs::avc1_from_annexb(&data))
}

/// `review.json` and the thumbnail track as far as the sprites written so far go.
fn review_files(review: &Review, plan: &LivePlan, sprites: &[&str]) -> Vec<(String, String)> {
    let audio: Vec<RenditionPart> = plan
        .audio
        .iter()
        .map(|a| RenditionPart {
            name: a.name.clone(),
            codecs: farm_hls::codecs::AAC_LC.into(),
            width: None,
            height: None,
            frame_rate: None,
            channels: Some(a.channels),
            segments: vec![],
            label: a.label.clone(),
            language: a.language.clone(),
            source_streams: a.source_streams.clone(),
            group: a.group.clone(),
            init: None,
        })
        .collect();
    let mut files = vec![(REVIEW_JSON.to_string(), farm_hls::review::document(review, None, plan.grid.rate, plan.total_frames, &audio))];
    let duration = plan.grid.rate.frames_to_seconds(plan.total_frames);
    if let Some(text) = review.thumbnails.and_then(|spec| farm_hls::review::vtt(&spec, sprites.iter().copied(), duration)) {
        files.push((THUMBNAILS_VTT.to_string(), text));
    }
    files
}
