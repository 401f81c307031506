//! A source encoded as three ranges gives the playlists one pass gives, and audio whose
//! joins cannot be told from the one pass's.

use farm_tests::fixtures::{make, small_ladder_file};
use farm_tests::hls::{check_ladder, read_media};
use farm_tests::probe;
use farm_tests::sound;
use farm_tests::worker::transcode;

#[test]
fn three_ranges_give_the_same_ladder_as_one_pass() {
    // 15 s at 29.97 fps, 450 frames: three leading 2 s segments start at frames 0, 60,
    // 120, then 6 s ones at 180 and 360
    let source = make(
        "ranges-h264.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30000/1001:duration=15",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=15",
            "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "48",
            "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-ac", "2",
        ],
    )
    .unwrap();
    let ladder = small_ladder_file();
    let one = tempfile::tempdir().unwrap();
    transcode(&source, one.path(), &ladder, &[]).unwrap().ok().unwrap();

    let split = tempfile::tempdir().unwrap();
    // Out of order, and with boundaries that snap: 3.1 s -> 4 s (a join inside the leading
    // segments), 12.2 s -> 12 s.
    let run = transcode(&source, split.path(), &ladder, &["--start", "12.2"]).unwrap().ok().unwrap();
    assert!(run.stdout().contains("playlists follow"), "{}", run.stdout());
    assert!(!split.path().join("index.m3u8").exists(), "no master before every part is there");
    transcode(&source, split.path(), &ladder, &["--start", "3.1", "--end", "12.2"]).unwrap().ok().unwrap();
    assert!(!split.path().join("index.m3u8").exists(), "first range still missing");
    let last = transcode(&source, split.path(), &ladder, &["--end", "3.1"]).unwrap().ok().unwrap();
    assert!(last.stdout().trim().ends_with("index.m3u8"), "the last part publishes: {}", last.stdout());

    let frames = probe::video_frame_count(&source).unwrap();
    assert_eq!(frames, 450);
    let fps = 30000.0 / 1001.0;
    let a = check_ladder(one.path(), frames, fps, true).unwrap();
    let b = check_ladder(split.path(), frames, fps, true).unwrap();
    assert_eq!(a.renditions.len(), b.renditions.len());
    for (x, y) in a.renditions.iter().zip(&b.renditions) {
        assert_eq!((x.width, x.height, &x.codecs), (y.width, y.height, &y.codecs));
        let fx: Vec<(u64, f64)> = x.segments.iter().map(|s| (s.frames, s.first_pts)).collect();
        let fy: Vec<(u64, f64)> = y.segments.iter().map(|s| (s.frames, s.first_pts)).collect();
        assert_eq!(fx, fy, "{}: frames and start times per segment", x.name);
        assert_eq!(fx.iter().map(|f| f.0).collect::<Vec<_>>(), vec![60, 60, 60, 180, 90]);
        // the media playlists are identical to the byte
        let p = format!("{}/index.m3u8", x.name);
        assert_eq!(
            std::fs::read_to_string(one.path().join(&p)).unwrap(),
            std::fs::read_to_string(split.path().join(&p)).unwrap(),
            "{p}"
        );
        let ia = read_media(&one.path().join(format!("{}/iframes.m3u8", x.name))).unwrap();
        let ib = read_media(&split.path().join(format!("{}/iframes.m3u8", x.name))).unwrap();
        let durations = |m: &m3u8_rs::MediaPlaylist| m.segments.iter().map(|s| (s.uri.clone(), s.duration)).collect::<Vec<_>>();
        assert_eq!(durations(&ia), durations(&ib), "{}: I-frames at the same places", x.name);
    }
    // Each range encoded the audio of its own segments: the same segments, and no join heard.
    assert_eq!(
        std::fs::read_to_string(one.path().join("audio/index.m3u8")).unwrap(),
        std::fs::read_to_string(split.path().join("audio/index.m3u8")).unwrap()
    );
    let whole = sound::first_channel(&one.path().join("audio/index.m3u8")).unwrap();
    let joined = sound::first_channel(&split.path().join("audio/index.m3u8")).unwrap();
    assert_eq!(whole.len(), joined.len(), "as many samples");
    let errors = sound::join_errors(&joined, &whole, &[4.0, 12.0]).unwrap();
    assert_eq!(errors.delay, 0, "the ranges' audio lies on the one pass's samples: {errors:?}");
    errors.check(3.0).unwrap();
    // and against the source itself, the joins are no worse than the codec anywhere else
    let original = sound::first_channel(&source).unwrap();
    sound::join_errors(&joined, &original, &[4.0, 12.0]).unwrap().check(3.0).unwrap();
}

#[test]
fn sound_that_stops_before_the_picture_is_filled_with_silence_also_in_a_range_past_its_end() {
    // 10 s of picture, 3 s of sound; the second range (from 6 s) has no sound at all
    let source = make(
        "short-sound.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=10",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
            "-c:a", "pcm_s16le", "-ac", "2",
        ],
    )
    .unwrap();
    let ladder = small_ladder_file();
    let split = tempfile::tempdir().unwrap();
    transcode(&source, split.path(), &ladder, &["--start", "6"]).unwrap().ok().unwrap();
    transcode(&source, split.path(), &ladder, &["--end", "6"]).unwrap().ok().unwrap();
    let check = check_ladder(split.path(), 250, 25.0, true).unwrap();
    let audio = read_media(&split.path().join("audio/index.m3u8")).unwrap();
    // 2 + 2 + 2 + 4 s, as the video (plus the AAC priming in the first)
    let durations: Vec<f64> = audio.segments.iter().map(|s| f64::from(s.duration)).collect();
    assert_eq!(durations.iter().map(|d| d.round() as u64).collect::<Vec<_>>(), vec![2, 2, 2, 4], "{durations:?}");
    assert!((check.audio_seconds.unwrap() - 10.0).abs() < 0.1, "{:?}", check.audio_seconds);
    let decoded = sound::first_channel(&split.path().join("audio/index.m3u8")).unwrap();
    let rate = sound::RATE as usize;
    let loud = |from: f64, to: f64| decoded[(from * rate as f64) as usize..(to * rate as f64) as usize].iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(loud(0.5, 2.5) > 0.05, "the sine is there: {}", loud(0.5, 2.5));
    assert!(loud(3.2, 9.9) < 0.001, "silence after the sound's end: {}", loud(3.2, 9.9));
}
