//! A task run twice writes the same bytes (a redelivered or reclaimed task rewrites segments
//! the job may already have published, and the I-frame playlists' byte ranges point into
//! them; an earlier attempt still running writes until the later one claims the task),
//! whatever the heap held before. The two runs
//! fill fresh heap memory differently (glibc's `MALLOC_PERTURB_`): x264's AVX-512
//! macroblock-tree code read memory it had not written, so an encoder opened on recycled
//! heap (every task's second segment onward) wrote different bytes from run to run. This
//! test failed on that code (on a CPU with AVX-512, as CI's); x264 now runs
//! `cpu-independent`. Moving grain under the ladder's rate caps, with HEVC twins.

use std::path::Path;

use farm_tests::fixtures::{make, SMALL_LADDER};
use farm_tests::hls::{init_segment, read_master, read_media};

#[test]
fn the_same_task_encoded_twice_writes_the_same_bytes_in_every_rendition() {
    let source = make(
        "grain-6s-h264.mov",
        &["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=6", "-vf", "noise=alls=30:allf=t+u", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-g", "25", "-pix_fmt", "yuv420p"],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ladder = dir.path().join("ladder.json");
    std::fs::write(&ladder, SMALL_LADDER).unwrap();
    let runs: Vec<_> = ["85", "170"]
        .iter()
        .map(|fill| {
            let out = dir.path().join(fill);
            let args = [
                "transcode", source.to_str().unwrap(), out.to_str().unwrap(), "--ladder", ladder.to_str().unwrap(),
                "--segment-seconds", "2", "--ladder-mode", "per-title", "--segment-format", "fmp4", "--codecs", "h264,hevc",
            ];
            farm_tests::worker::worker_with_env(&args, &[("MALLOC_PERTURB_", fill)]).unwrap().ok().unwrap();
            out
        })
        .collect();
    let renditions = video_files(&runs[0]);
    let names: Vec<&str> = renditions.iter().map(|(uri, _)| uri.as_str()).collect();
    assert_eq!(renditions, video_files(&runs[1]), "the master playlists or the segment lists differ");
    assert!(names.iter().any(|r| r.contains("-hevc/")) && names.len() >= 4, "{names:?}");
    let mut compared = 0;
    for (playlist, files) in &renditions {
        let folder = Path::new(playlist).parent().unwrap();
        for file in files {
            let (a, b) = (std::fs::read(runs[0].join(folder).join(file)).unwrap(), std::fs::read(runs[1].join(folder).join(file)).unwrap());
            assert!(a == b, "{}/{file}: {} bytes in one run, {} in the other, or different content", folder.display(), a.len(), b.len());
            compared += 1;
        }
    }
    assert!(compared >= renditions.len() * 4, "{compared} files compared");
}

/// Each video rendition the master playlist names (its media playlist's path), with the
/// files its playlist lists: the init segment, then the media segments.
fn video_files(out: &Path) -> Vec<(String, Vec<String>)> {
    read_master(out)
        .unwrap()
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| {
            let media = read_media(&out.join(&v.uri)).unwrap();
            let folder = out.join(&v.uri).parent().unwrap().to_path_buf();
            let init = init_segment(&media, &folder).unwrap().expect("fMP4 renditions map an init segment");
            let mut files = vec![init.file_name().unwrap().to_string_lossy().into_owned()];
            files.extend(media.segments.iter().map(|s| s.uri.clone()));
            (v.uri.clone(), files)
        })
        .collect()
}
