use farm_contract::manifest::{IFrame, PartKind, PartManifest, RenditionPart, SegmentRecord, MANIFEST_VERSION};
use farm_contract::timeline::{Cuts, FrameRate, Grid};

use super::*;

const RATE: FrameRate = FrameRate { num: 25, den: 1 };

fn grid() -> Grid {
    Grid::new(RATE, Cuts::even(6000), 2000)
}

fn video_segment(name: &str, index: u64, frames: u64, bytes: u64) -> SegmentRecord {
    let start = index * 150;
    SegmentRecord {
        index,
        uri: format!("{name}/seg_{index:05}.ts"),
        bytes,
        duration: frames as f64 / 25.0,
        units: frames,
        start_unit: start,
        iframes: (0..frames.div_ceil(50))
            .map(|g| IFrame { frame: start + g * 50, offset: g * 10_000, length: 5_000, uri: None, key: None })
            .collect(),
        key: None,
    }
}

pub(crate) fn video_part(first: u64, end: u64, last_frames: u64, is_last: bool) -> PartManifest {
    let rendition = |name: &str, w, h, size| RenditionPart {
        name: name.into(),
        codecs: "avc1.64001f".into(),
        width: Some(w),
        height: Some(h),
        frame_rate: Some(RATE),
        channels: None,
        segments: (first..end)
            .map(|i| {
                let frames = if is_last && i + 1 == end { last_frames } else { 150 };
                video_segment(name, i, frames, size * frames / 150)
            })
            .collect(),
        label: None,
        language: None,
        source_streams: vec![],
        group: None,
        init: None,
    };
    PartManifest {
        version: MANIFEST_VERSION,
        kind: PartKind::Video,
        grid: grid(),
        first_segment: first,
        end_segment: end,
        is_last,
        audio_expected: true,
        renditions: vec![rendition("720p", 1280, 720, 750_000), rendition("360p", 640, 360, 300_000)],
        job_id: None,
        review: None,
        colour: None,
        sprites: vec![],
        variant_b: vec![],
    }
}

/// The audio over the whole source, as one part.
pub(crate) fn audio_part(segments: u64) -> PartManifest {
    audio_range(0, segments, true)
}

/// The audio of a chunk's segments `[first, end)`.
fn audio_range(first: u64, end: u64, is_last: bool) -> PartManifest {
    PartManifest {
        version: MANIFEST_VERSION,
        kind: PartKind::Audio,
        grid: grid(),
        first_segment: first,
        end_segment: end,
        is_last,
        audio_expected: true,
        renditions: vec![RenditionPart {
            name: "audio".into(),
            codecs: "mp4a.40.2".into(),
            width: None,
            height: None,
            frame_rate: None,
            channels: Some(2),
            label: Some("Stereo mix".into()),
            language: None,
            source_streams: vec![1, 2],
            group: None,
            init: None,
            segments: (first..end)
                .map(|i| SegmentRecord {
                    index: i,
                    uri: format!("audio/seg_{i:05}.ts"),
                    bytes: 96_000,
                    duration: 6.0,
                    units: 288_000,
                    start_unit: i * 288_000,
                    iframes: vec![],
                    key: None,
                })
                .collect(),
        }],
        job_id: None,
        review: None,
        colour: None,
        sprites: vec![],
        variant_b: vec![],
    }
}

fn file<'a>(p: &'a Playlists, key: &str) -> &'a str {
    &p.files.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key}")).1
}

#[test]
fn split_parts_give_the_same_playlists_as_one_part() {
    let whole = assemble(&[video_part(0, 5, 60, true), audio_part(5)]).unwrap().unwrap();
    let split = assemble(&[
        video_part(3, 5, 60, true),
        audio_part(5),
        video_part(0, 2, 0, false),
        video_part(2, 3, 0, false),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(whole, split);
}

#[test]
fn the_chunks_audio_parts_are_joined_in_order() {
    let whole = assemble(&[video_part(0, 5, 60, true), audio_part(5)]).unwrap().unwrap();
    let chunks = [video_part(3, 5, 60, true), audio_range(3, 5, true), video_part(0, 3, 0, false), audio_range(0, 3, false)];
    assert_eq!(assemble(&chunks).unwrap().unwrap(), whole);
    // a chunk's audio is not there yet
    assert_eq!(assemble(&[video_part(0, 5, 60, true), audio_range(3, 5, true)]).unwrap(), None);
    assert_eq!(assemble(&[video_part(0, 5, 60, true), audio_range(0, 3, false)]).unwrap(), None);
    // audio parts that overlap contradict each other
    let overlap = assemble(&[video_part(0, 5, 60, true), audio_part(5), audio_range(3, 5, true)]);
    assert!(overlap.unwrap_err().contains("overlap"));
    // a chunk that wrote fewer audio segments than its range leaves a hole
    let mut short = audio_range(0, 3, false);
    short.renditions[0].segments.pop();
    let hole = assemble(&[video_part(0, 5, 60, true), short, audio_range(3, 5, true)]);
    assert!(hole.unwrap_err().contains("audio rendition audio has missing"));
}

#[test]
fn incomplete_parts_give_no_playlists() {
    assert_eq!(assemble(&[video_part(0, 2, 0, false), audio_part(5)]).unwrap(), None);
    assert_eq!(assemble(&[video_part(0, 2, 0, false), video_part(3, 5, 60, true), audio_part(5)]).unwrap(), None);
    assert_eq!(assemble(&[video_part(0, 5, 60, true)]).unwrap(), None, "audio still missing");
    assert_eq!(assemble(&[audio_part(5)]).unwrap(), None);
}

#[test]
fn media_playlist_is_vod_with_a_rounded_target_duration() {
    let p = assemble(&[video_part(0, 3, 60, true), audio_part(3)]).unwrap().unwrap();
    let text = file(&p, "720p/index.m3u8");
    assert!(text.contains("#EXT-X-TARGETDURATION:6\n"), "{text}");
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"));
    assert!(text.contains("#EXT-X-ENDLIST"));
    assert!(text.contains("#EXTINF:6,\nseg_00000.ts"), "{text}");
    assert!(text.contains("#EXTINF:2.4,\nseg_00002.ts"), "{text}");
}

#[test]
fn master_declares_measured_bandwidth_codecs_and_audio_group() {
    let p = assemble(&[video_part(0, 3, 60, true), audio_part(3)]).unwrap().unwrap();
    let master = file(&p, MASTER);
    // 720p: 750 000 bytes per 6 s = 1 000 000 b/s (the short last segment has the same
    // rate); audio 96 000 bytes per 6 s = 128 000 b/s.
    assert!(master.contains("BANDWIDTH=1128000,AVERAGE-BANDWIDTH=1128000"), "{master}");
    assert!(master.contains("CODECS=\"avc1.64001f,mp4a.40.2\""), "{master}");
    assert!(master.contains("RESOLUTION=1280x720,FRAME-RATE=25"), "{master}");
    assert!(master.contains("AUDIO=\"audio\""));
    assert!(master.contains("#EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio/index.m3u8\",GROUP-ID=\"audio\""), "{master}");
    assert!(master.contains("#EXT-X-INDEPENDENT-SEGMENTS"));
    assert!(master.contains("#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH="), "{master}");
    assert!(master.contains("URI=\"360p/iframes.m3u8\""));
}

/// Issue 15: every source track is a rendition of the one audio group beside the mix.
#[test]
fn every_audio_rendition_is_in_the_group_and_the_mix_is_the_default() {
    let with_tracks = |mut part: PartManifest| {
        let mix = part.renditions[0].clone();
        let track = |n: usize, label: &str, language: Option<&str>| RenditionPart {
            name: format!("audio_{n}"),
            channels: Some(1),
            label: Some(label.into()),
            language: language.map(str::to_owned),
            source_streams: vec![n],
            segments: mix.segments.iter().map(|s| SegmentRecord { uri: s.uri.replace("audio/", &format!("audio_{n}/")), bytes: 48_000, ..s.clone() }).collect(),
            ..mix.clone()
        };
        part.renditions.push(track(1, "Boom", Some("eng")));
        part.renditions.push(track(2, "Track 2", None));
        part
    };
    let p = assemble(&[video_part(0, 3, 60, true), with_tracks(audio_range(0, 2, false)), with_tracks(audio_range(2, 3, true))]).unwrap().unwrap();
    let master = file(&p, MASTER);
    let media: Vec<&str> = master.lines().filter(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO")).collect();
    assert_eq!(media.len(), 3, "{master}");
    assert!(media[0].contains("NAME=\"Stereo mix\",DEFAULT=YES,AUTOSELECT=YES"), "{master}");
    assert!(media[1].contains("URI=\"audio_1/index.m3u8\",GROUP-ID=\"audio\",LANGUAGE=\"eng\",NAME=\"Boom\",CHANNELS=\"1\""), "{master}");
    assert_eq!(master.matches("DEFAULT=YES").count(), 1, "{master}");
    assert!(!media[2].contains("LANGUAGE") && media[2].contains("NAME=\"Track 2\""), "{master}");
    let track = file(&p, "audio_1/index.m3u8");
    assert_eq!(track.matches("#EXTINF").count(), 3, "{track}");
    // the variants count the group's largest audio rendition: the mix at 128 kb/s
    assert!(master.contains("BANDWIDTH=1128000"), "{master}");
    // a part missing a track's rendition contradicts the others
    let mut partial = with_tracks(audio_range(2, 3, true));
    partial.renditions.pop();
    let err = assemble(&[video_part(0, 3, 60, true), with_tracks(audio_range(0, 2, false)), partial]).unwrap_err();
    assert!(err.contains("audio_2 is not in every part"), "{err}");
}

#[test]
fn low_rungs_play_with_the_low_audio_group() {
    let with_low = |mut part: PartManifest| {
        let mix = part.renditions[0].clone();
        part.renditions.push(RenditionPart {
            name: "audio-low".into(),
            group: Some("audio-low".into()),
            segments: mix.segments.iter().map(|s| SegmentRecord { uri: s.uri.replace("audio/", "audio-low/"), bytes: 48_000, ..s.clone() }).collect(),
            ..mix.clone()
        });
        part.renditions[0].group = Some("audio".into());
        part
    };
    let mut video = video_part(0, 3, 60, true);
    video.renditions[1].group = Some("audio-low".into());
    let p = assemble(&[video, with_low(audio_range(0, 2, false)), with_low(audio_range(2, 3, true))]).unwrap().unwrap();
    let master = file(&p, MASTER);
    let media: Vec<&str> = master.lines().filter(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO")).collect();
    assert_eq!(media.len(), 2, "{master}");
    // The same member in both groups: every attribute the same but the URI (RFC 8216).
    let as_main = |l: &str| l.replace("audio-low/index.m3u8", "audio/index.m3u8").replace("GROUP-ID=\"audio-low\"", "GROUP-ID=\"audio\"");
    assert_eq!(as_main(media[1]), media[0], "{master}");
    let variants: Vec<&str> = master.lines().filter(|l| l.starts_with("#EXT-X-STREAM-INF")).collect();
    // 720p: 1 Mb/s + the 128 kb/s mix; 360p: 400 kb/s + the 64 kb/s twin.
    assert!(variants[0].contains("BANDWIDTH=1128000") && variants[0].contains("AUDIO=\"audio\""), "{master}");
    assert!(variants[1].contains("BANDWIDTH=464000") && variants[1].contains("AUDIO=\"audio-low\""), "{master}");
    assert_eq!(file(&p, "audio-low/index.m3u8").matches("#EXTINF").count(), 3);
}

#[test]
fn iframe_playlist_points_at_every_keyframe() {
    let p = assemble(&[video_part(0, 2, 100, true), audio_part(2)]).unwrap().unwrap();
    let text = file(&p, "720p/iframes.m3u8");
    assert!(text.contains("#EXT-X-I-FRAMES-ONLY"));
    // 150 frames + 100 frames: keyframes at 0, 50, 100, 150, 200; each lasts 2 s
    assert_eq!(text.matches("#EXT-X-BYTERANGE:5000@").count(), 5, "{text}");
    assert!(text.contains("#EXT-X-BYTERANGE:5000@10000\n#EXTINF:2,\nseg_00000.ts"), "{text}");
    assert!(text.contains("#EXT-X-BYTERANGE:5000@0\n#EXTINF:2,\nseg_00001.ts"), "{text}");
}

#[test]
fn fmp4_playlists_map_the_init_segment_before_any_key() {
    let mut parts = [video_part(0, 2, 100, true), audio_part(2)];
    for r in parts.iter_mut().flat_map(|p| p.renditions.iter_mut()) {
        r.init = Some(format!("{}/init.mp4", r.name));
        for s in &mut r.segments {
            s.uri = s.uri.replace(".ts", ".m4s");
            s.key = Some(farm_contract::manifest::SegmentKey { period: 0, iv: "00".repeat(16) });
        }
    }
    for p in &mut parts {
        p.job_id = Some("j1".into());
    }
    let p = assemble(&parts).unwrap().unwrap();
    for media in ["720p/index.m3u8", "audio/index.m3u8"] {
        let text = file(&p, media);
        assert!(text.contains("#EXT-X-VERSION:6\n"), "{text}");
        let (map, key) = (text.find("#EXT-X-MAP:URI=\"init.mp4\"").unwrap(), text.find("#EXT-X-KEY").unwrap());
        assert!(map < key, "the init segment is in the clear: {text}");
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1, "{text}");
        assert!(text.contains(",\nseg_00001.m4s\n"), "{text}");
    }
    let iframes = file(&p, "720p/iframes.m3u8");
    assert!(iframes.contains("#EXT-X-VERSION:5\n") && iframes.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{iframes}");
    let ts = assemble(&[video_part(0, 2, 100, true), audio_part(2)]).unwrap().unwrap();
    assert!(!file(&ts, "720p/index.m3u8").contains("EXT-X-MAP") && file(&ts, "720p/index.m3u8").contains("#EXT-X-VERSION:3\n"));
}

#[test]
fn contradicting_parts_are_an_error() {
    let mut odd = video_part(2, 5, 60, true);
    odd.renditions.pop();
    assert!(assemble(&[video_part(0, 2, 0, false), odd, audio_part(5)]).is_err());
}

/// Issue 16: an encrypted job's playlists give every segment its key URI and explicit IV,
/// and the I-frame playlist points at the I-frames' own sealed resources.
#[test]
fn encrypted_parts_give_a_key_tag_with_an_iv_for_every_segment() {
    use farm_contract::manifest::{iframe_uri, SegmentKey};
    let seal = |mut part: PartManifest| {
        part.job_id = Some("j42".into());
        for r in &mut part.renditions {
            for s in &mut r.segments {
                s.key = Some(SegmentKey { period: (s.index / 3) as u32, iv: format!("{:032x}", s.index + 1) });
                for i in &mut s.iframes {
                    (i.uri, i.offset) = (Some(iframe_uri(&r.name, i.frame, farm_contract::ladder::SegmentFormat::Ts)), 0);
                    i.key = Some(SegmentKey { period: (s.index / 3) as u32, iv: format!("{:032x}", i.frame + 100) });
                }
            }
        }
        part
    };
    let p = assemble(&[seal(video_part(0, 5, 60, true)), seal(audio_part(5))]).unwrap().unwrap();
    for name in ["720p/index.m3u8", "audio/index.m3u8"] {
        let text = file(&p, name);
        let tags: Vec<&str> = text.lines().filter(|l| l.starts_with("#EXT-X-KEY")).collect();
        assert_eq!(tags.len(), 5, "{text}");
        assert!(tags[0].contains(r#"METHOD=AES-128,URI="/v1/jobs/j42/keys/0",IV=0x00000000000000000000000000000001"#), "{text}");
        assert!(tags[4].contains(r#"URI="/v1/jobs/j42/keys/1",IV=0x00000000000000000000000000000005"#), "{text}");
    }
    let iframes = file(&p, "720p/iframes.m3u8");
    assert!(!iframes.contains("BYTERANGE"), "{iframes}");
    assert!(iframes.contains("\niframe_00000000.ts\n") && iframes.contains(r#"IV=0x00000000000000000000000000000064"#), "{iframes}");
    assert_eq!(iframes.matches("#EXT-X-KEY").count(), iframes.matches(".ts\n").count(), "{iframes}");
    // Without the job, there is no key URI to write.
    let mut nameless = seal(video_part(0, 5, 60, true));
    nameless.job_id = None;
    let mut audio = seal(audio_part(5));
    audio.job_id = None;
    assert!(assemble(&[nameless, audio]).unwrap_err().contains("must name their job"));
}

#[test]
fn a_forensic_jobs_b_playlists_sit_beside_as_and_shares_pick_from_both() {
    use crate::forensic::by_word::media_by_word;
    use crate::forensic::Variant;
    let encrypted = |r: &mut RenditionPart, folder: &str, iv: &str| {
        r.init = Some(format!("{folder}/init.mp4"));
        for s in &mut r.segments {
            s.uri = format!("{folder}/seg_{:05}.m4s", s.index);
            s.key = Some(farm_contract::manifest::SegmentKey { period: 0, iv: iv.repeat(16) });
        }
    };
    let mut parts = [video_part(0, 2, 150, false), video_part(2, 3, 100, true), audio_part(3)];
    for p in parts.iter_mut() {
        p.job_id = Some("j1".into());
        if p.kind == PartKind::Video {
            for r in &mut p.renditions {
                let name = r.name.clone();
                encrypted(r, &name, "aa");
            }
            p.variant_b = p.renditions.clone();
            for r in &mut p.variant_b {
                let folder = format!("{}/b", r.name);
                encrypted(r, &folder, "bb");
                // B starts at the first marked position: segment 0 is A's alone.
                r.segments.retain(|s| s.index >= farm_contract::manifest::FIRST_MARKED_SEGMENT);
            }
        }
    }
    // B from segment 0 (or with a hole) contradicts the parts.
    let mut from_zero = parts.clone();
    from_zero[0].variant_b = from_zero[0].renditions.clone();
    assert!(assemble(&from_zero).unwrap_err().contains("missing or repeated"));
    // B with no segment where A has marked ones (or short of A's) is missing, not done.
    for keep in [0, 1] {
        let mut short = parts.clone();
        for p in short.iter_mut().filter(|p| p.kind == PartKind::Video) {
            for r in &mut p.variant_b {
                r.segments.retain(|s| s.index < 1 + keep);
            }
        }
        let e = assemble(&short).unwrap_err();
        assert!(e.contains(&format!("variant B of 720p has {keep} segments where A has 2 marked ones")), "{e}");
    }
    let p = assemble(&parts).unwrap().unwrap();
    let b = file(&p, "720p/b/index.m3u8");
    assert!(b.contains("#EXT-X-MAP:URI=\"init.mp4\"") && b.contains(&format!("IV=0x{}\n#EXTINF:4,\nseg_00002.m4s", "bb".repeat(16))), "{b}");
    assert!(!b.contains("seg_00000"), "{b}");
    assert!(!file(&p, MASTER).contains("/b/"), "B is not a variant of its own");
    assert_eq!(p.files.last().unwrap().0, MASTER);
    let a = file(&p, "720p/index.m3u8");
    let share = media_by_word(a, b, |position| if position == 1 { Variant::B } else { Variant::A }).unwrap();
    let picked: Vec<&str> = share.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(picked, ["seg_00000.m4s", "b/seg_00001.m4s", "seg_00002.m4s"]);
    let before_b = share.lines().take_while(|l| *l != "b/seg_00001.m4s").filter(|l| l.starts_with("#EXT-X-KEY")).last().unwrap();
    assert!(before_b.ends_with(&format!("IV=0x{}", "bb".repeat(16))), "{share}");
    assert!(share.ends_with("#EXT-X-ENDLIST\n"), "{share}");
}
