//! EVENT playlists while a job runs: review starts before the job ends.
//!
//! Takes the job's plan (grid, frame count, fitted renditions) and the set of segment
//! objects that exist (each is written whole, atomically). Every rendition's playlist lists
//! its segments contiguous from the first; durations come from the frame grid, which every
//! worker shares. The master appears once every rendition has its first segment; it
//! declares the ladder's peak rates (the measured ones replace them in the final VOD master).
//! A forensic job's B segments (`{rendition}/b/`) get their own playlists beside A's, not
//! named by the master.

use std::collections::BTreeSet;

use farm_contract::ladder::SegmentFormat;
use farm_contract::manifest::{init_uri, segment_uri, FIRST_MARKED_SEGMENT, VARIANT_B};
use farm_contract::timeline::Grid;
use m3u8_rs::{MasterPlaylist, Resolution, VariantStream};

use super::{audio_media, media_text, target_duration, Entry, Playlists, MASTER};
use crate::codecs::AAC_LC;


#[derive(Debug, Clone)]
pub struct LiveVideo {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Peak rate to declare, bits per second.
    pub bandwidth: u64,
    /// From the first segment's SPS, once it exists.
    pub codecs: Option<String>,
    /// The audio group it plays with.
    pub audio_group: String,
}

/// One audio rendition of the job's group.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LiveAudio {
    pub name: String,
    pub label: Option<String>,
    pub language: Option<String>,
    pub channels: u32,
    /// Declared bits per second.
    pub bandwidth: u64,
    /// The source's stream indices behind it.
    #[serde(default)]
    pub source_streams: Vec<usize>,
    /// `None` (plans from before audio by bandwidth): the main group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl LiveAudio {
    pub fn group(&self) -> &str {
        farm_contract::ladder::group_or_main(&self.group)
    }
}

#[derive(Debug, Clone)]
pub struct LivePlan {
    pub grid: Grid,
    pub total_frames: u64,
    pub video: Vec<LiveVideo>,
    pub sample_rate: u32,
    /// The audio renditions, the mix first; empty for a source without sound.
    pub audio: Vec<LiveAudio>,
    /// The segments' container: fMP4 renditions wait for their init segment too.
    pub segment_format: SegmentFormat,
}

/// The key attribute of segment `index` of a rendition, for an encrypted job (the
/// coordinator holds the keys and derives the IV as the worker did).
pub type Keying<'a> = &'a dyn Fn(&str, u64) -> Option<m3u8_rs::Key>;

/// Segments of each rendition present from the first on, or `None` until every rendition
/// has its first segment.
pub fn live(plan: &LivePlan, present: &BTreeSet<String>, keying: Option<Keying>) -> Option<Playlists> {
    let format = plan.segment_format;
    let entry = |name: &str, k: u64, duration: f64| Entry { uri: segment_uri(name, k, format), duration, key: keying.and_then(|f| f(name, k)) };
    let init = |name: &str| init_uri(name, format);
    let g = &plan.grid;
    let segments = g.segment_count(plan.total_frames);
    let video_durations: Vec<f64> = (0..segments)
        .map(|k| {
            let end = g.segment_start(k + 1).min(plan.total_frames);
            g.rate.frames_to_seconds(end - g.segment_start(k))
        })
        .collect();
    // Audio is cut at the end of the picture, as the worker cuts it.
    let audio_durations: Vec<f64> = if plan.audio.is_empty() { Vec::new() } else {
        let sample_rate = plan.sample_rate;
        let end = g.samples_at_frame(plan.total_frames, sample_rate);
        let at = |k: u64| g.cuts.start_unit(k, u64::from(sample_rate), 1).min(end);
        (0..segments).map(|k| (at(k + 1) - at(k)) as f64 / f64::from(sample_rate)).collect()
    };
    // Segments present from `first` on without a hole (and the init segment, fMP4).
    let contiguous_from = |name: &str, first: u64| {
        let ready = init(name).is_none_or(|uri| present.contains(&uri));
        (first..segments).take_while(|k| ready && present.contains(&segment_uri(name, *k, format))).count() as u64
    };
    let contiguous = |name: &str| contiguous_from(name, 0) as usize;
    // The final VOD playlist's rule (its longest segment, rounded) over every segment the
    // job will have, so the target duration never changes (RFC 8216 6.2.1), also for a
    // source too short to reach a full-length segment.
    let seg_target = target_duration(video_durations.iter().chain(&audio_durations).copied());

    let mut files = Vec::new();
    let mut master = MasterPlaylist { independent_segments: true, ..Default::default() };
    let mut audio_rates: std::collections::HashMap<&str, u64> = Default::default();
    for a in &plan.audio {
        let n = contiguous(&a.name);
        if n == 0 {
            return None;
        }
        let list: Vec<Entry> = (0..n).map(|k| entry(&a.name, k as u64, audio_durations[k])).collect();
        files.push((format!("{}/index.m3u8", a.name), media_text(&list, &a.name, Some(seg_target), init(&a.name).as_deref())));
        master.alternatives.push(audio_media(&a.name, a.group(), a.label.as_deref(), a.language.as_deref(), Some(a.channels)));
        let rate = audio_rates.entry(a.group()).or_default();
        *rate = (*rate).max(a.bandwidth);
    }
    for v in &plan.video {
        let n = contiguous(&v.name);
        if n == 0 {
            return None;
        }
        let list: Vec<Entry> = (0..n).map(|k| entry(&v.name, k as u64, video_durations[k])).collect();
        files.push((format!("{}/index.m3u8", v.name), media_text(&list, &v.name, Some(seg_target), init(&v.name).as_deref())));
        // A forensic job's variant B, as far as its segments are there (shares' playlists
        // are picked from A's and B's, never further than B's reaches).
        let b = format!("{}/{VARIANT_B}", v.name);
        let n_b = contiguous_from(&b, FIRST_MARKED_SEGMENT);
        if n_b > 0 {
            let marked = FIRST_MARKED_SEGMENT..FIRST_MARKED_SEGMENT + n_b;
            let list: Vec<Entry> = marked.map(|k| entry(&b, k, video_durations[k as usize])).collect();
            files.push((format!("{b}/index.m3u8"), media_text(&list, &b, Some(seg_target), init(&b).as_deref())));
        }
        let codecs = v.codecs.clone().map(|c| if plan.audio.is_empty() { c } else { format!("{c},{AAC_LC}") });
        master.variants.push(VariantStream {
            uri: format!("{}/index.m3u8", v.name),
            bandwidth: v.bandwidth + audio_rates.get(v.audio_group.as_str()).copied().unwrap_or(0),
            codecs,
            resolution: Some(Resolution { width: u64::from(v.width), height: u64::from(v.height) }),
            frame_rate: Some((g.rate.as_f64() * 1000.0).round() / 1000.0),
            audio: (!plan.audio.is_empty()).then(|| v.audio_group.clone()),
            ..Default::default()
        });
    }
    let mut text = Vec::new();
    master.write_to(&mut text).expect("writing to a Vec cannot fail");
    files.push((MASTER.into(), String::from_utf8(text).expect("UTF-8")));
    Some(Playlists { files })
}

#[cfg(test)]
mod tests {
    use farm_contract::ladder::AUDIO_GROUP;
    use farm_contract::manifest::AUDIO_RENDITION as AUDIO;
    use farm_contract::timeline::{Cuts, FrameRate};

    use super::*;

    fn plan() -> LivePlan {
        LivePlan {
            grid: Grid::new(FrameRate { num: 25, den: 1 }, Cuts::even(6000), 2000),
            total_frames: 400, // 16 s: segments of 150, 150, 100 frames
            video: vec![
                LiveVideo { name: "720p".into(), width: 1280, height: 720, bandwidth: 3_300_000, codecs: Some("avc1.64001f".into()), audio_group: AUDIO_GROUP.into() },
                LiveVideo { name: "360p".into(), width: 640, height: 360, bandwidth: 880_000, codecs: None, audio_group: AUDIO_GROUP.into() },
            ],
            sample_rate: 48_000,
            audio: vec![LiveAudio { name: AUDIO.into(), label: Some("Stereo mix".into()), language: None, channels: 2, bandwidth: 128_000, source_streams: vec![1], group: None }],
            segment_format: SegmentFormat::Ts,
        }
    }

    fn present(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn a_low_rung_plays_with_the_low_audio_group_while_the_job_runs() {
        let mut plan = plan();
        plan.video[1].audio_group = "audio-low".into();
        let low = LiveAudio { name: "audio-low".into(), bandwidth: 64_000, group: Some("audio-low".into()), ..plan.audio[0].clone() };
        plan.audio.push(low);
        let keys = present(&["720p/seg_00000.ts", "360p/seg_00000.ts", "audio/seg_00000.ts"]);
        assert!(live(&plan, &keys, None).is_none(), "the low group's rendition has no segment yet");
        let keys = present(&["720p/seg_00000.ts", "360p/seg_00000.ts", "audio/seg_00000.ts", "audio-low/seg_00000.ts"]);
        let p = live(&plan, &keys, None).unwrap();
        let master = &p.files.iter().find(|(k, _)| k == MASTER).unwrap().1;
        assert!(master.contains("GROUP-ID=\"audio-low\",NAME=\"Stereo mix\",DEFAULT=YES"), "{master}");
        assert!(master.contains("BANDWIDTH=3428000") && master.contains("BANDWIDTH=944000,"), "{master}");
        assert!(master.contains("AUDIO=\"audio-low\"\n360p/index.m3u8"), "{master}");
    }

    #[test]
    fn fmp4_renditions_wait_for_their_init_segment_and_map_it() {
        let plan = LivePlan { segment_format: SegmentFormat::Fmp4, ..plan() };
        let segments = ["720p/seg_00000.m4s", "360p/seg_00000.m4s", "audio/seg_00000.m4s", "audio/init.mp4", "360p/init.mp4"];
        assert!(live(&plan, &present(&segments), None).is_none(), "720p has no init segment yet");
        let ts = ["720p/seg_00000.ts", "360p/seg_00000.ts", "audio/seg_00000.ts", "audio/init.mp4", "360p/init.mp4", "720p/init.mp4"];
        assert!(live(&plan, &present(&ts), None).is_none(), "MPEG-TS segments are not this job's");
        let keys = present(&[&segments[..], &["720p/init.mp4", "720p/seg_00001.m4s"]].concat());
        let p = live(&plan, &keys, None).unwrap();
        let hd = &p.files.iter().find(|(k, _)| k == "720p/index.m3u8").unwrap().1;
        assert!(hd.contains("#EXT-X-VERSION:6\n"), "{hd}");
        assert!(hd.contains("#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:6,\nseg_00000.m4s\n#EXTINF:6,\nseg_00001.m4s"), "{hd}");
        assert_eq!(hd.matches("EXT-X-MAP").count(), 1, "{hd}");
    }

    #[test]
    fn a_forensic_jobs_b_segments_get_playlists_of_their_own_as_far_as_they_reach() {
        let plan = LivePlan { segment_format: SegmentFormat::Fmp4, ..plan() };
        let a = ["720p/init.mp4", "720p/seg_00000.m4s", "720p/seg_00001.m4s", "360p/init.mp4", "360p/seg_00000.m4s", "audio/init.mp4", "audio/seg_00000.m4s"];
        let p = live(&plan, &present(&a), None).unwrap();
        assert!(!p.files.iter().any(|(k, _)| k.contains("/b/")), "an unmarked job has no B playlists");
        // B starts at the first marked position (1): 720p's has it, not 2 yet; 360p's none.
        let b = ["720p/b/init.mp4", "720p/b/seg_00001.m4s", "720p/b/seg_00003.m4s"];
        let p = live(&plan, &present(&[&a[..], &b[..]].concat()), None).unwrap();
        let text = &p.files.iter().find(|(k, _)| k == "720p/b/index.m3u8").unwrap().1;
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"") && text.contains("\nseg_00001.m4s\n"), "{text}");
        assert!(!text.contains("seg_00000") && !text.contains("seg_00003"), "{text}");
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{text}");
        assert!(!p.files.iter().any(|(k, _)| k == "360p/b/index.m3u8"));
        let master = &p.files.last().unwrap();
        assert!(master.0 == MASTER && !master.1.contains("/b/"), "{}", master.1);
    }

    #[test]
    fn nothing_until_every_rendition_has_its_first_segment() {
        assert!(live(&plan(), &present(&["720p/seg_00000.ts", "audio/seg_00000.ts"]), None).is_none());
        assert!(live(&plan(), &present(&["720p/seg_00000.ts", "360p/seg_00000.ts"]), None).is_none());
    }

    #[test]
    fn event_playlists_list_contiguous_segments_only() {
        let keys = present(&[
            "720p/seg_00000.ts", "720p/seg_00002.ts", "360p/seg_00000.ts", "360p/seg_00001.ts",
            "360p/seg_00002.ts", "audio/seg_00000.ts",
        ]);
        let p = live(&plan(), &keys, None).unwrap();
        let text = |k: &str| p.files.iter().find(|(key, _)| key == k).unwrap().1.clone();
        let hd = text("720p/index.m3u8");
        assert!(hd.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && !hd.contains("ENDLIST"), "{hd}");
        assert_eq!(hd.matches("#EXTINF").count(), 1, "segment 1 is missing, so 2 is not listed yet");
        let sd = text("360p/index.m3u8");
        assert!(sd.contains("#EXTINF:6,\nseg_00001.ts\n#EXTINF:4,\nseg_00002.ts"), "{sd}");
        assert!(sd.contains("#EXT-X-TARGETDURATION:6"), "{sd}");
        let master = text(MASTER);
        assert!(master.contains("BANDWIDTH=3428000,CODECS=\"avc1.64001f,mp4a.40.2\""), "{master}");
        assert!(master.contains("AUDIO=\"audio\""));
    }

    #[test]
    fn leading_segments_are_listed_with_their_own_durations() {
        let mut plan = plan();
        plan.grid = Grid::new(FrameRate { num: 25, den: 1 }, Cuts::with_lead(6000, 3, 2000), 2000);
        let keys: Vec<String> = ["720p", "360p", "audio"]
            .iter()
            .flat_map(|r| (0..5).map(move |k| segment_uri(r, k, SegmentFormat::Ts)))
            .collect();
        let p = live(&plan, &keys.into_iter().collect(), None).unwrap();
        let text = |k: &str| p.files.iter().find(|(key, _)| key == k).unwrap().1.clone();
        // 400 frames: 50, 50, 50, 150, 100
        let hd = text("720p/index.m3u8");
        assert!(hd.contains("#EXTINF:2,\nseg_00000.ts\n#EXTINF:2,\nseg_00001.ts\n#EXTINF:2,\nseg_00002.ts\n#EXTINF:6,\nseg_00003.ts\n#EXTINF:4,\nseg_00004.ts"), "{hd}");
        assert!(hd.contains("#EXT-X-TARGETDURATION:6"), "{hd}");
        let audio = text("audio/index.m3u8");
        assert!(audio.contains("#EXTINF:2,\nseg_00000.ts\n#EXTINF:2,\nseg_00001.ts\n#EXTINF:2,\nseg_00002.ts\n#EXTINF:6,\nseg_00003.ts\n#EXTINF:4,\nseg_00004.ts"), "{audio}");
    }

    #[test]
    fn a_source_shorter_than_a_full_segment_keeps_its_target_duration_when_it_ends() {
        // 8 s with three 2 s leading segments: 2, 2, 2, 2 s. The EVENT playlists must
        // already declare the target the final VOD playlists will have (2, not 6).
        let mut plan = plan();
        plan.grid = Grid::new(FrameRate { num: 25, den: 1 }, Cuts::with_lead(6000, 3, 2000), 2000);
        plan.total_frames = 200;
        let first = live(&plan, &present(&["720p/seg_00000.ts", "360p/seg_00000.ts", "audio/seg_00000.ts"]), None).unwrap();
        let all: Vec<String> = ["720p", "360p", "audio"].iter().flat_map(|r| (0..4).map(move |k| segment_uri(r, k, SegmentFormat::Ts))).collect();
        let whole = live(&plan, &all.into_iter().collect(), None).unwrap();
        for rendition in ["720p", "360p", "audio"] {
            let key = format!("{rendition}/index.m3u8");
            let text = |p: &Playlists| p.files.iter().find(|(k, _)| *k == key).unwrap().1.clone();
            assert!(text(&first).contains("#EXT-X-TARGETDURATION:2\n"), "{}", text(&first));
            let listed: Vec<Entry> = (0..4).map(|k| Entry { uri: segment_uri(rendition, k, SegmentFormat::Ts), duration: 2.0, key: None }).collect();
            let vod = media_text(&listed, rendition, None, None);
            assert!(vod.contains("#EXT-X-TARGETDURATION:2\n") && text(&whole).contains("#EXT-X-TARGETDURATION:2\n"), "{vod}");
        }
    }
}
