//! Playback in a real browser (issue 15): Debian's Chromium plays a chunked ladder with
//! hls.js and switches between the stereo mix and single source tracks while it plays;
//! each switch is heard (the Web Audio analyser's dominant frequency is the track's own
//! test tone) and playback runs on without stalling. Driven by tests/browser/audio_switch.mjs.

use std::path::Path;
use std::process::Command;

use farm_tests::fixtures::{eight_tone_tracks, small_ladder_file};
use farm_tests::worker::transcode;

#[test]
fn hls_js_in_chromium_switches_audio_renditions_without_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // 12 s, eight mono tracks, track N a sine at 300 x N Hz
    let source = eight_tone_tracks("browser-8-tracks.mov", 12, &[]).unwrap();
    // two chunks, so that playback also crosses a join on every track
    for range in [&["--end", "4"][..], &["--start", "4"]] {
        let args: Vec<&str> = ["--segment-seconds", "2"].iter().chain(range).copied().collect();
        transcode(&source, &out, &small_ladder_file(), &args).unwrap().ok().unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/audio_switch.mjs");
    // hls.js track ids: 0 is the mix, N is the source's track N
    let run = Command::new("node").arg(&script).arg(&out).args(["3", "6", "1", "0"]).output().expect("node (scripts/setup.sh installs the browser tools)");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}\n{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    println!("{report}");
    assert!(report.get("failure").is_none(), "{report}");
    // hls.js 1.7 notes a fragment re-appended over what is buffered (`bufferAppendNoProgress`,
    // not fatal) when a switch refills the audio buffer; anything else is a failure. Stalls
    // are measured below.
    let errors: Vec<&str> = report["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(errors.iter().all(|e| *e == "bufferAppendNoProgress"), "hls.js errors: {report}");
    assert_eq!(report["names"].as_array().unwrap().len(), 9, "{report}");
    assert_eq!(report["names"][0], "Stereo mix");
    let heard: Vec<&serde_json::Value> = report["tracks"].as_array().unwrap().iter().collect();
    assert_eq!(heard.len(), 5, "{report}");
    // The mix starts: tracks 1 (left, 300 Hz) and 2 (right, 600 Hz); the analyser hears both.
    let near = |hz: f64, target: f64| (hz - target).abs() < 12.0;
    let first = heard[0]["hz"].as_f64().unwrap();
    assert!(near(first, 300.0) || near(first, 600.0), "the mix: {first} Hz");
    for h in &heard[1..] {
        let track = h["track"].as_u64().unwrap();
        let hz = h["hz"].as_f64().unwrap();
        if track > 0 {
            assert!(near(hz, 300.0 * track as f64), "track {track}: heard {hz} Hz: {report}");
        } else {
            assert!(near(hz, 300.0) || near(hz, 600.0), "back to the mix: {hz} Hz");
        }
        let (advanced, wall) = (h["advanced"].as_f64().unwrap(), h["wall"].as_f64().unwrap());
        assert_eq!(h["waiting"], 0, "the player waited after switching to {track}: {report}");
        assert!(advanced >= wall - 0.5, "playback stalled after switching to {track}: {advanced:.2} s of media in {wall:.2} s");
    }
}
