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
    let job = video::VideoJob { forward: vec![], rendition: r, x264: &x264, grid: grid(), threads: 1, output, encoded: &encoded, input_complete: &complete, bt709: !tagged, end_frame: Some(frames), mark: mark.then_some(&SEED) };
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
fn tails_are_the_last_frames_of_marked_positions() {
    let g = grid();
    assert_eq!(tail_of(&g, 0, None), None, "the first position is not marked");
    assert_eq!(tail_of(&g, 1, None), Some(97..100));
    assert_eq!(tail_of(&g, 4, Some(400)), Some(247..250));
    assert_eq!(tail_of(&g, 2, Some(140)), Some(137..150), "a short last position, and any picture after the estimate");
    assert_eq!(tail_of(&g, 2, Some(102)), Some(101..150), "its first picture stays unmarked");
    assert_eq!(tail_of(&g, 2, Some(101)), None, "a position of one picture is not marked");
}

/// A and B of every marked position decode to the same pictures but in its tail, where
/// they differ in every picture; every picture of the rendition is there once, in TS and
/// fMP4 (one init segment: the tails' SPS and PPS are the rendition's), at the rendition's
/// rate, under capped CRF, with the source's colour tags kept in the VUI (the tails'
/// pictures, scaled, carry none), and in HEVC (x265's parameter sets alike too).
#[test]
fn a_and_b_differ_only_in_each_marked_positions_tail() {
    use VideoCodec::{Hevc, H264};
    let cases = [(H264, SegmentFormat::Ts, None, false), (H264, SegmentFormat::Fmp4, None, false), (H264, SegmentFormat::Fmp4, Some(26.0), false), (H264, SegmentFormat::Fmp4, None, true), (Hevc, SegmentFormat::Fmp4, None, false), (Hevc, SegmentFormat::Fmp4, Some(28.0), true)];
    for (codec, format, crf, tagged) in cases {
        let dir = tempfile::tempdir().unwrap();
        let frames = 140; // a short last position, 40 frames
        let Encoded { part: a, variant_b } = encode_with(dir.path(), &rendition_in(codec, crf), format, frames, true, tagged);
        let b = variant_b.unwrap();
        assert_eq!(a.segments.iter().map(|s| s.units).sum::<u64>(), frames, "{format:?}");
        assert_eq!(b.segments.iter().map(|s| s.index).collect::<Vec<_>>(), [1, 2], "{format:?}");
        for (sa, sb) in a.segments[1..].iter().zip(&b.segments) {
            let (fa, fb) = (decoded(dir.path(), &a, sa), decoded(dir.path(), &b, sb));
            assert_eq!((fa.len(), fb.len()), (sa.units as usize, sa.units as usize), "{format:?} {}", sa.uri);
            let tail = tail_of(&grid(), sa.index, Some(frames)).unwrap();
            for k in 0..fa.len() {
                let in_tail = tail.contains(&(sa.start_unit + k as u64));
                assert_eq!(fa.planes[k] != fb.planes[k], in_tail, "{codec:?} {format:?} crf {crf:?}, {} frame {k}", sa.uri);
            }
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
