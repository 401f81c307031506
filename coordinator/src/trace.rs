//! Tracing a leaked copy of a watermarked job to the shares it came from
//! (`coordinator trace LEAKED_FILE --job ID`).
//!
//! The job's review copy is read back from its output: one video rendition (the smallest at
//! least [`WORK`] high), its A and B segments decrypted with the job's content keys. The leak
//! and A are reduced to the detector's working size; the leak is placed on the job's
//! timeline by its pictures ([`forensic_mark::align`](farm_media::forensic_mark::align));
//! the positions it covers are read against the mean of A and B
//! ([`forensic_mark::detect`](detect)), at each offset the pictures cannot tell apart when
//! the job's picture repeats, keeping the one whose marks read furthest above chance (a
//! choice that never looks at a code word), and near it when they read no stronger than
//! chance there (a steady zoom or pan: a crop passes for another moment of the shot,
//! [`detect::strongest_near`]); a leak that skipped (two or more parts of the copy joined)
//! is read in pieces, each placed on its own ([`pieces`]); the readings go to the code words'
//! trace ([`farm_hls::forensic::trace`]), over every share the job ever had (revoked and
//! expired ones too: a copy outlives its link), under the false-accusation bound
//! [`FALSE_ACCUSATION`]. Nothing here is stored: the mark seed and the code words are
//! derived from the master key again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use farm_hls::forensic::{by_word, Codebook, VerdictKind, FALSE_ACCUSATION};
use farm_media::forensic_mark::align::{contenders, Thumb, TimeAlignment};
use farm_media::forensic_mark::detect::{self, PositionFrames};
use farm_media::forensic_mark::frames::{self, Frames};
use farm_media::forensic_mark::Window;
use farm_storage::SourceLocation;
use serde::Serialize;
use sqlx::Row;

use crate::db::Store;
use crate::keys::{JobKeys, MasterKey};
use pieces::Found;

mod pieces;

/// The detector's working picture size (width, height).
pub const WORK: (usize, usize) = (320, 180);

/// Offsets a leak is read at, at most, when its pictures match several moments of the job
/// about equally ([`contenders`]).
const CONTENDERS: usize = 4;

/// Marks reading less than this many standard errors above chance
/// ([`detect::Reading::above_chance`]) where the pictures put a leak are looked for near
/// there ([`detect::strongest_near`]). Measured: 34 to 45 at a leak's own time and crop, 9
/// to 12 on a dark, grainy clip, -0.8 to 1.7 at another moment of a zoom or of a looped
/// shot. A ratio to chance, tried first, read 2.2 right on the grainy clip against 1.2 to
/// 1.6 a second off in a zoom: too near to tell them apart.
const MARKED: f64 = 5.0;

/// Decoded pictures of the leak's positions a trace keeps to read them again at another
/// offset (at the working size: about 2.9 MB a second of 25 fps video, A and B; some three
/// minutes of leak). Beyond it, positions are decoded again for each offset.
const KEPT_BYTES: usize = 512 << 20;

/// A trace's answer, printed as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TraceReport {
    /// `match`, `no_match` or `collusion`.
    #[schema(value_type = String)]
    pub verdict: VerdictKind,
    /// The shares named (ids).
    pub shares: Vec<String>,
    /// Their viewers, in the same order.
    pub viewers: Vec<String>,
    /// One minus the bound on naming an innocent share on this evidence (0: nobody named).
    pub confidence: f64,
    /// The bound a trace keeps to: an innocent share is named with at most this probability.
    pub false_accusation_bound: f64,
    /// Segment positions read.
    pub positions: usize,
    /// Where the leak starts on the job's timeline (seconds), when it was found there.
    pub offset_seconds: Option<f64>,
    /// Why nothing was read, that the pictures alone could not place the leak and its
    /// marks did, or that the leak skipped and was read in pieces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no job {0}")]
    NoJob(String),
    #[error("job {0} was not submitted with forensic_watermark: its copies carry no marks to trace")]
    NotWatermarked(String),
    #[error("the leak cannot be decoded: {0}")]
    Leak(farm_media::error::TranscodeError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A stored segment: its object key, and its key period and IV when it is sealed.
type Stored = (String, Option<(u32, [u8; 16])>);

/// One segment position of the rendition read: where A's and B's segment are.
struct Segment {
    position: u64,
    a: Stored,
    b: Option<Stored>,
}

/// Traces the leak at `leak` in `job_id`. Blocking on storage and FFmpeg: call it off the
/// async runtime, with `rt` for the storage and database calls.
pub fn trace(store: &Store, master: &MasterKey, sinks: &farm_storage::Sinks, rt: &tokio::runtime::Handle, leak: &SourceLocation, job_id: &str) -> Result<TraceReport, TraceError> {
    let job = rt.block_on(store.job(job_id)).context("reading the job")?.ok_or_else(|| TraceError::NoJob(job_id.into()))?;
    if !job.forensic_watermark {
        return Err(TraceError::NotWatermarked(job_id.into()));
    }
    let leaked = frames::read(leak, WORK).map_err(TraceError::Leak)?;
    Ok(read_and_trace(store, master, sinks, rt, &leaked, &job)?)
}

/// The verdict on `leaked` (decoded) in `job`.
fn read_and_trace(store: &Store, master: &MasterKey, sinks: &farm_storage::Sinks, rt: &tokio::runtime::Handle, leaked: &Frames, job: &crate::db::Job) -> anyhow::Result<TraceReport> {
    let job_id = job.id.as_str();
    let plan = crate::live::JobPlan::of(job).context("the job's plan")?.context("the job has no plan yet")?;
    let rate = plan.grid.rate.as_f64();
    let rendition = plan
        .renditions
        .iter()
        .filter(|r| r.height as usize >= WORK.1)
        .min_by_key(|r| r.height)
        .or_else(|| plan.renditions.iter().max_by_key(|r| r.height))
        .context("the job has no video rendition")?
        .name
        .clone();
    let keys = rt.block_on(crate::keys::job_keys(store, Some(master), job_id))?.context("the job has no content keys")?;
    let shares: Vec<(String, String)> = rt
        .block_on(sqlx::query("SELECT id, viewer FROM shares WHERE job_id = $1 ORDER BY created_ms").bind(job_id).fetch_all(&store.pool))?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("viewer")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let sink = sinks.open(&job.output, rt)?;
    let (segments, init) = segments(sink.as_ref(), &rendition)?;
    let init = init.map(|uri| sink.get(&format!("{rendition}/{uri}")).context("reading the init segment")).transpose()?;
    let reader = Reader { sink: sink.as_ref(), keys: &keys, init, dir: tempfile::tempdir()?, kept: Default::default() };
    let mut report = TraceReport {
        verdict: VerdictKind::NoMatch,
        shares: Vec::new(),
        viewers: Vec::new(),
        confidence: 0.0,
        false_accusation_bound: FALSE_ACCUSATION,
        positions: 0,
        offset_seconds: None,
        note: None,
    };
    // Where the leak sits: A's pictures of every position, as thumbs.
    let (mut job_thumbs, mut firsts) = (Vec::new(), Vec::new());
    for s in &segments {
        let a = reader.frames(&s.a)?;
        let first = job_thumbs.len();
        firsts.push(first as u64);
        job_thumbs.extend((0..a.len()).map(|k| Thumb::new(a.luma(k), (first + k) as f64 / rate)));
    }
    let leak_thumbs: Vec<Thumb> = (0..leaked.len()).map(|i| Thumb::new(leaked.luma(i), leaked.times[i])).collect();
    let placed = contenders(&job_thumbs, rate, &leak_thumbs, 1, CONTENDERS);
    tracing::info!(job = job_id, job_frames = job_thumbs.len(), leak_frames = leak_thumbs.len(), ?placed, "leak placed");
    if placed.is_empty() {
        report.note = Some("the leak was not found on this job's timeline".into());
        return Ok(report);
    }
    let copy = JobCopy { reader: &reader, segments: &segments, firsts: &firsts, job_frames: job_thumbs.len(), rate, seed: master.mark_seed(job_id).0 };
    let whole = place(&copy, leaked, &placed, true)?;
    let Some(Found { offset, observations, note }) = pieces::choose(&copy, leaked, &job_thumbs, &leak_thumbs, whole)? else {
        report.note = Some("the leak covers no watermarked segment".into());
        return Ok(report);
    };
    report.note = note;
    report.offset_seconds = Some(offset);
    let key = master.forensic_key();
    let book = Codebook::new(&key, job_id);
    let ids: Vec<String> = shares.iter().map(|(id, _)| id.clone()).collect();
    let verdict = farm_hls::forensic::trace(&book, &ids, &observations, FALSE_ACCUSATION);
    report.viewers = verdict.shares.iter().filter_map(|id| shares.iter().find(|(s, _)| s == id).map(|(_, v)| v.clone())).collect();
    (report.verdict, report.shares, report.confidence, report.positions) = (verdict.verdict, verdict.shares, verdict.confidence, verdict.positions);
    Ok(report)
}

/// The job's copy as the trace reads it: its watermarked positions, where each starts on
/// the timeline, and its mark seed.
struct JobCopy<'a> {
    reader: &'a Reader<'a>,
    segments: &'a [Segment],
    /// The job frame number each segment starts at.
    firsts: &'a [u64],
    job_frames: usize,
    rate: f64,
    seed: [u8; 32],
}

impl JobCopy<'_> {
    /// A's and B's pictures of the watermarked positions shown between `from` and `to`
    /// seconds of the job (a few frames' slack each way).
    fn positions(&self, from: f64, to: f64) -> anyhow::Result<Vec<PositionFrames>> {
        let (from, to) = ((from * self.rate).floor() as i64 - 4, (to * self.rate).ceil() as i64 + 4);
        let mut covered = Vec::new();
        for (i, s) in self.segments.iter().enumerate() {
            let (first, end) = (self.firsts[i] as i64, self.firsts.get(i + 1).map_or(self.job_frames as i64, |&f| f as i64));
            let Some(b) = &s.b else { continue };
            if end > from && first < to {
                covered.push(PositionFrames { position: s.position, first_frame: self.firsts[i], a: self.reader.kept_frames(&s.a)?, b: self.reader.kept_frames(b)? });
            }
        }
        Ok(covered)
    }

    /// `leaked` read at `offset` against the positions it covers there, through `window`
    /// when it was found already.
    fn read_at(&self, leaked: &Frames, offset: f64, window: Option<Window>) -> anyhow::Result<Option<detect::Reading>> {
        let end = leaked.times.last().copied().unwrap_or(0.0);
        let positions = self.positions(offset, end + offset)?;
        Ok(match window {
            Some(window) => detect::read_in(window, leaked, self.rate, offset, &positions, &self.seed),
            None => detect::read(leaked, self.rate, offset, &positions, &self.seed),
        })
    }
}

/// Where a leak was read, what it read as, and how it was placed when its pictures did not
/// settle it.
struct Placed {
    offset: f64,
    reading: detect::Reading,
    note: Option<String>,
}

/// The leak read at each offset its pictures cannot tell apart, the one whose marks read
/// furthest above chance kept (not the strongest: each offset's crop window is found
/// again, and a smaller one reads every pattern stronger, [`detect::Reading::reads_above`]);
/// then, when they read no stronger than chance there and `near` says so, near the
/// pictures' best. None when no offset covers a watermarked position.
fn place(copy: &JobCopy, leaked: &Frames, placed: &[TimeAlignment], near: bool) -> anyhow::Result<Option<Placed>> {
    let (mut readings, mut tried) = (Vec::new(), Vec::new());
    for at in placed {
        let Some(reading) = copy.read_at(leaked, at.offset, None)? else {
            tried.push(format!("{:.2} s: not read", at.offset));
            continue;
        };
        tried.push(format!("{:.2} s: {:.3} (chance {:.3}, {:.1} standard errors above)", at.offset, reading.strength, reading.chance, reading.above_chance));
        tracing::info!(offset = at.offset, margin = at.margin(), window = ?reading.window, agreement = reading.agreement, frames = reading.frames_read, strength = reading.strength, chance = reading.chance, above_chance = reading.above_chance, "leak read");
        readings.push((at.offset, reading));
    }
    let Some((offset, reading)) = detect::furthest_above_chance(readings) else { return Ok(None) };
    let note = (placed.len() > 1).then(|| {
        format!(
            "the pictures alone did not place the leak (a repeating or still picture, or another clip): read at {} offsets, its marks read furthest above chance at {offset:.2} s (strength {})",
            placed.len(),
            tried.join(", ")
        )
    });
    let found = Placed { offset, reading, note };
    if found.reading.above_chance >= MARKED || !near {
        return Ok(Some(found));
    }
    search_near(copy, leaked, placed[0].offset, found).map(Some)
}

/// Marks no stronger than chance where the pictures put the leak: a crop of a steady zoom or
/// pan passes for another moment of it. Read near `around` (where the pictures agree best),
/// the crop found again; what reads further above chance than `found` replaces it
/// ([`detect::Reading::reads_above`]).
fn search_near(copy: &JobCopy, leaked: &Frames, around: f64, found: Placed) -> anyhow::Result<Placed> {
    let (from, to) = detect::near_span(leaked, around);
    let strongest = detect::strongest_near(leaked, copy.rate, around, &copy.positions(from, to)?, &copy.seed);
    let Placed { offset, reading, note } = found;
    tracing::info!(around, strength = reading.strength, chance = reading.chance, ?strongest, "leak read near the offset the pictures gave");
    let at = strongest.filter(|(at, ..)| (at - offset).abs() > 1e-9);
    let there = at.map(|(at, _, window)| anyhow::Ok(copy.read_at(leaked, at, Some(window))?.filter(|r| r.reads_above(&reading)).map(|r| (at, r)))).transpose()?.flatten();
    let (strength, chance, above) = (reading.strength, reading.chance, reading.above_chance);
    Ok(match there {
        None => {
            let before = note.map(|n| format!("{n}; ")).unwrap_or_default();
            let note = format!("{before}its marks read weakly at {offset:.2} s ({strength:.3}, chance {chance:.3}, {above:.1} standard errors above) and no further above chance within {} s of {around:.2} s", detect::NEAR_SECONDS);
            Placed { offset, reading, note: Some(note) }
        }
        Some((at, there)) => {
            let w = there.window;
            let note = format!(
                "the pictures placed the leak at {around:.2} s, its marks read no stronger than chance at {offset:.2} s ({strength:.3}, chance {chance:.3}, {above:.1} standard errors above): a steady zoom or pan; its marks read strongest at {at:.2} s ({:.3}, {:.1} standard errors above chance, the leak showing {:.1}-{:.1} % across, {:.1}-{:.1} % down)",
                there.strength,
                there.above_chance,
                100.0 * w.left,
                100.0 * w.right,
                100.0 * w.top,
                100.0 * w.bottom
            );
            Placed { offset: at, reading: there, note: Some(note) }
        }
    })
}

/// Reads and opens segments of the rendition, keeping what the leak's positions decoded.
struct Reader<'a> {
    sink: &'a dyn farm_storage::Sink,
    keys: &'a JobKeys,
    init: Option<Vec<u8>>,
    dir: tempfile::TempDir,
    /// Segments decoded for the leak's positions, by object key, up to [`KEPT_BYTES`]: each
    /// offset read (contenders, the search near one, the reading in full where it found the
    /// marks) mostly covers the same positions.
    kept: RefCell<(HashMap<String, Arc<Frames>>, usize)>,
}

impl Reader<'_> {
    /// A segment's pictures, decoded once while [`KEPT_BYTES`] lasts.
    fn kept_frames(&self, stored: &Stored) -> anyhow::Result<Arc<Frames>> {
        if let Some(frames) = self.kept.borrow().0.get(&stored.0) {
            return Ok(frames.clone());
        }
        let frames = Arc::new(self.frames(stored)?);
        let mut kept = self.kept.borrow_mut();
        let bytes = frames.len() * WORK.0 * WORK.1;
        if kept.1 + bytes <= KEPT_BYTES {
            kept.1 += bytes;
            kept.0.insert(stored.0.clone(), frames.clone());
        }
        Ok(frames)
    }

    /// A segment's pictures at the working size: decrypted, after the init segment.
    fn frames(&self, (uri, key): &Stored) -> anyhow::Result<Frames> {
        let sealed = self.sink.get(uri).with_context(|| format!("reading {uri}"))?;
        let plain = match key {
            Some((period, iv)) => {
                let content = self.keys.keys.get(period).with_context(|| format!("{uri}: no content key for period {period}"))?;
                farm_hls::encryption::decrypt(content, &farm_hls::encryption::Iv(*iv), &sealed).with_context(|| format!("{uri} does not decrypt"))?
            }
            None => sealed,
        };
        let path = self.dir.path().join("segment");
        let mut bytes = self.init.clone().unwrap_or_default();
        bytes.extend_from_slice(&plain);
        std::fs::write(&path, bytes)?;
        frames::read(&SourceLocation::Local(path), WORK).with_context(|| format!("decoding {uri}"))
    }
}

fn playlist(sink: &dyn farm_storage::Sink, name: &str) -> anyhow::Result<m3u8_rs::MediaPlaylist> {
    let bytes = sink.get(name).with_context(|| format!("reading {name}"))?;
    m3u8_rs::parse_media_playlist_res(&bytes).map_err(|e| anyhow::anyhow!("{name}: not a media playlist: {e:?}"))
}

/// A's and B's segments of every position of the rendition, as its playlists list them,
/// and A's init segment (fMP4), if it has one.
fn segments(sink: &dyn farm_storage::Sink, rendition: &str) -> anyhow::Result<(Vec<Segment>, Option<String>)> {
    let a = playlist(sink, &format!("{rendition}/index.m3u8"))?;
    let init = a.segments.iter().find_map(|s| s.map.as_ref().map(|m| m.uri.clone()));
    let b_name = format!("{rendition}/{}/index.m3u8", farm_contract::manifest::VARIANT_B);
    let b = playlist(sink, &b_name)?;
    let entry = |dir: &str, s: &m3u8_rs::MediaSegment| -> anyhow::Result<(u64, Stored)> {
        let position = by_word::segment_position(&s.uri).with_context(|| format!("a segment URI with no position: {}", s.uri))?;
        let key = match &s.key {
            Some(k) if k.method == m3u8_rs::KeyMethod::AES128 => {
                let period = k.uri.as_deref().and_then(farm_hls::encryption::key_period).with_context(|| format!("{}: not the farm's key URI", s.uri))?;
                let iv = k.iv.as_deref().and_then(|iv| hex::decode(iv.trim_start_matches("0x").trim_start_matches("0X")).ok()).and_then(|b| <[u8; 16]>::try_from(b).ok());
                Some((period, iv.with_context(|| format!("{}: no IV", s.uri))?))
            }
            _ => None,
        };
        Ok((position, (format!("{dir}/{}", s.uri), key)))
    };
    let mut in_b = HashMap::new();
    for s in &b.segments {
        let (p, e) = entry(&format!("{rendition}/{}", farm_contract::manifest::VARIANT_B), s)?;
        in_b.insert(p, e);
    }
    let segments = a.segments.iter().map(|s| entry(rendition, s).map(|(position, a)| Segment { position, a, b: in_b.remove(&position) })).collect::<anyhow::Result<_>>()?;
    Ok((segments, init))
}
