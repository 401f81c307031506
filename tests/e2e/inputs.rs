//! Every kind of original the facility receives becomes a ladder that passes the checks.

use farm_tests::fixtures::{small_ladder_file, Kind};
use farm_tests::hls::{check_ladder, LadderCheck};
use farm_tests::probe;
use farm_tests::worker::transcode;

fn transcode_and_check(kind: Kind) -> LadderCheck {
    transcode_and_check_with(kind, &[]).0
}

/// Returns the check and what the worker wrote on stderr.
fn transcode_and_check_with(kind: Kind, extra: &[&str]) -> (LadderCheck, String) {
    let source = kind.make().expect("fixture");
    let out = tempfile::tempdir().unwrap();
    let run = transcode(&source, out.path(), &small_ladder_file(), extra).unwrap().ok().unwrap();
    assert!(run.stdout().trim().ends_with("index.m3u8"), "prints the master playlist: {}", run.stdout());
    let streams = probe::streams(&source).unwrap();
    let video = streams.iter().find(|s| s.codec_type.as_deref() == Some("video")).unwrap();
    let fps = probe::ratio(video.r_frame_rate.as_deref().unwrap());
    let frames = probe::video_frame_count(&source).unwrap();
    let check = check_ladder(out.path(), frames, fps, kind.has_audio())
        .unwrap_or_else(|e| panic!("{kind:?}: {e:#}\nworker said: {}", run.stderr()));
    (check, run.stderr())
}

fn sizes(check: &LadderCheck) -> Vec<(u32, u32)> {
    check.renditions.iter().map(|r| (r.width, r.height)).collect()
}

#[test]
fn prores_422_hq_10_bit_with_stereo_pcm() {
    let check = transcode_and_check(Kind::ProRes422);
    assert_eq!(sizes(&check), vec![(640, 360), (426, 238), (256, 144)]);
    // 8 s at 25 fps: three leading 2 s segments (the ladder's default), then what is left
    // of the first 6 s one
    let frames: Vec<u64> = check.renditions[0].segments.iter().map(|s| s.frames).collect();
    assert_eq!(frames, vec![50, 50, 50, 50]);
    assert!(check.iframes_checked >= 4);
}

#[test]
fn segment_length_is_configurable_and_progress_is_logged_off_a_terminal() {
    let (check, stderr) = transcode_and_check_with(Kind::ProRes422, &["--segment-seconds", "4", "--lead-segments", "0"]);
    let frames: Vec<u64> = check.renditions[0].segments.iter().map(|s| s.frames).collect();
    assert_eq!(frames, vec![100, 100]);
    // stderr is a pipe here: plain progress lines with a percentage, no bar
    assert!(stderr.contains("progress 0.0%"), "{stderr}");
    assert!(!stderr.contains('\r'), "no terminal bar when stderr is not a terminal");
}

#[test]
fn prores_4444_odd_size_without_audio() {
    let check = transcode_and_check(Kind::ProRes4444Odd);
    // 321x181 fits the 240p box as it is (made even, not upscaled); the 360p rung would
    // repeat that size and is dropped
    assert_eq!(sizes(&check), vec![(320, 180), (256, 144)]);
    assert!(check.audio_seconds.is_none());
}

#[test]
fn dnxhr_in_mxf_with_two_mono_tracks() {
    let check = transcode_and_check(Kind::DnxhrMxf);
    assert_eq!(check.renditions.len(), 3);
    assert!(check.audio_seconds.is_some());
}

#[test]
fn camera_h264_with_b_frames_and_5_1_audio() {
    let check = transcode_and_check(Kind::H264Mp4);
    assert_eq!(sizes(&check), vec![(480, 270), (426, 238), (256, 144)]);
    // 5 s at 29.97 fps: 2 s segments start on the first frame past each boundary (60,
    // 60 frames, 2.002 s each), the last is short (30 frames, 1.001 s)
    let segments = &check.renditions[0].segments;
    assert_eq!(segments.iter().map(|s| s.frames).collect::<Vec<_>>(), vec![60, 60, 30]);
    assert!((segments[0].extinf - 2.002).abs() < 1e-3, "{}", segments[0].extinf);
    assert!((segments[2].extinf - 1.001).abs() < 1e-3, "{}", segments[2].extinf);
}

#[test]
fn camera_hevc_10_bit_rotated_becomes_portrait() {
    let check = transcode_and_check(Kind::HevcRotated);
    // 480x270 turned by 90 degrees: portrait boxes (360x640, 240x426, 144x256)
    assert_eq!(sizes(&check), vec![(270, 480), (238, 426), (144, 256)]);
}

#[test]
fn interlaced_mpeg2_in_mxf_with_non_square_pixels() {
    let check = transcode_and_check(Kind::Mpeg2InterlacedMxf);
    // 720x576 with 16:15 pixels is 768x576 (4:3) displayed: fitted into 360 lines as 480x360
    assert_eq!(sizes(&check)[0], (480, 360));
    // deinterlaced to one frame per frame: 3 s at 25 fps
    assert_eq!(check.renditions[0].frames(), 75);
}

#[test]
fn multitrack_59_94_uses_the_first_two_mono_tracks() {
    let check = transcode_and_check(Kind::H264MultiTrack);
    assert_eq!(sizes(&check), vec![(320, 180), (256, 144)]);
    assert!(check.audio_seconds.is_some());
}

/// An interlaced source split into ranges keeps every frame: the deinterlacer holds one
/// picture back, and a range that ended before the source's end never got it out, so each
/// chunk but the last lost its last frame (found while reviewing issue 15's picture chain).
#[test]
fn an_interlaced_source_split_into_ranges_keeps_every_frame() {
    let source = Kind::Mpeg2InterlacedMxf.make().expect("fixture");
    let out = tempfile::tempdir().unwrap();
    for range in [&["--end", "1"][..], &["--start", "1", "--end", "2"], &["--start", "2"]] {
        let args: Vec<&str> = ["--segment-seconds", "1", "--lead-segments", "0"].iter().chain(range).copied().collect();
        transcode(&source, out.path(), &small_ladder_file(), &args).unwrap().ok().unwrap();
    }
    let check = check_ladder(out.path(), 75, 25.0, true).unwrap_or_else(|e| panic!("{e:#}"));
    for r in &check.renditions {
        let frames: Vec<u64> = r.segments.iter().map(|s| s.frames).collect();
        assert_eq!(frames, vec![25, 25, 25], "{}", r.name);
    }
}
