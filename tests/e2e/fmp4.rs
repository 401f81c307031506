//! CMAF segments and the HEVC ladder (issue 17): a job in fragmented MP4 on the farm
//! (RabbitMQ, SeaweedFS, two workers, three chunks), per-title, with a burnt-in timecode
//! and an HEVC twin of every rung, passes the same independent checks as MPEG-TS (HEVC:
//! the `hvc1` sample entry, CODECS matching the stream's profile and level as ffprobe
//! reads them, in one master with the H.264 rungs): every segment decodes after its rendition's init
//! segment (ffprobe on the two joined), boundaries aligned across renditions, frame counts
//! exact, BANDWIDTH measured on the written files, every I-frame byte range one decodable
//! frame after the init segment. The chunks' joins are invisible: each fragment's decode
//! time continues the one before, whichever worker wrote it. The same source in MPEG-TS
//! (one pass, the worker's command) costs more bytes for the same encodes.

use std::path::Path;

use farm_tests::farm::chunked_s3_job;
use farm_tests::fixtures::{clip_15s, SMALL_LADDER};
use farm_tests::hls::{check_ladder, init_segment, read_media, segment_file};
use farm_tests::probe;

/// Bytes of a rendition's media segments (init segment apart).
fn segment_bytes(out: &Path, rendition: &str) -> u64 {
    let media = read_media(&out.join(rendition).join("index.m3u8")).unwrap();
    media.segments.iter().map(|s| std::fs::metadata(out.join(rendition).join(&s.uri)).unwrap().len()).sum()
}

#[test]
fn a_chunked_fmp4_job_passes_the_checks_of_mpeg_ts() {
    let fields = serde_json::json!({"ladder_mode": "per_title", "segment_format": "fmp4", "burn_in": ["timecode"], "codecs": ["h264", "hevc"]});
    let (done, out) = chunked_s3_job("fmp4", fields);
    assert_eq!(done["ladder"]["segment_format"], "fmp4", "{done}");
    let check = check_ladder(out.path(), 375, 25.0, true).unwrap();
    let names: Vec<&str> = check.renditions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["360p", "240p", "144p", "360p-hevc", "240p-hevc", "144p-hevc"]);
    assert!(check.renditions[3..].iter().all(|r| r.codecs.starts_with("hvc1.1.6.L")), "{:?}", check.renditions);
    assert!(check.iframes_checked >= 6 * 8, "{} I-frames checked", check.iframes_checked);
    // Each HEVC twin has its H.264 rung's decision, at x265's CRF.
    let rungs = done["ladder"]["decision"]["rungs"].as_array().unwrap();
    assert_eq!(rungs.len(), 3, "decided on the H.264 rungs: {rungs:?}");
    for rendition in ["360p", "240p", "144p", "360p-hevc", "240p-hevc", "144p-hevc", "audio"] {
        let folder = out.path().join(rendition);
        let media = read_media(&folder.join("index.m3u8")).unwrap();
        let init = init_segment(&media, &folder).unwrap().unwrap_or_else(|| panic!("{rendition}: no EXT-X-MAP"));
        assert!(media.segments.iter().all(|s| s.uri.ends_with(".m4s")), "{rendition}: {:?}", media.segments);
        // The segments alone are not playable: what describes the track is in the init segment.
        let alone = folder.join(&media.segments[1].uri);
        assert!(probe::frames(&alone, if rendition == "audio" { "a" } else { "v" }).map_or(true, |f| f.is_empty()), "{rendition}: a segment plays without its init segment");
        // The chunks (6 s: segments 0-2, 3 and 4) join: each segment starts where the last ended.
        if rendition != "audio" {
            let starts: Vec<f64> = media.segments.iter().map(|s| {
                let joined = segment_file(&folder, Some(&init), &s.uri).unwrap();
                probe::frames(joined.path(), "v").unwrap()[0].pts_time.unwrap()
            }).collect();
            let expected: Vec<f64> = [0.0, 2.0, 4.0, 6.0, 12.0].iter().map(|t| t + starts[0]).collect();
            assert!(starts.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 0.001), "{rendition}: segments start at {starts:?}");
        }
    }
    // The whole rendition, as one file: init segment and every segment in order, 375 frames.
    let folder = out.path().join("360p");
    let media = read_media(&folder.join("index.m3u8")).unwrap();
    let mut whole = std::fs::read(folder.join("init.mp4")).unwrap();
    for s in &media.segments {
        whole.extend(std::fs::read(folder.join(&s.uri)).unwrap());
    }
    let mp4 = tempfile::Builder::new().suffix(".mp4").tempfile().unwrap();
    std::fs::write(mp4.path(), &whole).unwrap();
    assert_eq!(probe::video_frame_count(mp4.path()).unwrap(), 375);

    // The same encodes in MPEG-TS cost more bytes: the container's overhead alone.
    let ts = tempfile::tempdir().unwrap();
    let ladder = ts.path().join("ladder.json");
    std::fs::write(&ladder, SMALL_LADDER).unwrap();
    farm_tests::worker::transcode(&clip_15s(), &ts.path().join("out"), &ladder, &["--segment-seconds", "6", "--burn-in", "timecode", "--segment-format", "ts"]).unwrap().ok().unwrap();
    let fmp4_fixed = tempfile::tempdir().unwrap();
    farm_tests::worker::transcode(&clip_15s(), &fmp4_fixed.path().join("out"), &ladder, &["--segment-seconds", "6", "--burn-in", "timecode", "--segment-format", "fmp4"]).unwrap().ok().unwrap();
    for rendition in ["360p", "240p", "144p", "audio"] {
        let (in_ts, in_fmp4) = (segment_bytes(&ts.path().join("out"), rendition), segment_bytes(&fmp4_fixed.path().join("out"), rendition));
        println!("{rendition}: MPEG-TS {in_ts} bytes, fMP4 {in_fmp4} bytes ({:.1} %)", in_fmp4 as f64 * 100.0 / in_ts as f64);
        assert!(in_fmp4 < in_ts, "{rendition}: fMP4 {in_fmp4} bytes, MPEG-TS {in_ts}");
    }
    for rung in ["360p", "240p", "144p"] {
        let (h264, hevc) = (segment_bytes(out.path(), rung), segment_bytes(out.path(), &format!("{rung}-hevc")));
        println!("per-title {rung}: H.264 {h264} bytes, HEVC {hevc} bytes ({:.1} %)", hevc as f64 * 100.0 / h264 as f64);
    }
}
