//! Playlists, assembled from part manifests with `m3u8-rs`.
//!
//! Takes every part of a job (one pass or many chunks). When the parts cover the whole
//! source it hands on the media playlists (VOD), one I-frame playlist per video rendition
//! (byte ranges into the segments), the audio playlist and the master playlist, whose
//! BANDWIDTH and AVERAGE-BANDWIDTH are measured on the written segments and whose CODECS
//! come from the bitstream. fMP4 renditions map their init segment. Incomplete parts hand
//! on nothing.

use std::collections::{BTreeMap, HashMap};

use farm_contract::ladder::{LOW_AUDIO_GROUP, LOW_SUFFIX};
use farm_contract::manifest::{PartKind, PartManifest, RenditionPart, SegmentRecord, MANIFEST_VERSION, FIRST_MARKED_SEGMENT, VARIANT_B};
use farm_contract::thumbnails::{REVIEW_JSON, THUMBNAILS_VTT};

use crate::{encryption, review};
use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ByteRange, MasterPlaylist, MediaPlaylist,
    MediaPlaylistType, MediaSegment, Resolution, VariantStream,
};

pub const MASTER: &str = "index.m3u8";


/// Playlist files by object key.
#[derive(Debug, Clone, PartialEq)]
pub struct Playlists {
    pub files: Vec<(String, String)>,
}

/// One rendition with all its segments in order.
struct Track {
    part: RenditionPart,
}

impl Track {
    fn duration(&self) -> f64 {
        self.part.segments.iter().map(|s| s.duration).sum()
    }
    fn bytes(&self) -> u64 {
        self.part.segments.iter().map(|s| s.bytes).sum()
    }
    /// Peak segment bit rate (Apple's BANDWIDTH definition) and average bit rate.
    fn bitrates(&self) -> (u64, u64) {
        let peak = self
            .part
            .segments
            .iter()
            .map(|s| (s.bytes as f64 * 8.0 / s.duration).ceil() as u64)
            .max()
            .unwrap_or(0);
        let avg = (self.bytes() as f64 * 8.0 / self.duration()).ceil() as u64;
        (peak, avg)
    }
    fn end_unit(&self) -> u64 {
        self.part.segments.last().map_or(0, |s| s.start_unit + s.units)
    }
}

/// Assembles playlists when the parts cover the whole source; `Ok(None)` while parts are
/// missing; `Err` when parts contradict each other.
pub fn assemble(parts: &[PartManifest]) -> Result<Option<Playlists>, String> {
    if let Some(p) = parts.iter().find(|p| p.version != MANIFEST_VERSION) {
        return Err(format!("part manifest version {} is not supported", p.version));
    }
    let Some(video) = contiguous_video(parts)? else { return Ok(None) };
    let first = video[0];
    let Some(audio_parts) = contiguous_audio(parts)? else { return Ok(None) };
    let audio_complete = audio_parts.last().is_some_and(|p| p.is_last);
    if first.audio_expected && !audio_complete {
        return Ok(None);
    }
    let tracks = video_tracks(&video, |p| &p.renditions, 0)?;
    let audio = if audio_complete { audio_tracks(&audio_parts)? } else { Vec::new() };
    let mut playlists = write_all(&tracks, &audio, first.grid.rate.as_f64(), first.job_id.as_deref())?;
    if !first.variant_b.is_empty() {
        // A forensic job's B playlists, beside A's and not in the master: shares' playlists
        // are picked from both (`forensic::by_word`).
        let master = playlists.files.pop().expect("the master is written last");
        let job = first.job_id.as_deref().unwrap_or("");
        for t in variant_b_tracks(&video, &tracks)? {
            let folder = format!("{}/{VARIANT_B}", t.part.name);
            playlists.files.push((format!("{folder}/index.m3u8"), media_playlist(&t.part, &folder, job)));
        }
        playlists.files.push(master);
    }
    if let Some(review) = &first.review {
        // Beside the master, before it: a player that finds the master finds these too.
        let master = playlists.files.pop().expect("the master is written last");
        let rate = first.grid.rate;
        let frames = tracks.first().map_or(0, Track::end_unit);
        let audio_parts: Vec<RenditionPart> = audio.iter().map(|a| a.part.clone()).collect();
        playlists.files.push((REVIEW_JSON.into(), review::document(review, first.colour.as_deref(), rate, frames, &audio_parts)));
        let sprites = video.iter().flat_map(|p| p.sprites.iter().map(String::as_str));
        if let Some(text) = review.thumbnails.and_then(|spec| review::vtt(&spec, sprites, rate.frames_to_seconds(frames))) {
            playlists.files.push((THUMBNAILS_VTT.into(), text));
        }
        playlists.files.push(master);
    }
    Ok(Some(playlists))
}

/// The video parts in order, when they cover the source from its start to its end with no
/// hole (`None`: some chunk is not done yet), all on one grid.
fn contiguous_video(parts: &[PartManifest]) -> Result<Option<Vec<&PartManifest>>, String> {
    let mut video: Vec<&PartManifest> = parts.iter().filter(|p| p.kind == PartKind::Video).collect();
    video.sort_by_key(|p| p.first_segment);
    let Some(first) = video.first() else { return Ok(None) };
    let mut next = 0;
    for p in &video {
        if p.first_segment != next {
            return Ok(None); // a hole: some chunk is not done yet
        }
        if p.grid != first.grid {
            return Err("parts were encoded on different grids".into());
        }
        next = p.end_segment;
    }
    Ok(video.last().expect("non-empty").is_last.then_some(video))
}

/// Audio parts in order: from each chunk (its range), or one part over the whole source.
/// Unlike video parts, overlapping audio parts are an error (`None`: a hole, not yet).
fn contiguous_audio(parts: &[PartManifest]) -> Result<Option<Vec<&PartManifest>>, String> {
    let mut audio: Vec<&PartManifest> = parts.iter().filter(|p| p.kind == PartKind::Audio).collect();
    audio.sort_by_key(|p| p.first_segment);
    let mut next = 0;
    for p in &audio {
        if p.first_segment > next {
            return Ok(None); // a chunk's audio is not there yet
        }
        if p.first_segment < next {
            return Err(format!("audio parts overlap at segment {}", p.first_segment));
        }
        next = p.end_segment;
    }
    Ok(Some(audio))
}

/// Each video rendition joined over the parts, in the first part's rendition order, its
/// segments numbered from `first` on: `of` says which renditions of a part (its own, or a
/// forensic job's variant B, which starts at the first marked position and has no segment
/// at all when the source ends before it: [`variant_b_tracks`] checks it against A).
fn video_tracks(video: &[&PartManifest], of: impl Fn(&PartManifest) -> &Vec<RenditionPart>, first: u64) -> Result<Vec<Track>, String> {
    let mut tracks: BTreeMap<String, (usize, Track)> = BTreeMap::new();
    for (order, r) in of(video[0]).iter().enumerate() {
        tracks.insert(r.name.clone(), (order, Track { part: RenditionPart { segments: vec![], ..r.clone() } }));
    }
    for p in video {
        if of(p).len() != tracks.len() {
            return Err(format!("part at segment {} has other renditions", p.first_segment));
        }
        for r in of(p) {
            let (_, t) = tracks
                .get_mut(&r.name)
                .ok_or_else(|| format!("rendition {} is not in every part", r.name))?;
            t.part.segments.extend(r.segments.iter().cloned());
        }
    }
    let mut tracks: Vec<(usize, Track)> = tracks.into_values().collect();
    tracks.sort_by_key(|(order, _)| *order);
    let tracks: Vec<Track> = tracks.into_iter().map(|(_, t)| t).collect();
    for t in &tracks {
        let none_yet = first > 0 && t.part.segments.is_empty();
        if !none_yet && !numbered_from(first, &t.part.segments) {
            return Err(format!("rendition {} has missing or repeated segments", t.part.name));
        }
    }
    Ok(tracks)
}

/// A forensic job's B renditions joined over the parts: each must have a segment at every
/// marked position A has one (from [`FIRST_MARKED_SEGMENT`] on), and none where A has not.
fn variant_b_tracks(video: &[&PartManifest], a: &[Track]) -> Result<Vec<Track>, String> {
    let b = video_tracks(video, |p| &p.variant_b, FIRST_MARKED_SEGMENT)?;
    for t in &b {
        let own = a.iter().find(|a| a.part.name == t.part.name).ok_or_else(|| format!("variant B of {} has no rendition A", t.part.name))?;
        let marked = own.part.segments.iter().filter(|s| s.index >= FIRST_MARKED_SEGMENT).count();
        if t.part.segments.len() != marked {
            return Err(format!("variant B of {} has {} segments where A has {marked} marked ones", t.part.name, t.part.segments.len()));
        }
    }
    Ok(b)
}

/// Each audio rendition (the mix, then the source's tracks) joined over its parts.
fn audio_tracks(audio_parts: &[&PartManifest]) -> Result<Vec<Track>, String> {
    let Some(first) = audio_parts.first() else { return Ok(Vec::new()) };
    let mut tracks = Vec::new();
    for r in &first.renditions {
        let mut segments = Vec::new();
        for p in audio_parts {
            let own = p.renditions.iter().find(|o| o.name == r.name).ok_or_else(|| format!("audio rendition {} is not in every part", r.name))?;
            segments.extend(own.segments.iter().cloned());
        }
        if !numbered_from(0, &segments) {
            return Err(format!("audio rendition {} has missing or repeated segments", r.name));
        }
        tracks.push(Track { part: RenditionPart { segments, ..r.clone() } });
    }
    Ok(tracks)
}

/// The `EXT-X-MEDIA` entry of an audio rendition: the mix is the default; a source's own
/// tracks are there to be chosen, not picked by a player's language preference. The low
/// group's twin of a rendition has the same attributes but its URI (RFC 8216 4.3.4.1.1).
pub(crate) fn audio_media(name: &str, group: &str, label: Option<&str>, language: Option<&str>, channels: Option<u32>) -> AlternativeMedia {
    let twin = name.strip_suffix(LOW_SUFFIX).filter(|_| group == LOW_AUDIO_GROUP).unwrap_or(name);
    let default = twin == farm_contract::manifest::AUDIO_RENDITION;
    AlternativeMedia {
        media_type: AlternativeMediaType::Audio,
        uri: Some(format!("{name}/index.m3u8")),
        group_id: group.into(),
        name: label.unwrap_or("Main").into(),
        language: language.map(str::to_owned),
        default,
        autoselect: default,
        channels: channels.map(|c| c.to_string()),
        ..Default::default()
    }
}

/// Media and I-frame playlists of every track, and the master, last.
fn write_all(tracks: &[Track], audio: &[Track], rate: f64, job: Option<&str>) -> Result<Playlists, String> {
    let encrypted = tracks.iter().chain(audio).any(|t| t.part.segments.iter().any(|s| s.key.is_some()));
    let job = match (encrypted, job) {
        (true, None) => return Err("encrypted parts must name their job (the key URIs do)".into()),
        (_, job) => job.unwrap_or(""),
    };
    let mut files = Vec::new();
    let mut master = MasterPlaylist { independent_segments: true, ..Default::default() };
    // A variant's rates count its group's largest audio rendition (RFC 8216 4.3.4.2).
    let mut group_rates: HashMap<&str, (u64, u64)> = HashMap::new();
    for a in audio {
        let name = &a.part.name;
        files.push((format!("{name}/index.m3u8"), media_playlist(&a.part, name, job)));
        let (peak, avg) = a.bitrates();
        let rates = group_rates.entry(a.part.group()).or_default();
        *rates = (rates.0.max(peak), rates.1.max(avg));
        master.alternatives.push(audio_media(name, a.part.group(), a.part.label.as_deref(), a.part.language.as_deref(), a.part.channels));
    }
    let audio_codecs = audio.first().map(|a| a.part.codecs.clone());
    let mut iframe_variants = Vec::new();
    for t in tracks {
        let name = &t.part.name;
        files.push((format!("{name}/index.m3u8"), media_playlist(&t.part, name, job)));
        let (iframes_text, iframe_peak, iframe_avg) = iframe_playlist(t, name, rate, job);
        files.push((format!("{name}/iframes.m3u8"), iframes_text));
        let (peak, avg) = t.bitrates();
        let group = (!audio.is_empty()).then(|| t.part.group());
        let (audio_peak, audio_avg) = group.and_then(|g| group_rates.get(g)).copied().unwrap_or_default();
        let codecs = match &audio_codecs {
            Some(a) => format!("{},{a}", t.part.codecs),
            None => t.part.codecs.clone(),
        };
        let resolution = t.part.width.zip(t.part.height).map(|(w, h)| Resolution {
            width: u64::from(w),
            height: u64::from(h),
        });
        let frame_rate = t.part.frame_rate.map(|r| (r.as_f64() * 1000.0).round() / 1000.0);
        master.variants.push(VariantStream {
            uri: format!("{name}/index.m3u8"),
            bandwidth: peak + audio_peak,
            average_bandwidth: Some(avg + audio_avg),
            codecs: Some(codecs),
            resolution,
            frame_rate,
            audio: group.map(str::to_owned),
            ..Default::default()
        });
        iframe_variants.push(VariantStream {
            is_i_frame: true,
            uri: format!("{name}/iframes.m3u8"),
            bandwidth: iframe_peak,
            average_bandwidth: Some(iframe_avg),
            codecs: Some(t.part.codecs.clone()),
            resolution,
            ..Default::default()
        });
    }
    master.variants.extend(iframe_variants);
    let mut text = Vec::new();
    master.write_to(&mut text).map_err(|e| e.to_string())?;
    files.push((MASTER.into(), String::from_utf8(text).expect("m3u8-rs writes UTF-8")));
    Ok(Playlists { files })
}

/// Segments `first`, `first + 1`, ... with none missing or repeated, and at least one.
fn numbered_from(first: u64, segments: &[SegmentRecord]) -> bool {
    !segments.is_empty() && segments.iter().enumerate().all(|(i, s)| s.index == first + i as u64)
}

/// Segment URIs are relative to the playlist, which sits in the rendition's folder.
fn relative(uri: &str, folder: &str) -> String {
    uri.strip_prefix(&format!("{folder}/")).unwrap_or(uri).to_string()
}

/// A segment as a media playlist lists it; `key` for an encrypted job (every segment says
/// its key URI and explicit IV).
pub(crate) struct Entry {
    pub uri: String,
    pub duration: f64,
    pub key: Option<m3u8_rs::Key>,
}

fn media_playlist(part: &RenditionPart, folder: &str, job: &str) -> String {
    let entries: Vec<Entry> = part
        .segments
        .iter()
        .map(|s| Entry { uri: s.uri.clone(), duration: s.duration, key: s.key.as_ref().map(|k| encryption::playlist_key(job, k.period, &k.iv)) })
        .collect();
    media_text(&entries, folder, None, part.init.as_deref())
}

/// The `EXT-X-MAP` of an fMP4 rendition's init segment, on the first segment: before any
/// `EXT-X-KEY`, so the init segment is read in the clear (RFC 8216 4.3.2.4: a key applies
/// to the maps that follow it).
fn init_map(init: Option<&str>, folder: &str) -> Option<m3u8_rs::Map> {
    init.map(|uri| m3u8_rs::Map { uri: relative(uri, folder), ..Default::default() })
}

/// A media playlist: VOD with ENDLIST, or (with `live_target`) an EVENT playlist still
/// growing, whose target duration is the longest segment the job can have. `init`: the
/// fMP4 init segment (version 6 for `EXT-X-MAP`); `None` for MPEG-TS (version 3).
fn media_text(segments: &[Entry], folder: &str, live_target: Option<u64>, init: Option<&str>) -> String {
    let longest = target_duration(segments.iter().map(|s| s.duration));
    let map = init_map(init, folder);
    let playlist = MediaPlaylist {
        version: Some(if map.is_some() { 6 } else { 3 }),
        target_duration: live_target.map_or(longest, |t| t.max(longest)),
        media_sequence: 0,
        playlist_type: Some(if live_target.is_some() { MediaPlaylistType::Event } else { MediaPlaylistType::Vod }),
        independent_segments: true,
        end_list: live_target.is_none(),
        segments: segments
            .iter()
            .enumerate()
            .map(|(i, e)| MediaSegment {
                uri: relative(&e.uri, folder),
                duration: e.duration as f32,
                key: e.key.clone(),
                map: if i == 0 { map.clone() } else { None },
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    write_media(&playlist)
}

/// The I-frame playlist, with its peak and average bit rates.
fn iframe_playlist(t: &Track, folder: &str, rate: f64, job: &str) -> (String, u64, u64) {
    let end = t.end_unit();
    let frames: Vec<(&SegmentRecord, &farm_contract::manifest::IFrame)> =
        t.part.segments.iter().flat_map(|s| s.iframes.iter().map(move |i| (s, i))).collect();
    let mut segments = Vec::with_capacity(frames.len());
    let (mut peak, mut bytes) = (0u64, 0u64);
    for (i, (seg, iframe)) in frames.iter().enumerate() {
        let next = frames.get(i + 1).map_or(end, |(_, n)| n.frame);
        let duration = (next - iframe.frame) as f64 / rate;
        peak = peak.max((iframe.length as f64 * 8.0 / duration).ceil() as u64);
        bytes += iframe.length;
        // Encrypted jobs: each I-frame is a sealed resource of its own, no byte range.
        let (uri, byte_range) = match &iframe.uri {
            Some(own) => (relative(own, folder), None),
            None => (relative(&seg.uri, folder), Some(ByteRange { length: iframe.length, offset: Some(iframe.offset) })),
        };
        segments.push(MediaSegment {
            uri,
            duration: duration as f32,
            byte_range,
            map: if i == 0 { init_map(t.part.init.as_deref(), folder) } else { None },
            key: iframe.key.as_ref().map(|k| encryption::playlist_key(job, k.period, &k.iv)),
            ..Default::default()
        });
    }
    let total = t.duration();
    let playlist = MediaPlaylist {
        // EXT-X-MAP in an I-frame playlist needs version 5; byte ranges, 4.
        version: Some(if t.part.init.is_some() { 5 } else { 4 }),
        target_duration: target_duration(segments.iter().map(|s| f64::from(s.duration))),
        playlist_type: Some(MediaPlaylistType::Vod),
        i_frames_only: true,
        independent_segments: true,
        end_list: true,
        segments,
        ..Default::default()
    };
    (write_media(&playlist), peak, (bytes as f64 * 8.0 / total).ceil() as u64)
}

/// RFC 8216: every EXTINF rounded to the nearest integer is at most the target duration.
fn target_duration(durations: impl Iterator<Item = f64>) -> u64 {
    durations.map(|d| d.round() as u64).max().unwrap_or(1).max(1)
}

fn write_media(playlist: &MediaPlaylist) -> String {
    let mut text = Vec::new();
    playlist.write_to(&mut text).expect("writing to a Vec cannot fail");
    String::from_utf8(text).expect("m3u8-rs writes UTF-8")
}

pub mod live;
#[cfg(test)]
pub(crate) mod tests;
