//! Checks an HLS ladder on disk the way a strict player and Apple's authoring rules would,
//! measuring everything independently of the worker (ffprobe, file sizes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use m3u8_rs::{MasterPlaylist, MediaPlaylist};

use crate::probe;

#[derive(Debug, Clone)]
pub struct SegmentCheck {
    pub uri: String,
    pub bytes: u64,
    pub frames: u64,
    pub first_pts: f64,
    pub extinf: f64,
}

#[derive(Debug, Clone)]
pub struct RenditionCheck {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub codecs: String,
    pub segments: Vec<SegmentCheck>,
}

impl RenditionCheck {
    pub fn frames(&self) -> u64 {
        self.segments.iter().map(|s| s.frames).sum()
    }
}

#[derive(Debug, Clone)]
pub struct LadderCheck {
    pub master: MasterPlaylist,
    pub renditions: Vec<RenditionCheck>,
    pub audio_seconds: Option<f64>,
    pub iframes_checked: usize,
}

pub fn read_master(dir: &Path) -> Result<MasterPlaylist> {
    let text = std::fs::read(dir.join("index.m3u8")).context("reading the master playlist")?;
    m3u8_rs::parse_master_playlist_res(&text).map_err(|e| anyhow::anyhow!("master playlist: {e:?}"))
}

pub fn read_media(path: &Path) -> Result<MediaPlaylist> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_media(&text, &path.display().to_string())
}

/// A media playlist's text (`from` names it in errors), parsed.
pub fn parse_media(text: &[u8], from: &str) -> Result<MediaPlaylist> {
    m3u8_rs::parse_media_playlist_res(text).map_err(|e| anyhow::anyhow!("{from}: {e:?}"))
}

/// A segment as a player reads it: an MPEG-TS segment alone, an fMP4 one after the init
/// segment its playlist maps (`EXT-X-MAP`), joined into a temporary file.
pub struct Playable {
    path: PathBuf,
    _joined: Option<tempfile::TempPath>,
}

impl Playable {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `data` (a segment or a byte range of one) as a file a demuxer can open on its own.
pub fn playable(data: &[u8], init: Option<&Path>) -> Result<Playable> {
    let (suffix, head) = match init {
        Some(init) => (".mp4", std::fs::read(init).with_context(|| format!("reading {}", init.display()))?),
        None => (".ts", Vec::new()),
    };
    let file = tempfile::Builder::new().suffix(suffix).tempfile()?;
    std::fs::write(file.path(), [&head[..], data].concat())?;
    let path = file.into_temp_path();
    Ok(Playable { path: path.to_path_buf(), _joined: Some(path) })
}

/// The file of `segment` in `folder`, joined to its init segment in fMP4.
pub fn segment_file(folder: &Path, init: Option<&Path>, segment: &str) -> Result<Playable> {
    let file = folder.join(segment);
    match init {
        None => Ok(Playable { path: file, _joined: None }),
        Some(_) => playable(&std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?, init),
    }
}

/// The init segment a media playlist maps, if it is fMP4 (one map, before the first
/// segment, for the whole playlist: the farm writes no other kind).
pub fn init_segment(media: &MediaPlaylist, folder: &Path) -> Result<Option<PathBuf>> {
    let maps: Vec<&m3u8_rs::Map> = media.segments.iter().filter_map(|s| s.map.as_ref()).collect();
    match (maps.as_slice(), media.segments.first().and_then(|s| s.map.as_ref())) {
        ([], _) => Ok(None),
        ([map], Some(_)) => {
            ensure!(map.byte_range.is_none(), "a byte range on the init segment");
            let path = folder.join(&map.uri);
            ensure!(path.exists(), "the init segment {} is missing", map.uri);
            Ok(Some(path))
        }
        _ => bail!("EXT-X-MAP must come once, before the first segment: {maps:?}"),
    }
}

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance * expected.abs()
}

/// Full check of a ladder in `dir`: `frames` is the source's frame count, `fps` its rate.
pub fn check_ladder(dir: &Path, frames: u64, fps: f64, has_audio: bool) -> Result<LadderCheck> {
    let master = read_master(dir)?;
    ensure!(master.independent_segments, "EXT-X-INDEPENDENT-SEGMENTS missing");
    let audio_media: Vec<_> = master.alternatives.iter().collect();
    ensure!(has_audio != audio_media.is_empty(), "audio group present: {}", !audio_media.is_empty());

    // Audio: each group measured once, added to the bandwidth of the variants that use it.
    let groups = check_audio_groups(dir, &master)?;
    let audio_seconds = groups.get("audio").map(|g| g.seconds);

    let mut renditions = Vec::new();
    let mut iframes_checked = 0;
    for variant in master.variants.iter().filter(|v| !v.is_i_frame) {
        let path = dir.join(&variant.uri);
        let media = read_media(&path)?;
        check_media_rules(&media, &variant.uri)?;
        let folder = path.parent().expect("folder").to_path_buf();
        let init = init_segment(&media, &folder)?;
        let mut segments = Vec::new();
        for seg in &media.segments {
            let file = folder.join(&seg.uri);
            let joined = segment_file(&folder, init.as_deref(), &seg.uri)?;
            let f = probe::frames(joined.path(), "v").with_context(|| format!("decoding {}", file.display()))?;
            let first = f.first().with_context(|| format!("{} has no frame", seg.uri))?;
            ensure!(first.key_frame == 1 && first.pict_type.as_deref() == Some("I"), "{} does not start with a key frame", seg.uri);
            segments.push(SegmentCheck {
                uri: format!("{}/{}", variant.uri.trim_end_matches("index.m3u8").trim_end_matches('/'), seg.uri),
                bytes: std::fs::metadata(&file)?.len(),
                frames: f.len() as u64,
                first_pts: first.pts_time.context("no pts")?,
                extinf: f64::from(seg.duration),
            });
        }
        let first_seg = segment_file(&folder, init.as_deref(), &media.segments[0].uri)?;
        let streams = probe::streams(first_seg.path())?;
        let v = streams.iter().find(|s| s.codec_type.as_deref() == Some("video")).context("no video")?;
        ensure!(v.pix_fmt.as_deref() == Some("yuv420p"), "not 8-bit 4:2:0: {:?}", v.pix_fmt);
        let sar = v.sample_aspect_ratio.as_deref().unwrap_or("1:1");
        ensure!(sar == "1:1" || sar == "0:1", "pixels not square: {sar}");
        let rate = probe::ratio(v.r_frame_rate.as_deref().unwrap_or("0/1"));
        ensure!(within(rate, fps, 0.001), "frame rate {rate} is not the source's {fps}");
        let res = variant.resolution.context("RESOLUTION missing")?;
        ensure!(
            (u64::from(v.width.unwrap_or(0)), u64::from(v.height.unwrap_or(0))) == (res.width, res.height),
            "RESOLUTION {}x{} does not match the stream {:?}x{:?}", res.width, res.height, v.width, v.height
        );
        let codecs = variant.codecs.clone().context("CODECS missing")?;
        match v.codec_name.as_deref() {
            Some("h264") => check_avc1(&codecs, v)?,
            Some("hevc") => {
                ensure!(init.is_some(), "{}: HEVC outside fMP4", variant.uri);
                check_hvc1(&codecs, v)?;
            }
            other => bail!("{}: video is {other:?}, not H.264 or HEVC", variant.uri),
        }
        ensure!(has_audio == codecs.contains(",mp4a.40.2"), "CODECS {codecs} audio part");

        // Frame counts, durations, continuity.
        let total: u64 = segments.iter().map(|s| s.frames).sum();
        ensure!(total == frames, "{}: {total} frames, the source has {frames}", variant.uri);
        for (i, s) in segments.iter().enumerate() {
            ensure!((s.extinf - s.frames as f64 / fps).abs() < 0.002, "{}: EXTINF {} for {} frames", s.uri, s.extinf, s.frames);
            if let Some(next) = segments.get(i + 1) {
                let expected = s.first_pts + s.frames as f64 / fps;
                ensure!((next.first_pts - expected).abs() < 0.5 / fps, "{} starts at {} not {}", next.uri, next.first_pts, expected);
            }
        }
        // Bandwidth, measured on the written files.
        let (audio_peak, audio_avg) = match &variant.audio {
            Some(group) => groups.get(group).map(|g| (g.peak, g.avg)).with_context(|| format!("{}: no audio group {group}", variant.uri))?,
            None => (0.0, 0.0),
        };
        let peak = segments.iter().map(|s| s.bytes as f64 * 8.0 / (s.frames as f64 / fps)).fold(0.0, f64::max) + audio_peak;
        let avg = segments.iter().map(|s| s.bytes).sum::<u64>() as f64 * 8.0 / (total as f64 / fps) + audio_avg;
        ensure!(within(variant.bandwidth as f64, peak, 0.10), "{}: BANDWIDTH {} vs measured {peak:.0}", variant.uri, variant.bandwidth);
        let declared_avg = variant.average_bandwidth.context("AVERAGE-BANDWIDTH missing")? as f64;
        ensure!(within(declared_avg, avg, 0.10), "{}: AVERAGE-BANDWIDTH {declared_avg} vs measured {avg:.0}", variant.uri);

        // I-frame playlist of this rendition.
        let iframe = master
            .variants
            .iter()
            .find(|i| i.is_i_frame && Path::new(&i.uri).parent() == Path::new(&variant.uri).parent())
            .with_context(|| format!("no I-frame playlist for {}", variant.uri))?;
        iframes_checked += check_iframes(dir, &iframe.uri, total, fps)?;

        renditions.push(RenditionCheck {
            name: variant.uri.trim_end_matches("/index.m3u8").to_string(),
            width: res.width as u32,
            height: res.height as u32,
            codecs,
            segments,
        });
    }
    ensure!(!renditions.is_empty(), "no variant");
    // Segment boundaries fall on the same timestamps in every rendition.
    for r in &renditions[1..] {
        let a: Vec<f64> = renditions[0].segments.iter().map(|s| s.first_pts).collect();
        let b: Vec<f64> = r.segments.iter().map(|s| s.first_pts).collect();
        ensure!(a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-3), "boundaries of {} differ from {}: {a:?} vs {b:?}", r.name, renditions[0].name);
    }
    if let Some(secs) = audio_seconds {
        let video = frames as f64 / fps;
        ensure!((secs - video).abs() < 0.1, "audio lasts {secs:.3} s, video {video:.3} s");
    }
    Ok(LadderCheck { master, renditions, audio_seconds, iframes_checked })
}

/// `avc1.PPCCLL`: profile and level as ffprobe reads them from the stream.
fn check_avc1(codecs: &str, v: &probe::Stream) -> Result<()> {
    let avc = codecs.split(',').next().unwrap_or_default();
    let profile_idc = match v.profile.as_deref() {
        Some("High") => "64",
        Some("Main") => "4d",
        Some("Constrained Baseline") | Some("Baseline") => "42",
        other => bail!("unexpected profile {other:?}"),
    };
    ensure!(avc.len() == 11 && avc.starts_with("avc1."), "bad CODECS {codecs}");
    ensure!(avc[5..7] == *profile_idc, "CODECS {codecs} profile does not match {:?}", v.profile);
    ensure!(avc[9..11] == format!("{:02x}", v.level.unwrap_or(0)), "CODECS {codecs} level does not match {:?}", v.level);
    Ok(())
}

/// `hvc1.<profile>.<compatibility>.<tier><level>...` (ISO/IEC 14496-15 Annex E) with the
/// `hvc1` sample entry: profile (Main: 1, compatible with Main and Main 10: flags 6) and
/// level as ffprobe reads them from the stream.
fn check_hvc1(codecs: &str, v: &probe::Stream) -> Result<()> {
    ensure!(v.codec_tag_string.as_deref() == Some("hvc1"), "HEVC sample entry {:?}, not hvc1", v.codec_tag_string);
    let hvc = codecs.split(',').next().unwrap_or_default();
    let fields: Vec<&str> = hvc.split('.').collect();
    ensure!(fields.len() >= 4 && fields[0] == "hvc1", "bad CODECS {codecs}");
    ensure!(v.profile.as_deref() == Some("Main") && fields[1] == "1" && fields[2] == "6", "CODECS {codecs} profile does not match {:?}", v.profile);
    let level = v.level.unwrap_or(0);
    ensure!(fields[3] == format!("L{level}") || fields[3] == format!("H{level}"), "CODECS {codecs} level does not match {level}");
    Ok(())
}

/// An audio group as written: its largest rendition's peak and average rates (what a
/// variant adds, RFC 8216 4.3.4.2) and the length of its default rendition.
struct AudioGroupCheck {
    peak: f64,
    avg: f64,
    seconds: f64,
}

/// Every audio rendition's playlist and segment sizes; the default rendition of each group
/// decoded as 48 kHz stereo AAC-LC (the mix); groups of audio have the same members with
/// the same attributes but the URI (RFC 8216 4.3.4.1.1).
fn check_audio_groups(dir: &Path, master: &MasterPlaylist) -> Result<std::collections::BTreeMap<String, AudioGroupCheck>> {
    let mut groups = std::collections::BTreeMap::new();
    let mut members: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for alt in &master.alternatives {
        let uri = alt.uri.as_ref().context("audio media without URI")?;
        let path = dir.join(uri);
        let media = read_media(&path)?;
        check_media_rules(&media, uri)?;
        let folder = path.parent().expect("folder").to_path_buf();
        let init = init_segment(&media, &folder)?;
        let (mut bytes, mut secs, mut peak) = (0u64, 0.0, 0.0f64);
        for seg in &media.segments {
            let file = folder.join(&seg.uri);
            if alt.default {
                let streams = probe::streams(segment_file(&folder, init.as_deref(), &seg.uri)?.path())?;
                let a = streams.iter().find(|s| s.codec_type.as_deref() == Some("audio")).context("no audio stream")?;
                ensure!(a.codec_name.as_deref() == Some("aac") && a.profile.as_deref() == Some("LC"), "audio is not AAC-LC: {a:?}");
                ensure!(a.channels == Some(2) && a.sample_rate == Some(48_000.0), "audio is not 48 kHz stereo: {a:?}");
            }
            let size = std::fs::metadata(&file)?.len();
            let d = f64::from(seg.duration);
            peak = peak.max(size as f64 * 8.0 / d);
            bytes += size;
            secs += d;
        }
        let group = groups.entry(alt.group_id.clone()).or_insert(AudioGroupCheck { peak: 0.0, avg: 0.0, seconds: 0.0 });
        group.peak = group.peak.max(peak);
        group.avg = group.avg.max(bytes as f64 * 8.0 / secs);
        if alt.default {
            group.seconds = secs;
        }
        members.entry(&alt.group_id).or_default().push(format!("{:?} {:?} {} {}", alt.name, alt.language, alt.default, alt.autoselect));
    }
    let mut sets = members.values();
    if let Some(first) = sets.next() {
        ensure!(sets.all(|s| s == first), "audio groups differ in their members: {members:?}");
    }
    Ok(groups)
}

fn check_media_rules(media: &MediaPlaylist, uri: &str) -> Result<()> {
    ensure!(media.end_list, "{uri}: no EXT-X-ENDLIST");
    ensure!(matches!(media.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod)), "{uri}: not VOD");
    ensure!(!media.segments.is_empty(), "{uri}: no segment");
    let longest = media.segments.iter().map(|s| f64::from(s.duration).round() as u64).max().unwrap_or(0);
    ensure!(media.target_duration == longest, "{uri}: TARGETDURATION {} but the longest segment rounds to {longest}", media.target_duration);
    Ok(())
}

/// Every I-frame byte range holds exactly one decodable key frame (after the init segment,
/// in fMP4: the range runs from the fragment's moof to the end of the frame).
fn check_iframes(dir: &Path, uri: &str, frames: u64, fps: f64) -> Result<usize> {
    let path = dir.join(uri);
    let media = read_media(&path)?;
    ensure!(media.i_frames_only, "{uri}: no EXT-X-I-FRAMES-ONLY");
    let folder = path.parent().expect("folder");
    let init = init_segment(&media, folder)?;
    let mut files: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
    let mut total = 0.0;
    for (i, seg) in media.segments.iter().enumerate() {
        let range = seg.byte_range.as_ref().with_context(|| format!("{uri}: entry {i} has no byte range"))?;
        let file = folder.join(&seg.uri);
        if !files.contains_key(&file) {
            files.insert(file.clone(), std::fs::read(&file)?);
        }
        let data = &files[&file];
        let offset = range.offset.context("byte range without offset")? as usize;
        let end = offset + range.length as usize;
        ensure!(end <= data.len(), "{uri}: range past the end of {}", seg.uri);
        let tmp = playable(&data[offset..end], init.as_deref())?;
        let f = match init {
            Some(_) => probe::frames_of_fmp4_range(tmp.path(), "v"),
            None => probe::frames(tmp.path(), "v"),
        };
        let f = f.with_context(|| format!("{uri}: I-frame {i}"))?;
        ensure!(f.len() == 1 && f[0].key_frame == 1, "{uri}: I-frame {i} decodes to {} frames", f.len());
        total += f64::from(seg.duration);
    }
    let expected = frames as f64 / fps;
    ensure!((total - expected).abs() < 0.01, "{uri}: I-frame durations add up to {total}, not {expected}");
    Ok(media.segments.len())
}
