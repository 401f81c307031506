use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::sync_channel;

use farm_contract::ladder::{FittedRendition, Ladder, SegmentFormat, VideoCodec};
use farm_contract::manifest::SegmentRecord;
use farm_contract::timeline::{Cuts, FrameRate, Grid};
use farm_storage::{LocalDir, SourceLocation};
use ffmpeg::format::Pixel;

use super::*;
use crate::forensic_mark::frames::{self, Frames};
use crate::transcode::segment::Output;
use crate::transcode::video::{self, Encoded};

const SEED: [u8; 32] = [7; 32];
const SIZE: (u32, u32) = (320, 180);

fn grid() -> Grid {
    Grid::new(FrameRate { num: 25, den: 1 }, Cuts::even(2000), 2000)
}

fn rendition(crf: Option<f32>) -> FittedRendition {
    rendition_in(VideoCodec::H264, crf)
}

fn rendition_in(codec: VideoCodec, crf: Option<f32>) -> FittedRendition {
    FittedRendition { name: "180p".into(), width: SIZE.0, height: SIZE.1, bitrate_kbps: 300, maxrate_kbps: 330, bufsize_kbits: 600, crf, ladder_kbps: None, codec }
}

/// Frame `n` of a textured picture drifting right: detail that x264 codes with B frames.
fn picture(n: u64) -> frame::Video {
    let mut p = frame::Video::new(Pixel::YUV420P, SIZE.0, SIZE.1);
    for plane in 0..3 {
        let stride = p.stride(plane);
        let (w, h) = if plane == 0 { SIZE } else { (SIZE.0 / 2, SIZE.1 / 2) };
        let data = p.data_mut(plane);
        for y in 0..h as u64 {
            for x in 0..w as u64 {
                let u = x + 2 * n;
                let v = if plane == 0 { (u * 7 + y * 3 + (u * y) % 23 * 5) % 200 + 28 } else { 128 };
                data[y as usize * stride + x as usize] = v as u8;
            }
        }
    }
    p.set_pts(Some(n as i64));
    p
}

/// `frames` pictures through the rendition's thread, marked under [`SEED`] when `mark`; with
/// `tagged`, pictures tagged BT.709 and the rendition keeping the source's tags (not a
/// review copy), so that the encoder's VUI comes from the source picture.
fn encode_with(dir: &std::path::Path, r: &FittedRendition, format: SegmentFormat, frames: u64, mark: bool, tagged: bool) -> Encoded {
    let sink = LocalDir::new(dir).unwrap();
    let x264 = Ladder::default().x264;
    let (encoded, complete) = (AtomicU64::new(0), AtomicBool::new(true));
    let on_segment = |_: &SegmentRecord| {};
    let output = Output { sink: &sink, on_segment: &on_segment, sealer: None, format };
    let job = video::VideoJob { forward: vec![], rendition: r, x264: &x264, grid: grid(), threads: 1, output, encoded: &encoded, input_complete: &complete, bt709: !tagged, mark: mark.then_some(&SEED) };
    let (tx, rx) = sync_channel(frames as usize);
    for n in 0..frames {
        let mut p = picture(n);
        if tagged {
            p.set_color_space(ffmpeg::color::Space::BT709);
            p.set_color_primaries(ffmpeg::color::Primaries::BT709);
            p.set_color_transfer_characteristic(ffmpeg::color::TransferCharacteristic::BT709);
        }
        tx.send(p).unwrap();
    }
    drop(tx);
    video::run(job, rx).unwrap()
}

fn encode(dir: &std::path::Path, r: &FittedRendition, format: SegmentFormat, frames: u64, mark: bool) -> Encoded {
    encode_with(dir, r, format, frames, mark, false)
}

/// A segment's decoded luma (after its init segment, in fMP4).
fn decoded(dir: &std::path::Path, part: &RenditionPart, segment: &SegmentRecord) -> Frames {
    let mut bytes = match &part.init {
        Some(init) => std::fs::read(dir.join(init)).unwrap(),
        None => Vec::new(),
    };
    bytes.extend(std::fs::read(dir.join(&segment.uri)).unwrap());
    let path = dir.join("joined");
    std::fs::write(&path, bytes).unwrap();
    frames::read(&SourceLocation::Local(path), (SIZE.0 as usize, SIZE.1 as usize)).unwrap()
}

#[test]
fn a_tail_is_cut_after_a_run_of_the_decode_order() {
    // x264's order for P frames after runs of B frames: 100 I, 103 P, 101 B, 102 B, ...
    let order = [100, 103, 101, 102, 106, 104, 105, 109, 107, 108, 110];
    assert_eq!(tail_of(100, &order), Ok(Some(107..111)), "the last cut leaving three frames or more");
    assert_eq!(tail_of(100, &order[..10]), Ok(Some(107..110)));
    assert_eq!(tail_of(100, &[100, 104, 101, 102, 103]), Ok(Some(101..105)), "after the IDR frame at the earliest");
    assert_eq!(tail_of(100, &[100, 101]), Ok(Some(101..102)), "a short last position: what it has");
    assert_eq!(tail_of(100, &[100]), Ok(None), "a position of one picture is not marked");
    // Runs of B frames longer than a tail may be.
    let long: Vec<u64> = [100, 101, 114].into_iter().chain(102..114).collect();
    assert_eq!(tail_of(100, &long), Ok(None), "no cut leaves ten frames or fewer: the position goes unmarked");
    let long: Vec<u64> = [100, 101, 102, 103, 104, 111].into_iter().chain(105..111).collect();
    assert_eq!(tail_of(100, &long), Ok(Some(105..112)), "the last cut, leaving seven");
    assert_eq!(tail_of(100, &[100, 101, 102]), Ok(Some(101..103)), "none leaves three: the longest tail");
    assert!(tail_of(100, &[100, 102, 103]).is_err(), "a frame missing");
    assert!(tail_of(100, &[100, 101, 101]).is_err(), "a frame twice");
}

/// The frames of a position's tail: where A's and B's pictures differ, checked to be a
/// run at its end, of [`TAIL_FRAMES`] to [`MAX_TAIL_FRAMES`] pictures (but in a position too
/// short for that many).
fn tail_in(fa: &Frames, fb: &Frames, what: &str) -> Range<usize> {
    let differ: Vec<bool> = (0..fa.len()).map(|k| fa.planes[k] != fb.planes[k]).collect();
    let first = differ.iter().position(|&d| d).unwrap_or_else(|| panic!("{what}: A and B are the same"));
    assert!(differ[first..].iter().all(|&d| d), "{what}: A and B differ in {differ:?}, not in a run at the end");
    let len = (fa.len() - first) as u64;
    assert!(len <= MAX_TAIL_FRAMES && (len >= TAIL_FRAMES || first == 1), "{what}: a tail of {len}");
    first..fa.len()
}

/// A and B of every marked position decode to the unmarked encode's pictures, the
/// rendition's ordinary one, but in its tail, where they differ from it and from each other
/// in every picture; every picture of the rendition is there once, in TS and fMP4 (one init
/// segment: the tails' SPS and PPS are the rendition's), at the rendition's rate, under
/// capped CRF, with the source's colour tags kept in the VUI (the tails' pictures, scaled,
/// carry none), and in HEVC (x265's parameter sets alike too).
#[test]
fn a_and_b_are_the_unmarked_encode_but_in_each_marked_positions_tail() {
    use VideoCodec::{Hevc, H264};
    let cases = [(H264, SegmentFormat::Ts, None, false), (H264, SegmentFormat::Fmp4, None, false), (H264, SegmentFormat::Fmp4, Some(26.0), false), (H264, SegmentFormat::Fmp4, None, true), (Hevc, SegmentFormat::Fmp4, None, false), (Hevc, SegmentFormat::Fmp4, Some(28.0), true)];
    for (codec, format, crf, tagged) in cases {
        let (dir, plain) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let frames = 140; // a short last position, 40 frames
        let r = rendition_in(codec, crf);
        let Encoded { part: a, variant_b } = encode_with(dir.path(), &r, format, frames, true, tagged);
        let unmarked = encode_with(plain.path(), &r, format, frames, false, tagged).part;
        let b = variant_b.unwrap();
        assert_eq!(a.segments.iter().map(|s| s.units).sum::<u64>(), frames, "{format:?}");
        assert_eq!(b.segments.iter().map(|s| s.index).collect::<Vec<_>>(), [1, 2], "{format:?}");
        for ((sa, sb), su) in a.segments[1..].iter().zip(&b.segments).zip(&unmarked.segments[1..]) {
            let what = format!("{codec:?} {format:?} crf {crf:?}, {}", sa.uri);
            let (fa, fb, fu) = (decoded(dir.path(), &a, sa), decoded(dir.path(), &b, sb), decoded(plain.path(), &unmarked, su));
            assert_eq!((fa.len(), fb.len(), fu.len()), (sa.units as usize, sa.units as usize, sa.units as usize), "{what}");
            let tail = tail_in(&fa, &fb, &what);
            for k in 0..fa.len() {
                assert_eq!(fa.planes[k] != fu.planes[k], tail.contains(&k), "{what} frame {k}: A against the unmarked encode");
                assert_eq!(fb.planes[k] != fu.planes[k], tail.contains(&k), "{what} frame {k}: B against the unmarked encode");
            }
        }
    }
}

/// The luma of the source's picture of frame `n`, packed.
fn source_luma(n: u64) -> Vec<u8> {
    let p = picture(n);
    let stride = p.stride(0);
    p.data(0).chunks(stride).take(SIZE.1 as usize).flat_map(|row| &row[..SIZE.0 as usize]).copied().collect()
}

fn mean_abs_diff(x: &[u8], y: &[u8]) -> f64 {
    x.iter().zip(y).map(|(&a, &b)| f64::from(a.abs_diff(b))).sum::<f64>() / x.len() as f64
}

/// A tail is made from the unmarked encode's own pictures, marked: its pictures are nearer
/// the unmarked encode's than the source's (a tail made from the source's pictures is a
/// second coding of the source, nearer the source). On a detailed picture at a low rate,
/// where the unmarked encode is far from its source.
#[test]
fn a_tail_is_made_from_the_unmarked_encodes_pictures() {
    for (codec, format) in [(VideoCodec::H264, SegmentFormat::Ts), (VideoCodec::Hevc, SegmentFormat::Fmp4)] {
        let (dir, plain) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let r = rendition_in(codec, None);
        let Encoded { part: a, variant_b } = encode(dir.path(), &r, format, 150, true);
        let b = variant_b.unwrap();
        let unmarked = encode(plain.path(), &r, format, 150, false).part;
        for ((sa, sb), su) in a.segments[1..].iter().zip(&b.segments).zip(&unmarked.segments[1..]) {
            let (fa, fb, fu) = (decoded(dir.path(), &a, sa), decoded(dir.path(), &b, sb), decoded(plain.path(), &unmarked, su));
            let what = format!("{codec:?} {}", sa.uri);
            let (mut to_unmarked, mut to_source, mut unmarked_to_source) = (0.0, 0.0, 0.0);
            for k in tail_in(&fa, &fb, &what) {
                let source = source_luma(sa.start_unit + k as u64);
                for f in [&fa, &fb] {
                    to_unmarked += mean_abs_diff(&f.planes[k], &fu.planes[k]);
                    to_source += mean_abs_diff(&f.planes[k], &source);
                }
                unmarked_to_source += 2.0 * mean_abs_diff(&fu.planes[k], &source);
            }
            println!("{what}: the tails from the unmarked encode {to_unmarked:.1}, from the source {to_source:.1} (the unmarked encode from the source {unmarked_to_source:.1})");
            assert!(to_unmarked < to_source / 2.0, "{what}: the tails from the unmarked encode {to_unmarked:.1}, from the source {to_source:.1}");
        }
    }
}

/// Before the first marked position A is the unmarked encode, byte for byte.
#[test]
fn before_the_first_marked_position_a_is_the_unmarked_encode() {
    let (marked, plain) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let r = rendition(None);
    let a = encode(marked.path(), &r, SegmentFormat::Ts, 60, true).part;
    let u = encode(plain.path(), &r, SegmentFormat::Ts, 60, false).part;
    let read = |dir: &tempfile::TempDir, s: &SegmentRecord| std::fs::read(dir.path().join(&s.uri)).unwrap();
    assert!(read(&marked, &a.segments[0]) == read(&plain, &u.segments[0]));
    assert!(read(&marked, &a.segments[1]) != read(&plain, &u.segments[1]), "the next one, short, is marked");
}

/// A tail encoder holds its quantiser on every picture, VBV notwithstanding, x264's and x265's.
#[test]
fn a_tail_encoder_codes_every_picture_at_its_quantiser() {
    let like = picture(0);
    for (codec, qp) in [(VideoCodec::H264, 22), (VideoCodec::H264, 38), (VideoCodec::Hevc, 24), (VideoCodec::Hevc, 40)] {
        let r = rendition_in(codec, None);
        let mut encoder = encode::open_video(&r, &Ladder::default().x264, &grid(), &like, 1, true, SegmentFormat::Fmp4, Some(qp)).unwrap();
        let mut packets = Vec::new();
        for n in 0..6 {
            encoder.send_frame(&picture(n)).unwrap();
            packets.extend(encode::video_packets(&mut encoder, "test", "test").unwrap());
        }
        encoder.send_eof().unwrap();
        packets.extend(encode::video_packets(&mut encoder, "test", "test").unwrap());
        let qps: Vec<f64> = packets.iter().map(|p| quantiser(p).unwrap()).collect();
        assert_eq!(qps, vec![f64::from(qp); 6], "{codec:?}");
    }
}

/// A marked position's segments, A's and B's, are published as soon as its packets are all
/// out of the encoder (the next position's first is): before the encoder has taken any
/// picture of the position after that one, as an unmarked rendition's would be.
#[test]
fn a_marked_segment_is_published_once_its_position_is_out_of_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let sink = LocalDir::new(dir.path()).unwrap();
    let (r, x264, frames) = (rendition(None), Ladder::default().x264, 250);
    let (encoded, complete) = (AtomicU64::new(0), AtomicBool::new(true));
    let published = std::sync::Mutex::new(Vec::new());
    let on_segment = |s: &SegmentRecord| published.lock().unwrap().push((s.uri.clone(), s.index, encoded.load(std::sync::atomic::Ordering::SeqCst)));
    let output = Output { sink: &sink, on_segment: &on_segment, sealer: None, format: SegmentFormat::Ts };
    let job = video::VideoJob { forward: vec![], rendition: &r, x264: &x264, grid: grid(), threads: 1, output, encoded: &encoded, input_complete: &complete, bt709: true, mark: Some(&SEED) };
    let (tx, rx) = sync_channel(frames as usize);
    for n in 0..frames {
        tx.send(picture(n)).unwrap();
    }
    drop(tx);
    video::run(job, rx).unwrap();
    let published = published.into_inner().unwrap();
    let last = grid().segment_of(frames - 1);
    for position in FIRST_MARKED_SEGMENT..last {
        for variant in ["180p/seg", "180p/b/seg"] {
            let (uri, _, taken) = published.iter().find(|(uri, index, _)| *index == position && uri.starts_with(variant)).unwrap();
            let next = grid().segment_start(position + 2);
            assert!(*taken < next, "{uri} published after {taken} pictures were taken, position {} starts at {next}", position + 2);
        }
    }
}
