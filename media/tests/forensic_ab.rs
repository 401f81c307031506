//! A forensic job's pipeline (issue 19): every video segment from the first marked position
//! on comes as variant A where the unmarked segment would be and variant B under
//! `{rendition}/b/`, the two the unmarked job's pictures but in the segment's tail, where
//! they carry the position's mark, added and taken away; the segments before it encoded
//! once, unmarked. Checked independently: the segments are decoded with the `ffmpeg` program and
//! the frames read against the unmarked encode's and against the mean of A and B.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use farm_contract::ladder::Ladder;
use farm_contract::manifest::{PartKind, PartManifest, FIRST_MARKED_SEGMENT};
use farm_media::forensic_mark::{amplitude, llr, Pattern};
use farm_media::job::{self, Task};
use farm_media::transcode::tails::{MAX_TAIL_FRAMES, TAIL_FRAMES};
use farm_media::progress::Progress;
use farm_storage::{LocalDir, SourceLocation};

const SEED: [u8; 32] = [7; 32];
const LADDER: &str = r#"{"version": 1, "segment_seconds": 2, "segment_format": "fmp4", "video": [
    {"name": "360p", "width": 640, "height": 360, "bitrate_kbps": 900},
    {"name": "180p", "width": 320, "height": 180, "bitrate_kbps": 300}]}"#;

struct Quiet;

impl Progress for Quiet {
    fn frames(&self, _done: u64, _total: Option<u64>) {}
}

/// A 6 s 640x360 picture with detail and motion (no audio).
fn source(dir: &Path) -> PathBuf {
    let path = dir.join("in.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "6"])
        .args(["-pix_fmt", "yuv420p", "-c:v", "libx264", "-crf", "12", "-g", "25"])
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(made.success());
    path
}

fn encode(source: &Path, out: &Path, seed: Option<[u8; 32]>) -> PartManifest {
    let task = Task { forensic_seed: seed, ..Task::whole(SourceLocation::Local(source.to_path_buf()), serde_json::from_str::<Ladder>(LADDER).unwrap()) };
    let sink = LocalDir::new(out).unwrap();
    job::run(&task, &sink, &Quiet, &AtomicBool::new(false)).unwrap();
    let key = PartManifest::key(PartKind::Video, 0, 3);
    serde_json::from_slice(&std::fs::read(out.join(key)).unwrap()).unwrap()
}

/// A segment's luma planes, decoded by the `ffmpeg` program after its init segment.
fn luma(root: &Path, init: &str, segment: &str, (w, h): (usize, usize)) -> Vec<Vec<f32>> {
    let input = format!("concat:{}|{}", root.join(init).display(), root.join(segment).display());
    let out = Command::new("ffmpeg").args(["-v", "error", "-i", &input, "-f", "rawvideo", "-pix_fmt", "gray", "-"]).output().expect("ffmpeg");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(w * h).map(|f| f.iter().map(|&p| f32::from(p)).collect()).collect()
}

#[test]
fn every_marked_segment_is_encoded_as_a_and_b_carrying_opposite_marks() {
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let plain = encode(&src, &dir.path().join("plain"), None);
    let marked = encode(&src, &dir.path().join("marked"), Some(SEED));
    assert!(plain.variant_b.is_empty());
    assert_eq!(marked.variant_b.len(), marked.renditions.len());
    for (a, b) in marked.renditions.iter().zip(&marked.variant_b) {
        assert_eq!(a.name, b.name);
        let (w, h) = (a.width.unwrap() as usize, a.height.unwrap() as usize);
        let unmarked = plain.renditions.iter().find(|r| r.name == a.name).unwrap();
        let first = FIRST_MARKED_SEGMENT as usize;
        assert_eq!(a.segments.len(), 3, "{}", a.name);
        assert_eq!(b.segments.len(), 3 - first, "{}: B from the first marked position on", a.name);
        // One init segment serves both: a share's playlist can switch between A and B
        // without a second EXT-X-MAP (which would have to come before the first key).
        let init = |part: &farm_contract::manifest::RenditionPart| std::fs::read(dir.path().join("marked").join(part.init.as_ref().unwrap())).unwrap();
        assert_eq!(b.init.as_deref(), Some(format!("{}/b/init.mp4", a.name).as_str()));
        assert!(init(a) == init(b), "{}: A's and B's init segments differ", a.name);
        let (plain_root, marked_root) = (dir.path().join("plain"), dir.path().join("marked"));
        for (sa, su) in a.segments.iter().zip(&unmarked.segments).take(first) {
            // Before the first marked position: A alone, and no mark in it.
            let reference = luma(&plain_root, unmarked.init.as_ref().unwrap(), &su.uri, (w, h));
            let frames = luma(&marked_root, a.init.as_ref().unwrap(), &sa.uri, (w, h));
            let field = Pattern::new(&SEED, sa.index).field(w, h);
            // Every fifth frame: the debug build reads a 640x360 frame slowly.
            let read: Vec<f64> = frames.iter().zip(&reference).step_by(5).map(|(f, r)| amplitude(f, r, &field)).collect();
            assert!(read.iter().all(|x| x.abs() < 0.05), "{} segment {}: unmarked, read {read:?}", a.name, sa.index);
        }
        for ((sa, sb), su) in a.segments.iter().skip(first).zip(&b.segments).zip(unmarked.segments.iter().skip(first)) {
            assert_eq!(sa.uri, su.uri, "variant A is where the unmarked segment would be");
            assert_eq!(sb.uri, format!("{}/b/seg_{:05}.m4s", a.name, sa.index));
            assert_eq!((sa.units, sb.units, sa.start_unit, sb.start_unit), (su.units, su.units, su.start_unit, su.start_unit));
            // The tails: the last frames of each segment (2 s, 50 frames, every one whole),
            // where A and B differ; the rest is the unmarked job's encode, picture for picture.
            let reference = luma(&plain_root, unmarked.init.as_ref().unwrap(), &su.uri, (w, h));
            let (whole_a, whole_b) = (luma(&marked_root, a.init.as_ref().unwrap(), &sa.uri, (w, h)), luma(&marked_root, b.init.as_ref().unwrap(), &sb.uri, (w, h)));
            assert_eq!((whole_a.len(), whole_b.len()), (su.units as usize, su.units as usize), "{}", sa.uri);
            let tail = whole_a.iter().zip(&whole_b).position(|(fa, fb)| fa != fb).unwrap();
            let length = (reference.len() - tail) as u64;
            assert!((TAIL_FRAMES..=MAX_TAIL_FRAMES).contains(&length), "{}: a tail of {length} pictures", sa.uri);
            assert!(whole_a[..tail] == reference[..tail], "{}: outside the tail, A is the unmarked encode's pictures", sa.uri);
            assert!(whole_b[..tail] == reference[..tail], "{}: outside the tail, B is the unmarked encode's pictures", sa.uri);
            let (frames, frames_b, reference) = (&whole_a[tail..], &whole_b[tail..], &reference[tail..]);
            assert!(frames.iter().zip(frames_b).all(|(fa, fb)| fa != fb), "{}: every tail picture differs", sa.uri);
            let field = Pattern::new(&SEED, sa.index).field(w, h);
            let read = |frames: &[Vec<f32>]| -> Vec<f64> { frames.iter().zip(reference).map(|(f, r)| amplitude(f, r, &field)).collect() };
            let (in_a, in_b) = (read(frames), read(frames_b));
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            eprintln!("{} segment {}: mean amplitude A {:+.3} B {:+.3}, llr A {:+.0} B {:+.0}", a.name, sa.index, mean(&in_a), mean(&in_b), llr(&in_a), llr(&in_b));
            assert!(mean(&in_a) > 0.2 && mean(&in_b) < -0.2, "{} segment {}: {in_a:?} {in_b:?}", a.name, sa.index);
            assert!(llr(&in_a) < -20.0 && llr(&in_b) > 20.0, "{} segment {}", a.name, sa.index);
            // The segment carries its own position's pattern: other positions' read what
            // two random patterns share (a few per cent of the mark each).
            // With no unmarked encode kept, the mean of A and B stands in for it (the
            // detector's reference): A and B read against it as against the unmarked one.
            let midway: Vec<Vec<f32>> = frames.iter().zip(frames_b).map(|(fa, fb)| fa.iter().zip(fb).map(|(x, y)| (x + y) / 2.0).collect()).collect();
            let against_midway = |f: &[Vec<f32>]| mean(&f.iter().zip(&midway).map(|(f, r)| amplitude(f, r, &field)).collect::<Vec<_>>());
            let (mid_a, mid_b) = (against_midway(frames), against_midway(frames_b));
            eprintln!("{} segment {}: against the mean of A and B, A {mid_a:+.3} B {mid_b:+.3}", a.name, sa.index);
            assert!(mid_a > 0.2 && mid_b < -0.2, "{} segment {}: A {mid_a} B {mid_b} against the mean of A and B", a.name, sa.index);
            for position in sa.index + 1..sa.index + 5 {
                let other = Pattern::new(&SEED, position).field(w, h);
                let stray = mean(&frames.iter().zip(reference).map(|(f, r)| amplitude(f, r, &other)).collect::<Vec<_>>());
                assert!(stray.abs() < mean(&in_a) / 2.0, "{} segment {}: position {position}'s pattern reads {stray}", a.name, sa.index);
            }
        }
    }
}
