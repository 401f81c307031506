//! Hostile or broken input fails fast, with a one-line error naming the problem.

use std::path::{Path, PathBuf};
use std::time::Duration;

use farm_tests::fixtures::{fixtures_dir, make, small_ladder_file, Kind};
use farm_tests::worker::transcode;

fn write(name: &str, data: &[u8]) -> PathBuf {
    let path = fixtures_dir().join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// Runs the worker on `source`, expects a failure whose error line contains `expected`.
fn fails_with(source: &Path, expected: &str) {
    let out = tempfile::tempdir().unwrap();
    let run = transcode(source, out.path(), &small_ladder_file(), &[]).unwrap();
    let stderr = run.stderr();
    assert!(!run.output.status.success(), "{} was accepted", source.display());
    let line = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert!(line.contains(expected), "{}: {line:?} does not say {expected:?}", source.display());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(run.elapsed < Duration::from_secs(30), "took {:?}", run.elapsed);
    assert!(!out.path().join("index.m3u8").exists());
}

#[test]
fn zero_byte_file() {
    fails_with(&write("empty.mov", b""), "is empty (0 bytes)");
}

#[test]
fn missing_file() {
    fails_with(Path::new("/nonexistent/clip.mov"), "source /nonexistent/clip.mov does not exist");
}

#[test]
fn text_and_random_bytes_are_not_media() {
    fails_with(&write("notes.mov", b"these are the director's notes, not a clip\n"), "not a media file");
    let random: Vec<u8> = (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    fails_with(&write("random.mxf", &random), "not a media file");
}

#[test]
fn playlists_and_concat_scripts_posing_as_video_are_refused() {
    let hls = write("playlist.mov", b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n");
    fails_with(&hls, "container format \"hls\" is not accepted");
    let concat = write("concat.mov", b"ffconcat version 1.0\nfile '/etc/passwd'\n");
    fails_with(&concat, "not a media file");
}

#[test]
fn truncated_files() {
    let good = Kind::ProRes422.make().unwrap();
    let data = std::fs::read(&good).unwrap();
    // MOV with the index at the end, cut in half: the index is gone.
    fails_with(&write("truncated-half.mov", &data[..data.len() / 2]), "not a media file");
    // The same clip with its index first, cut in half: frames are missing.
    let fast = make("prores-faststart.mov", &["-i", good.to_str().unwrap(), "-c", "copy", "-movflags", "+faststart"]).unwrap();
    let data = std::fs::read(&fast).unwrap();
    fails_with(&write("truncated-faststart.mov", &data[..data.len() / 2]), "truncated or damaged");
}

#[test]
fn audio_only_file_has_no_video() {
    let audio = make("audio-only.mov", &["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "pcm_s16le"]).unwrap();
    fails_with(&audio, "has no video stream");
}

#[test]
fn absurd_dimensions() {
    let wide = make(
        "too-wide.mov",
        &["-f", "lavfi", "-i", "color=size=9000x16:rate=1:duration=1", "-c:v", "rawvideo", "-pix_fmt", "yuv420p"],
    )
    .unwrap();
    fails_with(&wide, "picture size 9000x16 is outside");
}
