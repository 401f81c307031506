//! Review copies (issue 15), what a reviewer points at: burnt-in timecode read back by OCR
//! on both sides of every chunk join, every source audio track as its own rendition with
//! its own tone, and a thumbnail track whose every cue lies inside its sprite.

use std::path::Path;

use farm_contract::manifest::PartManifest;
use farm_contract::timecode::Timecode;
use farm_contract::timeline::FrameRate;
use farm_tests::fixtures::{eight_tone_tracks, make, small_ladder_file};
use farm_tests::picture::{digits, ocr};
use farm_tests::probe::video_stream;

/// Width and height of a picture file, as ffprobe reads them.
fn picture_size(path: &Path) -> (u32, u32) {
    let s = video_stream(path).unwrap();
    (s.width.unwrap(), s.height.unwrap())
}
use farm_tests::sound::{first_channel, join_errors, tone_level, track_first_channel};
use farm_tests::worker::transcode;

/// The first frame of each chunk after the first, from the parts the chunks wrote.
fn joins(out: &Path) -> Vec<u64> {
    let mut joins: Vec<u64> = std::fs::read_dir(out.join("parts"))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let part: PartManifest = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            let first = part.renditions.first()?.segments.first()?.start_unit;
            (part.kind == farm_contract::manifest::PartKind::Video && first > 0).then_some(first)
        })
        .collect();
    joins.sort();
    joins
}

/// Issue 15: timecode is the start timecode plus the global frame index, so it runs on
/// across chunk joins (a chunk that restarted its count would show the start again).
#[test]
fn burnt_in_timecode_is_exact_on_both_sides_of_every_chunk_join() {
    for (rate, text, start) in [((24000, 1001), "24000/1001", "01:00:00:00"), ((25, 1), "25", "10:59:59:20"), ((30000, 1001), "30000/1001", "00:00:59;20")] {
        let file = format!("review-tc-{}.mov", rate.0);
        let source = make(
            &file,
            &["-f", "lavfi", "-i", &format!("color=c=gray:s=640x360:r={text},noise=alls=20:allf=t"), "-t", "6",
              "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let ladder = small_ladder_file();
        let burn = ["--burn-in", "timecode,frame_number", "--start-timecode", start, "--segment-seconds", "2", "--lead-segments", "0"];
        // three chunks, as a farm splits them: joins at 2 s and 4 s
        for range in [&["--end", "2"][..], &["--start", "2", "--end", "4"], &["--start", "4"]] {
            let args: Vec<&str> = burn.iter().chain(range).copied().collect();
            transcode(&source, &out, &ladder, &args).unwrap().ok().unwrap();
        }
        let joins = joins(&out);
        assert_eq!(joins.len(), 2, "three chunks: {joins:?}");
        let rate = FrameRate { num: rate.0, den: rate.1 };
        let start_tc = Timecode::parse(start).unwrap();
        // the smallest rung: burn-ins must be legible there too
        let rung = out.join("144p/index.m3u8");
        for n in joins.iter().flat_map(|j| [j - 1, *j]) {
            let expected = start_tc.plus_frames(n, rate).unwrap().to_string();
            let read = ocr(&rung, n, (0.0, 0.78, 0.8, 0.22)).unwrap();
            println!("{text} fps, frame {n}: expected {expected}, read {read:?}");
            assert_eq!(digits(&read), digits(&expected), "{text} fps, frame {n}: read {read:?}, expected {expected}");
        }
    }
}

#[test]
fn every_audio_track_is_its_own_rendition_beside_the_stereo_mix() {
    let boom = ["-metadata:s:a:2", "handler_name=Boom", "-metadata:s:a:2", "language=eng"];
    let source = eight_tone_tracks("review-8-tracks.mov", 4, &boom).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // two chunks: each track's join is in its own rendition
    transcode(&source, &out, &small_ladder_file(), &["--segment-seconds", "2", "--end", "2"]).unwrap().ok().unwrap();
    transcode(&source, &out, &small_ladder_file(), &["--segment-seconds", "2", "--start", "2"]).unwrap().ok().unwrap();
    let master = std::fs::read_to_string(out.join("index.m3u8")).unwrap();
    let media: Vec<&str> = master.lines().filter(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO")).collect();
    assert_eq!(media.len(), 9, "{master}");
    assert_eq!(media.iter().filter(|l| l.contains("GROUP-ID=\"audio\"")).count(), 9);
    assert!(media[0].contains("DEFAULT=YES") && media.iter().skip(1).all(|l| !l.contains("DEFAULT=YES")), "{master}");
    assert!(media[3].contains("LANGUAGE=\"eng\"") && media[3].contains("NAME=\"Boom\""), "{master}");
    assert!(media[1].contains("NAME=\"Track 1\""), "{master}");
    for n in 1..=8u32 {
        let samples = first_channel(&out.join(format!("audio_{n}/index.m3u8"))).unwrap();
        let own = tone_level(&samples, f64::from(300 * n));
        let others: f32 = (1..=8u32).filter(|m| *m != n).map(|m| tone_level(&samples, f64::from(300 * m))).fold(0.0, f32::max);
        assert!(own > 0.05 && others < own / 20.0, "track {n}: own tone {own}, loudest other {others}");
        // the join at 2 s is no louder an error than the codec's own, on every track
        let original = track_first_channel(&source, n as usize - 1).unwrap();
        join_errors(&samples, &original, &[2.0]).unwrap().check(3.0).unwrap_or_else(|e| panic!("track {n}: {e}"));
    }
    // the mix is tracks 1 and 2 (left, right)
    let mix = first_channel(&out.join("audio/index.m3u8")).unwrap();
    assert!(tone_level(&mix, 300.0) > 0.05 && tone_level(&mix, 900.0) < 0.005);
    let review: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("review.json")).unwrap()).unwrap();
    assert_eq!(review["audio"].as_array().unwrap().len(), 9);
    assert_eq!(review["audio"][3]["source_streams"], serde_json::json!([3]));
}

#[test]
fn the_thumbnail_track_points_inside_its_sprites() {
    let source = make("review-thumbs.mov", &["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=6", "-c:v", "libx264", "-preset", "ultrafast"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    transcode(&source, &out, &small_ladder_file(), &["--segment-seconds", "2", "--end", "4"]).unwrap().ok().unwrap();
    transcode(&source, &out, &small_ladder_file(), &["--segment-seconds", "2", "--start", "4"]).unwrap().ok().unwrap();
    let vtt = std::fs::read_to_string(out.join("thumbnails.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
    let cues: Vec<(&str, &str)> = vtt.split("\n\n").skip(1).map(|c| c.trim().split_once('\n').unwrap()).collect();
    assert_eq!(cues.len(), 3, "6 s, one every 2 s: {vtt}");
    let mut expected_start = "00:00:00.000".to_string();
    for (times, target) in cues {
        let (from, to) = times.split_once(" --> ").unwrap();
        assert_eq!(from, expected_start, "cues are contiguous");
        expected_start = to.to_string();
        let (file, rect) = target.split_once("#xywh=").unwrap();
        let r: Vec<u32> = rect.split(',').map(|v| v.parse().unwrap()).collect();
        let (w, h) = picture_size(&out.join(file));
        assert!(r[0] + r[2] <= w && r[1] + r[3] <= h && r[2] > 0 && r[3] > 0, "{target} outside {w}x{h}");
    }
    assert_eq!(expected_start, "00:00:06.000");
    assert!(picture_size(&out.join("poster.jpg")).0 >= 320);
}
