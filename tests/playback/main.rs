//! Playback in a real browser (issue 15): Debian's Chromium plays a chunked ladder with
//! hls.js and switches between the stereo mix and single source tracks while it plays;
//! each switch is heard (the Web Audio analyser's dominant frequency is the track's own
//! test tone) and playback runs on without stalling. The ladder has a rung over 1 Mb/s and
//! one under (issue 17: audio by bandwidth), so switching rungs also switches between the
//! `audio` and `audio-low` groups: the reviewer's track plays on in the other group. The
//! ladder plays in MPEG-TS and in fMP4 segments.
//! Driven by tests/browser/audio_switch.mjs.
//!
//! A stall is measured in wall-clock time against the media played, so these tests run in
//! a test binary of their own (cargo runs test binaries one after another), one playback
//! at a time ([`alone`]): with the end-to-end suite's encodes beside it on two cores,
//! Chromium was starved and a switch's refill measured the machine's load, not the ladder.

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use farm_tests::fixtures::eight_tone_tracks;
use farm_tests::worker::transcode;

#[test]
fn hls_js_in_chromium_switches_audio_renditions_without_a_stall() {
    play_and_switch(&["--segment-format", "ts"]);
}

/// The same ladder in fragmented MP4 (CMAF, issue 17): init segments, fragments joined
/// across the two chunks, both audio groups.
#[test]
fn hls_js_in_chromium_plays_the_fmp4_ladder_and_switches_audio() {
    play_and_switch(&["--segment-format", "fmp4"]);
}

/// One playback at a time in this binary.
fn alone() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    farm_tests::turn(&TURN)
}

fn play_and_switch(format: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // 20 s, eight mono tracks, track N a sine at 300 x N Hz; long enough for two smooth rung
    // switches (each takes effect at a fragment boundary) after the track switches
    let source = eight_tone_tracks("browser-8-tracks-20s.mov", 20, &[]).unwrap();
    // hls.js orders levels by bit rate: level 1 (320x180 at 1.2 Mb/s) plays with `audio`,
    // level 0 (256x144) with `audio-low`
    let ladder = dir.path().join("ladder.json");
    std::fs::write(&ladder, r#"{"video": [{"name": "180p", "width": 640, "height": 360, "bitrate_kbps": 1200}, {"name": "144p", "width": 256, "height": 144, "bitrate_kbps": 250}]}"#).unwrap();
    // two chunks, so that playback also crosses a join on every track
    for range in [&["--end", "4"][..], &["--start", "4"]] {
        let args: Vec<&str> = ["--segment-seconds", "2"].iter().chain(range).chain(format).copied().collect();
        transcode(&source, &out, &ladder, &args).unwrap().ok().unwrap();
    }
    // hls.js track ids: 0 is the mix, N is the source's track N; `Ln`: level n; `Sn` first:
    // start at level n. The tracks on the top rung; then track 6 across both groups.
    let extension = if format.contains(&"ts") { "ts" } else { "m4s" };
    assert!(out.join(format!("180p/seg_00003.{extension}")).exists(), "{extension} segments");
    let _turn = alone();
    check_heard(&out, &["S1", "3", "6", "1", "0"], 5);
    check_heard(&out, &["S1", "6", "L0", "L1"], 4);
}

/// Plays `out` with `steps`, and checks that each switch is heard without a stall and that
/// a rung switch keeps the track, in the rung's audio group.
fn check_heard(out: &Path, steps: &[&str], switches: usize) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/audio_switch.mjs");
    let run = Command::new("node").arg(&script).arg(out).args(steps).output().expect("node (scripts/setup.sh installs the browser tools)");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}\n{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    println!("{report}");
    assert!(report.get("failure").is_none(), "{report}");
    // hls.js 1.7 reports two things of its own doing as errors, never fatal: a fragment
    // re-appended over what is buffered (`bufferAppendNoProgress`) when a switch refills the
    // audio buffer, and a request it cancelled itself because a switch made it obsolete
    // (`aborted`: an init segment or fragment of the group it left; it loads the new one
    // next). Anything else is a failure; stalls are measured below.
    let own = ["bufferAppendNoProgress", "aborted"];
    let errors: Vec<&str> = report["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(errors.iter().all(|e| own.contains(e)), "hls.js errors: {report}");
    assert_eq!(report["names"].as_array().unwrap().len(), 9, "{report}");
    assert_eq!(report["names"][0], "Stereo mix");
    let heard: Vec<&serde_json::Value> = report["tracks"].as_array().unwrap().iter().collect();
    assert_eq!(heard.len(), switches, "{report}");
    // The mix starts: tracks 1 (left, 300 Hz) and 2 (right, 600 Hz); the analyser hears both.
    let near = |hz: f64, target: f64| (hz - target).abs() < 12.0;
    let first = heard[0]["hz"].as_f64().unwrap();
    assert!(near(first, 300.0) || near(first, 600.0), "the mix: {first} Hz");
    let mut track = 0;
    for h in &heard[1..] {
        // A level switch keeps the track; its group is the level's.
        if let Some(level) = h["level"].as_u64() {
            let group = if level == 1 { "audio" } else { "audio-low" };
            assert_eq!((h["playing"]["track"].as_u64(), h["playing"]["group"].as_str()), (Some(track), Some(group)), "{report}");
        } else {
            track = h["track"].as_u64().unwrap();
        }
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
