//! `mark-bench --tail 2,3,4`: a design measured before it is built. Only the last frames of
//! every segment position carry the mark, encoded apart from the rest: the segment is the
//! unmarked encode's own bytes up to an anchor frame (an I or P frame: the frames up to it
//! decode without any frame after it), followed by the marked tail, at least `K` frames,
//! encoded on its own (an IDR frame, then the rest) by the same encoder, opened afresh
//! (every encode here is the worker's own, `encode::open_video`, as the 720p rung). A and B
//! then differ from the unmarked encode only in the tails: the rest is its bytes. x264
//! places its anchors itself (after up to three B frames here), so a tail is `K` to `K + 3`
//! frames (the farm's design since 2026-12-04, evening, `transcode::tails`); `--anchor`
//! forces a P frame where the tail should begin, in the unmarked encode itself (the farm's
//! design before), and the `anchor` column scores that encode against the one without (as
//! it differs, it is the copy's reference then; without `--anchor`, the unmarked encode
//! against itself: VMAF's ceiling on the clip). `--follow-qp` encodes each tail at the
//! unmarked encode's mean quantiser over the frames it replaces (x264 reports it with every
//! packet), the I frame's too (or `--tail-iqp D` above it), rather than at the rung's
//! average rate; `--tail-dqp D` lowers that quantiser by `D` on the farm's own encoder.
//! `--from-encode` makes each tail from the unmarked encode's decoded pictures, marked,
//! instead of from the source's: a tail then differs from the unmarked frames it replaces
//! by the mark and its own coding, not by a second coding of the source. The farm's tails
//! are `--follow-qp --tail-dqp 6 --from-encode` (`transcode::tails::TAIL_QP_BELOW`).
//!
//! The copy a viewer would see is built from pictures, which is what splicing the bytes
//! gives: the unmarked encode's decoded frames, the tail frames replaced by the decoded tail
//! encodes. Printed per clip and `K`: the share of frames in tails; the bytes the tails add
//! over the unmarked frames they replace (share of the unmarked encode's); VMAF (v0.6.1)
//! of the copy against the unmarked encode, mean and 5th-percentile frame; both against the
//! source; how the tails stand out in time (`tail |Δ|`: a tail's frames scored against the
//! source, less the unmarked encode's same frames, its size averaged over the tails;
//! `worst Δ`: the tail that differs most, signed: below 0 it is worse than the unmarked; for
//! scale, `step T` the mean size of the step into a tail, the tail's frames against the `K`
//! before them, in the copy, and `step S` the step into a segment's first `K` frames in the
//! unmarked encode, which every viewer meets at its IDR frame anyway), since a tail unlike
//! the frames around it, every segment, would show as a pulse of the picture where the mean
//! hides it; and the leak (as in the main table) read on the tail frames only.

use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use farm_contract::ladder::encoding::hevc_twins;
use farm_contract::ladder::{FittedRendition, Ladder, SegmentFormat, VideoCodec};
use farm_contract::timeline::{FrameRate, Grid};
use farm_media::forensic_mark::{Variant, AMPLITUDE};
use farm_media::transcode::encode::{open_video, video_packets};
use farm_media::transcode::tails::{extradata, quantiser};
use ffmpeg_next as ffmpeg;
use ffmpeg::{format, frame, picture};

use super::quality_measure::{outputs, python_tools, vmaf, vmaf_frames};
use super::{codec_args, frames, leak, lossless, marked, mean, next, read, tally, write_frames, ARGS, CLIPS, H, SEGMENT_FRAMES, W};

const FRAME: usize = W * H * 3 / 2;

/// Picture types of `video`'s frames in display order (`I`, `P`, `B`), from ffprobe.
fn picture_types(video: &Path) -> Result<Vec<u8>> {
    let (out, _) = outputs(Command::new("ffprobe").args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pict_type", "-of", "csv=p=0"]).arg(video))?;
    Ok(out.lines().filter_map(|l| l.trim().bytes().next()).collect())
}

/// Raw yuv420p frames at 1280x720 encoded by the worker's own encoder
/// (`farm_media::transcode::encode::open_video`) as the 720p review rung of `codec`: H.264
/// at 3 Mb/s with VBV, two slice threads, SPS and PPS with every IDR frame as in MPEG-TS
/// segments; HEVC as its twin (60 % of the rates, x265 in one thread, parameter sets in
/// the extradata as in fMP4 segments, written at the stream's head here). A P frame is
/// forced at each of `anchors`; the stream is written raw to `out`; with `qp`, it is held
/// at that quantiser as the farm encodes a forensic tail. Returns each frame's bytes and
/// quantiser, in display order.
fn encode_worker(raw: &[u8], anchors: &[usize], out: &Path, qp: Option<u32>, codec: VideoCodec) -> Result<Vec<Coded>> {
    let ladder = Ladder::default();
    let grid = Grid::new(FrameRate { num: 25, den: 1 }, ladder.cuts(), 2000);
    let h264 = FittedRendition { name: "720p".into(), width: W as u32, height: H as u32, bitrate_kbps: 3000, maxrate_kbps: 3300, bufsize_kbits: 6000, crf: None, ladder_kbps: None, codec: VideoCodec::H264 };
    let (rung, format) = match codec {
        VideoCodec::H264 => (h264, SegmentFormat::Ts),
        VideoCodec::Hevc => (hevc_twins(&[h264]).remove(0), SegmentFormat::Fmp4),
    };
    let like = frame::Video::new(format::Pixel::YUV420P, W as u32, H as u32);
    let mut encoder = open_video(&rung, &ladder.x264, &grid, &like, 2, true, format, qp)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    file.write_all(extradata(&encoder))?;
    let mut sizes: Vec<(i64, Coded)> = Vec::new();
    let mut drain = |encoder: &mut ffmpeg::encoder::Video| -> Result<()> {
        for packet in video_packets(encoder, "encoding", &rung.name)? {
            file.write_all(packet.data().context("an empty packet")?)?;
            let coded = Coded { bytes: packet.size() as u64, qp: quantiser(&packet).context("no encoder stats")? };
            sizes.push((packet.pts().context("a packet without pts")?, coded));
        }
        Ok(())
    };
    for (i, pixels) in raw.chunks_exact(FRAME).enumerate() {
        let mut picture = like.clone();
        let planes = [(0, W, H, 0), (1, W / 2, H / 2, W * H), (2, W / 2, H / 2, W * H * 5 / 4)];
        for (plane, width, height, at) in planes {
            let stride = picture.stride(plane);
            for (y, row) in picture.data_mut(plane).chunks_mut(stride).take(height).enumerate() {
                row[..width].copy_from_slice(&pixels[at + y * width..at + (y + 1) * width]);
            }
        }
        picture.set_pts(Some(i as i64));
        picture.set_kind(match () {
            _ if grid.is_keyframe(i as u64) => picture::Type::I,
            _ if anchors.contains(&i) => picture::Type::P,
            _ => picture::Type::None,
        });
        encoder.send_frame(&picture)?;
        drain(&mut encoder)?;
    }
    encoder.send_eof()?;
    drain(&mut encoder)?;
    file.flush()?;
    sizes.sort_unstable_by_key(|s| s.0);
    ensure!(sizes.len() == raw.len() / FRAME, "{} packets for {} frames", sizes.len(), raw.len() / FRAME);
    Ok(sizes.into_iter().map(|s| s.1).collect())
}

/// A frame as encoded: its bytes and x264's quantiser for it.
#[derive(Clone, Copy)]
struct Coded {
    bytes: u64,
    qp: f64,
}

/// `raw` frames encoded as `encode_worker` does but at one constant quantiser `qp` for every
/// frame (B frames too: `pbratio` 1), the I frame's `i_above` higher (x264's `ipratio`,
/// 2^(-i_above/6)), by the FFmpeg CLI with the worker's x264 options (its rate control
/// aside). Returns the stream's bytes.
fn encode_at_qp(raw: &[u8], qp: f64, i_above: f64, out: &Path) -> Result<u64> {
    let qp = format!("{:.0}", qp.round());
    let mut codec = codec_args(&["-qp", &qp]);
    let params = codec.iter().position(|a| a == "-x264-params").context("the worker's x264-params")? + 1;
    codec[params].push_str(&format!(":ipratio={:.4}:pbratio=1", (-i_above / 6.0).exp2()));
    write_frames(raw, &codec, out)?;
    Ok(std::fs::metadata(out)?.len())
}

/// The frames of the segment `range` that make its tail: those after its last anchor frame
/// that leaves at least `min` frames behind it; `None` when there is none.
pub fn tail(types: &[u8], range: Range<usize>, min: usize) -> Option<Range<usize>> {
    let last = range.end.checked_sub(min + 1)?;
    let anchor = (range.start..=last).rev().find(|&f| types[f] != b'B')?;
    Some(anchor + 1..range.end)
}

/// Runs the measurement for the tail lengths `tails` over `seconds` of each clip (those
/// named by `--clips`, all by default); with
/// `--anchor`, the unmarked encode has a P frame forced `K + 1` frames before every
/// segment's end, so that every tail is `K` frames long; with `--follow-qp`, each tail is
/// encoded at one constant quantiser, the mean of x264's for the unmarked frames it
/// replaces, instead of at the rung's rate, its I frame `--tail-iqp` (default 0) above it.
pub fn main(seconds: usize, state: &mut u64, tails: &[usize]) -> Result<()> {
    let (anchor, follow, i_above, below, from_encode) = (ARGS.anchor, ARGS.follow_qp, ARGS.tail_iqp, ARGS.tail_dqp, ARGS.from_encode);
    ensure!(below == 0 || (follow && i_above == 0.0), "--tail-dqp lowers the farm's own tail quantiser: with --follow-qp, without --tail-iqp");
    let (codec, ext) = ARGS.codec.video();
    ensure!(codec == VideoCodec::H264 || i_above == 0.0, "--tail-iqp is measured with x264 only (the FFmpeg CLI at -qp)");
    ffmpeg::init()?;
    ffmpeg::log::set_level(ffmpeg::log::Level::Error);
    let vmaf_ffmpeg = python_tools()?;
    let dir = tempfile::tempdir()?;
    let (size, log) = ((W as u32, H as u32), dir.path().join("vmaf.json"));
    println!("mark tail: {seconds} s clips at 1280x720, {ext}, a position per 2 s segment, the mark on each segment's last frames (at least K, from an anchor frame), tails encoded apart{}{}",
        if anchor { ", an anchor forced K + 1 frames before each segment's end" } else { "" },
        if follow { format!(", each tail at the unmarked frames' mean quantiser less {below}, its I frame {i_above} above") } else { String::new() }
    );
    if from_encode {
        println!("tails made from the unmarked encode's decoded pictures, marked (not from the source's)");
    }
    println!(
        "{:<11} {:>3} {:>6} {:>7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>5} {:>5} {:>9} {:>6}",
        "clip", "K", "frames", "bytes", "VMAF", "p5", "src both", "src copy", "tail |Δ|", "worst Δ", "step T", "step S", "anchor", "right", "wrong", "min |llr|", "read"
    );
    let chosen = &ARGS.clips;
    for (name, picture) in CLIPS.into_iter().filter(|c| chosen.as_ref().is_none_or(|list| list.iter().any(|n| n == c.0))) {
        let duration = seconds.to_string();
        let input = ["-f", "lavfi", "-i", picture, "-t", duration.as_str()];
        let raw = frames(&input, "null", "yuv420p")?;
        let n = raw.len() / FRAME;
        let positions = n.div_ceil(SEGMENT_FRAMES);
        let word: Vec<Variant> = (0..positions).map(|_| if next(state) >> 63 == 1 { Variant::B } else { Variant::A }).collect();
        let file = |what: &str| dir.path().join(format!("{name}-{what}"));
        let (normal, source) = (file(&format!("normal.{ext}")), file("source.mkv"));
        let normal_bytes = encode_worker(&raw, &[], &normal, None, codec)?;
        lossless(&raw, &source)?;
        let pictures = marked(&raw, &word, AMPLITUDE, false);
        for &k in tails {
            // The unmarked encode: as the worker's, or with an anchor forced K frames
            // before every segment's end (`--anchor`).
            let (plain, bytes) = match anchor {
                true => {
                    let anchors: Vec<usize> = (1..=n / SEGMENT_FRAMES).map(|s| s * SEGMENT_FRAMES - k - 1).collect();
                    let plain = file(&format!("plain.{ext}"));
                    let bytes = encode_worker(&raw, &anchors, &plain, None, codec)?;
                    (plain, bytes)
                }
                false => (normal.clone(), normal_bytes.clone()),
            };
            let (anchor_cost, _) = vmaf(&vmaf_ffmpeg, &plain, &normal, size, &log)?;
            let plain_frames = vmaf_frames(&vmaf_ffmpeg, &plain, &source, size, &log)?;
            let decoded = frames(&["-i", plain.to_str().context("path")?], "null", "yuv420p")?;
            let types = picture_types(&plain)?;
            ensure!(decoded.len() == raw.len() && types.len() == n, "the unmarked encode has {} frames of {n}", types.len());
            let from_decoded = from_encode.then(|| marked(&decoded, &word, AMPLITUDE, false));
            let pictures = from_decoded.as_ref().unwrap_or(&pictures);
            let (mut copy, mut in_tails, mut added, mut spans) = (decoded.clone(), 0usize, 0i64, Vec::new());
            for p in 0..positions {
                let range = p * SEGMENT_FRAMES..((p + 1) * SEGMENT_FRAMES).min(n);
                let Some(t) = tail(&types, range, k) else { continue };
                let encoded = file(&format!("tail.{ext}"));
                let tail_pictures = &pictures[t.start * FRAME..t.end * FRAME];
                let qp = bytes[t.clone()].iter().map(|c| c.qp).sum::<f64>() / t.len() as f64;
                let tail_bytes = match follow {
                    // The farm's own tail encoder (`farm_media::transcode::tails`).
                    true if i_above == 0.0 => encode_worker(tail_pictures, &[], &encoded, Some((qp.round() as u32).saturating_sub(below)), codec)?.iter().map(|c| c.bytes).sum(),
                    true => encode_at_qp(tail_pictures, qp, i_above, &encoded)?,
                    false => encode_worker(tail_pictures, &[], &encoded, None, codec)?.iter().map(|c| c.bytes).sum(),
                };
                let back = frames(&["-i", encoded.to_str().context("path")?], "null", "yuv420p")?;
                ensure!(back.len() == t.len() * FRAME, "the tail came back with {} bytes", back.len());
                copy[t.start * FRAME..t.end * FRAME].copy_from_slice(&back);
                added += tail_bytes as i64 - bytes[t.clone()].iter().map(|c| c.bytes).sum::<u64>() as i64;
                in_tails += t.len();
                spans.push(t);
            }
            let copy_mkv = file("copy.mkv");
            lossless(&copy, &copy_mkv)?;
            let (score, p5) = vmaf(&vmaf_ffmpeg, &copy_mkv, &plain, size, &log)?;
            let copy_frames = vmaf_frames(&vmaf_ffmpeg, &copy_mkv, &source, size, &log)?;
            ensure!(copy_frames.len() == n && plain_frames.len() == n, "VMAF scored {} and {} frames of {n}", copy_frames.len(), plain_frames.len());
            let (plain_source, copy_source) = (mean(&plain_frames), mean(&copy_frames));
            // How the tails stand out from the picture around them: each tail's frames
            // against the source, less the unmarked encode's same frames.
            let deltas: Vec<f64> = spans.iter().map(|t| mean(&copy_frames[t.clone()]) - mean(&plain_frames[t.clone()])).collect();
            let worst = deltas.iter().copied().max_by(|a, b| a.abs().total_cmp(&b.abs())).unwrap_or(0.0);
            let delta_sizes: Vec<f64> = deltas.iter().map(|d| d.abs()).collect();
            // For scale, the steps a viewer meets anyway: into each tail in the copy, and
            // into each segment's first K frames (after its IDR frame) in the unmarked encode.
            let into_tails: Vec<f64> = spans.iter().map(|t| step(&copy_frames, t.start, k)).collect();
            let into_segments: Vec<f64> = (1..positions).map(|p| p * SEGMENT_FRAMES).filter(|&s| s + k <= n).map(|s| step(&plain_frames, s, k)).collect();
            let leaked = file("leak.mp4");
            leak(&copy_mkv, &leaked)?;
            let readings = read(&leaked, &input, &word, SEGMENT_FRAMES - k..SEGMENT_FRAMES)?;
            let (right, amp) = tally(&readings);
            let min_llr = readings.iter().map(|r| r.2.abs()).fold(f64::INFINITY, f64::min);
            let total: u64 = bytes.iter().map(|c| c.bytes).sum();
            println!(
                "{name:<11} {k:>3} {:>5.1}% {:>+6.1}% {score:>6.2} {p5:>6.2} {plain_source:>8.2} {copy_source:>8.2} {:>8.2} {worst:>+7.2} {:>6.2} {:>6.2} {anchor_cost:>6.2} {right:>5} {:>5} {min_llr:>9.2} {amp:>6.3}",
                100.0 * in_tails as f64 / n as f64,
                100.0 * added as f64 / total as f64,
                mean(&delta_sizes),
                mean(&into_tails),
                mean(&into_segments),
                readings.len() - right,
            );
        }
    }
    let tails: Vec<String> = tails.iter().map(usize::to_string).collect();
    let clips = chosen.as_ref().map_or(String::new(), |list| format!(" --clips {}", list.join(",")));
    let codec_arg = if codec == VideoCodec::Hevc { " --codec hevc" } else { "" };
    let source = if from_encode { " --from-encode" } else { "" };
    println!(
        "reproduce: cargo run --release -p farm-benches --bin mark-bench -- --seconds {seconds} --tail {}{}{}{clips}{codec_arg}{source}",
        tails.join(","),
        if anchor { " --anchor" } else { "" },
        if follow { format!(" --follow-qp --tail-iqp {i_above} --tail-dqp {below}") } else { String::new() }
    );
    Ok(())
}

/// The size of the step in `scores` at frame `at`: the `k` frames from it against the `k`
/// frames before it.
fn step(scores: &[f64], at: usize, k: usize) -> f64 {
    (mean(&scores[at..(at + k).min(scores.len())]) - mean(&scores[at.saturating_sub(k)..at])).abs()
}

#[cfg(test)]
mod tests {
    use super::{step, tail};

    #[test]
    fn a_step_is_the_change_from_the_frames_before_to_the_frames_from_it() {
        let scores = [90.0, 91.0, 89.0, 80.0, 82.0, 78.0, 99.0];
        assert_eq!(step(&scores, 3, 3), 10.0);
        assert_eq!(step(&scores, 6, 3), 19.0, "a step up counts as much as a step down");
        assert!((step(&scores, 1, 3) - 10.0 / 3.0).abs() < 1e-9, "against the one frame before there is");
    }

    #[test]
    fn a_tail_starts_after_the_last_anchor_that_leaves_enough_frames() {
        //            0123456789
        let types = b"IBBBPBBBPP";
        assert_eq!(tail(types, 0..10, 1), Some(9..10), "a P frame right before the last");
        assert_eq!(tail(types, 0..10, 2), Some(5..10), "back over the B frames");
        assert_eq!(tail(types, 0..10, 5), Some(5..10));
        assert_eq!(tail(types, 0..10, 6), Some(1..10), "back to the I frame");
        assert_eq!(tail(types, 0..10, 10), None, "no anchor leaves ten frames");
        assert_eq!(tail(types, 4..10, 5), Some(5..10), "within the segment given");
        assert_eq!(tail(types, 5..10, 5), None, "the segment's own frames only");
    }
}
