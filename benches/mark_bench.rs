//! Forensic mark benchmark (issue 19): do the A/B marks survive what a leak goes through,
//! and are they invisible? For each clip (1280x720, 25 fps, generated), a random code word
//! picks A or B for every 2 s segment position; the frames are marked
//! (`farm_media::forensic_mark`) and encoded with x264 as the worker encodes a review rung
//! (its options, slice threads, 3 Mb/s, 2 s GOPs); the leak is that encode cropped by 10 %, scaled to 640x360, brought to 30 fps,
//! gamma, contrast and brightness changed, and re-encoded with x264 at 500 kb/s. The
//! detector reads every position against the unmarked source put through the same crop and
//! scale (the leak's geometry and timing known: aligning an unknown leak is not measured
//! here). Printed per clip: positions read right and wrong, the log-likelihood ratios, the
//! mark's amplitude as read, and VMAF (v0.6.1) of the marked encode against the unmarked
//! one (the issue asks at least 98), and of a control: the unmarked frames with as many
//! pixels moved by one code value, at random and without a pattern.
//!
//! Reproduce with (from the repository root; ffmpeg on the PATH, PyPI `imageio-ffmpeg` for
//! VMAF, installed when missing):
//!     cargo run --release -p farm-benches --bin mark-bench -- [--seconds 20] [--seed 1]
//!         [--amplitudes 0.8,0.4] [--dither frame|segment]
//! `--amplitudes` sweeps the mark's peak (the farm's is `AMPLITUDE`); `--dither segment`
//! holds the dither still over a segment position instead of shifting it every frame.
//! `self`: VMAF of the unmarked encode against itself, the most any copy can score against
//! it (below 100 where VMAF's model says so for the picture itself). `1 pixel`: VMAF of an
//! encode with one pixel of one picture changed by one code value against the unmarked
//! encode, the least any mark can change (the two unmarked encodes are checked to be the
//! same bytes first). `pictures`: the marked pictures against the unmarked ones, both
//! uncompressed (the mark alone); `src both` and `src mark`: the unmarked and the marked
//! encode against the uncompressed source.
//!
//! `--spread [--clips graphics,detail,dark-grain] [--modes abr,cqp,crf] [--fraction 0.8]
//! [--mbs 0.02]` measures instead how far x264 carries a mark-like change, per rate
//! control ([`mark_spread`]).
//!
//! `--tail 2,3,4 [--anchor] [--follow-qp [--tail-dqp D]] [--from-encode] [--clips graphics,detail,dark-grain] [--codec hevc]`
//! measures the design the farm uses, in which only each segment's last frames carry the
//! mark, encoded apart and spliced after the unmarked encode's own bytes ([`mark_tail`]),
//! for the 720p rung of the H.264 ladder or (`--codec hevc`) of the HEVC one.

mod mark_clips;
mod mark_spread;
mod mark_tail;
#[allow(dead_code)] // the VMAF, run and x264 argument helpers only
mod quality_measure;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use farm_media::forensic_mark::{amplitude, llr, Pattern, Variant, Window, AMPLITUDE};
use farm_contract::ladder::{Ladder, VideoCodec};
use farm_contract::timeline::{FrameRate, Grid};
use mark_clips::CLIPS;
use quality_measure::{python_tools, run, vmaf, worker_x264_args};

const W: usize = 1280;
const H: usize = 720;
const SEGMENT_FRAMES: usize = 50;
const LEAK: (usize, usize) = (640, 360);
const CROP: Window = Window { left: 0.05, top: 0.05, right: 0.95, bottom: 0.95 };
const SEED: [u8; 32] = *b"mark-bench seed, thirty-two byte";

/// The benchmark's options, for its three measures (the module doc says what each changes).
#[derive(clap::Parser)]
#[command(about = "Do the A/B marks survive what a leak goes through, and are they invisible?")]
struct Args {
    /// Seconds of each clip.
    #[arg(long, default_value_t = 20, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    seconds: usize,
    /// The code words' and leaks' random numbers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The mark's peaks swept (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [AMPLITUDE])]
    amplitudes: Vec<f32>,
    /// How often the dither shifts.
    #[arg(long, value_enum, default_value_t = Dither::Frame)]
    dither: Dither,
    /// Measures how far x264 carries a mark-like change, per rate control.
    #[arg(long)]
    spread: bool,
    /// Measures the farm's design, the mark on each segment's last frames, for these tail
    /// lengths (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "spread")]
    tail: Option<Vec<usize>>,
    /// With --spread or --tail: only these clips (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = CLIPS.map(|c| c.0))]
    clips: Option<Vec<String>>,
    /// With --spread: only these rate controls (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = mark_spread::MODES.map(|m| m.0), requires = "spread")]
    modes: Option<Vec<String>>,
    /// With --spread: the chance the mark moves a pixel.
    #[arg(long, default_value_t = 0.8, requires = "spread")]
    fraction: f64,
    /// With --spread: the share of macroblocks the mark touches.
    #[arg(long, requires = "spread")]
    mbs: Option<f64>,
    /// With --tail: a P frame forced K + 1 frames before every segment's end.
    #[arg(long, requires = "tail")]
    anchor: bool,
    /// With --tail: each tail at the unmarked frames' mean quantiser.
    #[arg(long, requires = "tail")]
    follow_qp: bool,
    /// With --tail: the tail's I frame this far above its quantiser (x264 only).
    #[arg(long, default_value_t = 0.0, requires = "tail")]
    tail_iqp: f64,
    /// With --follow-qp: the tail's quantiser this far below the unmarked frames'.
    #[arg(long, default_value_t = 0, requires = "follow_qp")]
    tail_dqp: u32,
    /// With --tail: tails made from the unmarked encode's decoded pictures.
    #[arg(long, requires = "tail")]
    from_encode: bool,
    /// With --tail: the rung's codec.
    #[arg(long, value_enum, default_value_t = Codec::H264, requires = "tail")]
    codec: Codec,
}

/// `--dither`: how often the mark's dither shifts.
#[derive(Clone, Copy, PartialEq, Debug, clap::ValueEnum)]
enum Dither {
    /// Every frame, as the farm does.
    Frame,
    /// Once a segment position.
    Segment,
}

/// `--codec`: the codec of the rung `--tail` measures.
#[derive(Clone, Copy, PartialEq, Debug, clap::ValueEnum)]
enum Codec {
    H264,
    Hevc,
}

impl Codec {
    /// The rung's codec, and the name of its elementary stream's files.
    fn video(self) -> (VideoCodec, &'static str) {
        match self {
            Codec::H264 => (VideoCodec::H264, "h264"),
            Codec::Hevc => (VideoCodec::Hevc, "hevc"),
        }
    }
}

/// The name a `clap::ValueEnum` value is given on the command line.
fn arg_name(value: impl clap::ValueEnum) -> String {
    value.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
}

/// The command line, read once.
static ARGS: std::sync::LazyLock<Args> = std::sync::LazyLock::new(clap::Parser::parse);

/// Raw 8-bit frames out of ffmpeg (`pix_fmt` gray or yuv420p) for `input` args and a filter.
fn frames(input: &[&str], filter: &str, pix_fmt: &str) -> Result<Vec<u8>> {
    let out = Command::new("ffmpeg").args(["-nostdin", "-v", "error"]).args(input).args(["-vf", filter, "-pix_fmt", pix_fmt, "-f", "rawvideo", "-"]).output()?;
    ensure!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

/// The 720p review rung's rate control: 3 Mb/s with VBV.
const ABR: &[&str] = &["-b:v", "3000k", "-maxrate", "3300k", "-bufsize", "6000k"];

/// Raw yuv420p frames at 1280x720, 25 fps, encoded with x264 as the worker encodes a 720p
/// review rung: its x264 options (2 s GOPs), 3 Mb/s, and slice threads, which make the
/// encode repeatable. With x264's default frame threads its rate control depends on timing:
/// three encodes of the same frames decoded to three different pictures, and VMAF measured
/// that, not the mark.
fn encode(raw: &[u8], out: &Path) -> Result<()> {
    encode_as(raw, ABR, out)
}

/// [`encode`] with the rate control `rate` (ffmpeg arguments) instead of the rung's.
fn encode_as(raw: &[u8], rate: &[&str], out: &Path) -> Result<()> {
    write_frames(raw, &codec_args(rate), out)
}

/// The `ffmpeg` arguments of [`encode_as`]'s encoder.
fn codec_args(rate: &[&str]) -> Vec<String> {
    let ladder = Ladder::default();
    let grid = Grid::new(FrameRate { num: 25, den: 1 }, ladder.cuts(), 2000);
    let mut codec: Vec<String> = ["-c:v", "libx264", "-thread_type", "slice", "-threads", "2", "-g", "50"].iter().chain(rate).map(|s| s.to_string()).collect();
    codec.extend(worker_x264_args(&ladder.x264, &grid));
    codec
}

/// Raw yuv420p frames at 1280x720, 25 fps, kept losslessly (FFV1): pictures to score
/// without an encoder's own choices in between.
fn lossless(raw: &[u8], out: &Path) -> Result<()> {
    write_frames(raw, &["-c:v".into(), "ffv1".into()], out)
}

/// Raw yuv420p frames at 1280x720, 25 fps, through ffmpeg with `codec` args to `out`.
fn write_frames(raw: &[u8], codec: &[String], out: &Path) -> Result<()> {
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1280x720", "-r", "25", "-i", "-"])
        .args(codec)
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(raw)?;
    ensure!(child.wait()?.success(), "writing {}", out.display());
    Ok(())
}

/// The leak's processing of `input`, written to `out`.
fn leak(input: &Path, out: &Path) -> Result<()> {
    let filter = "crop=iw*0.9:ih*0.9:iw*0.05:ih*0.05,scale=640:360,fps=30,eq=gamma=1.15:contrast=1.05:brightness=0.02";
    run(Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-y", "-i"]).arg(input).args(["-vf", filter, "-c:v", "libx264", "-preset", "veryfast", "-b:v", "500k", "-maxrate", "550k", "-bufsize", "1000k"]).arg(out))?;
    Ok(())
}

/// What the detector read at each position, on the leak's frames that show a source frame
/// whose place in its segment is in `offsets`: (position, the variant, the llr, mean
/// amplitude).
fn read(leak: &Path, source: &[&str], word: &[Variant], offsets: std::ops::Range<usize>) -> Result<Vec<(usize, Variant, f64, f64)>> {
    let (lw, lh) = LEAK;
    let leaked = frames(&["-i", leak.to_str().context("path")?], "null", "gray")?;
    // the unmarked source through the same crop, scale and frame rate (no colour change)
    let reference = frames(source, "crop=iw*0.9:ih*0.9:iw*0.05:ih*0.05,scale=640:360,fps=30", "gray")?;
    let n = (leaked.len() / (lw * lh)).min(reference.len() / (lw * lh));
    let mut by_position: Vec<Vec<f64>> = vec![Vec::new(); word.len()];
    let fields: Vec<_> = (0..word.len()).map(|p| Pattern::new(&SEED, p as u64).field_in(CROP, lw, lh)).collect();
    for k in 0..n {
        let source_frame = shown(k);
        let (position, offset) = (source_frame / SEGMENT_FRAMES, source_frame % SEGMENT_FRAMES);
        if position >= word.len() || !offsets.contains(&offset) {
            continue;
        }
        let plane = |raw: &[u8]| raw[k * lw * lh..(k + 1) * lw * lh].iter().map(|&p| f32::from(p)).collect::<Vec<f32>>();
        by_position[position].push(amplitude(&plane(&leaked), &plane(&reference), &fields[position]));
    }
    Ok(by_position.iter().enumerate().map(|(p, a)| (p, word[p], llr(a), mean(a))).collect())
}

/// The mean of `values`, 0 for none.
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Of `read`'s readings: the positions read right (a log-likelihood ratio of the sign of
/// the variant sent, B positive), and the mean amplitude read, signed so that the sent
/// variant's mark counts positive.
fn tally(readings: &[(usize, Variant, f64, f64)]) -> (usize, f64) {
    let right = readings.iter().filter(|(_, v, l, _)| (*v == Variant::B) == (*l > 0.0) && *l != 0.0).count();
    let amp = readings.iter().map(|r| if r.1 == Variant::A { r.3 } else { -r.3 }).sum::<f64>() / readings.len() as f64;
    (right, amp)
}

/// The 25 fps source frame that frame `k` of the leak shows: FFmpeg's `fps=30` (rounding
/// to the nearest output tick) gives output frame `k` the last input frame `i` with
/// `round(1.2 i) <= k`, that is `i < (k + 0.5) / 1.2` (never equal: `1.2 i` is never a
/// half). `k * 25 / 30` was a frame behind for a third of the leak's frames.
fn shown(k: usize) -> usize {
    (2 * k + 1) * 25 / 60
}

/// The benchmark's random numbers: the next step of a 64-bit LCG (Knuth's MMIX constants).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state
}

/// The control: as many pixels moved by one code value as the mark moves, with random signs
/// (no pattern, no mean change): how much of the VMAF drop is any change to x264's input.
fn scattered(raw: &[u8], amplitude: f32, state: &mut u64) -> Vec<u8> {
    let mut out = raw.to_vec();
    let field = Pattern::new(&SEED, 0).field(W, H);
    for frame in out.chunks_exact_mut(W * H * 3 / 2) {
        for (p, f) in frame[..W * H].iter_mut().zip(field.values()) {
            let draw = next(state);
            let (chance, up) = ((draw >> 40) as f32 / (1u64 << 24) as f32, draw >> 39 & 1 == 1);
            if chance < (amplitude * f).abs() {
                *p = if up { p.saturating_add(1) } else { p.saturating_sub(1) };
            }
        }
    }
    out
}

/// The frames with one pixel of the first picture moved by one code value: how far x264
/// strays from the unmarked encode for the least change there is.
fn one_pixel(raw: &[u8]) -> Vec<u8> {
    let mut out = raw.to_vec();
    out[H / 2 * W + W / 2] ^= 1;
    out
}

/// Marks `raw` by `word` at `amplitude`: the dither shifted every frame (as the farm
/// does), or held for a whole segment position (`--dither segment`).
fn marked(raw: &[u8], word: &[Variant], amplitude: f32, per_segment: bool) -> Vec<u8> {
    let frame_bytes = W * H * 3 / 2;
    let markings: Vec<_> = word.iter().enumerate().map(|(p, &v)| Pattern::new(&SEED, p as u64).field(W, H).marking_at(v, amplitude)).collect();
    let mut marked = raw.to_vec();
    for (f, frame) in marked.chunks_exact_mut(frame_bytes).enumerate() {
        let position = f / SEGMENT_FRAMES;
        let shift = if per_segment { position } else { f };
        markings[position].apply(&mut frame[..W * H], W, shift as u64);
    }
    marked
}

fn main() -> Result<()> {
    let Args { seconds, seed, ref amplitudes, dither, spread, ref tail, .. } = *ARGS;
    let dither_name = arg_name(dither);
    let mut state = seed;
    if spread {
        return mark_spread::main(seconds, &mut state);
    }
    if let Some(tails) = tail {
        return mark_tail::main(seconds, &mut state, tails);
    }
    let vmaf_ffmpeg = python_tools()?;
    let dir = tempfile::tempdir()?;
    println!("mark benchmark: {seconds} s clips at 1280x720, a position per 2 s segment, dither shifted every {dither_name}, leak = crop 10 %, 640x360, 30 fps, gamma/contrast/brightness, x264 500 kb/s");
    println!(
        "{:<11} {:>4} {:>5} {:>5} {:>5} {:>12} {:>9} {:>6} {:>6} {:>7} {:>6} {:>7} {:>8} {:>8} {:>8}",
        "clip", "peak", "pos", "right", "wrong", "median |llr|", "min |llr|", "read", "VMAF", "control", "self", "1 pixel", "pictures", "src both", "src mark"
    );
    for (name, picture) in CLIPS {
        let duration = seconds.to_string();
        let input = ["-f", "lavfi", "-i", picture, "-t", duration.as_str()];
        let raw = frames(&input, "null", "yuv420p")?;
        let positions = (raw.len() / (W * H * 3 / 2)).div_ceil(SEGMENT_FRAMES);
        let word: Vec<Variant> = (0..positions)
            .map(|_| if next(&mut state) >> 63 == 1 { Variant::B } else { Variant::A })
            .collect();
        let file = |what: &str| dir.path().join(format!("{name}-{what}.mp4"));
        let size = (W as u32, H as u32);
        let vmaf_json = dir.path().join("vmaf.json");
        let (plain_mp4, source_mkv) = (file("plain"), dir.path().join(format!("{name}-source.mkv")));
        encode(&raw, &plain_mp4)?;
        encode(&raw, &file("again"))?;
        ensure!(std::fs::read(&plain_mp4)? == std::fs::read(file("again"))?, "x264 gave two encodes of the same frames");
        lossless(&raw, &source_mkv)?;
        let (plain_source, _) = vmaf(&vmaf_ffmpeg, &plain_mp4, &source_mkv, size, &vmaf_json)?;
        let (self_score, _) = vmaf(&vmaf_ffmpeg, &plain_mp4, &plain_mp4, size, &vmaf_json)?;
        encode(&one_pixel(&raw), &file("one-pixel"))?;
        let (pixel_score, _) = vmaf(&vmaf_ffmpeg, &file("one-pixel"), &plain_mp4, size, &vmaf_json)?;
        for &peak in amplitudes {
            let (marked_mp4, leak_mp4, control_mp4) = (file("marked"), file("leak"), file("control"));
            let pictures = marked(&raw, &word, peak, dither == Dither::Segment);
            encode(&pictures, &marked_mp4)?;
            let marked_mkv = dir.path().join(format!("{name}-marked.mkv"));
            lossless(&pictures, &marked_mkv)?;
            let (pictures_score, _) = vmaf(&vmaf_ffmpeg, &marked_mkv, &source_mkv, size, &vmaf_json)?;
            let (marked_source, _) = vmaf(&vmaf_ffmpeg, &marked_mp4, &source_mkv, size, &vmaf_json)?;
            encode(&scattered(&raw, peak, &mut state), &control_mp4)?;
            leak(&marked_mp4, &leak_mp4)?;
            let (score, _) = vmaf(&vmaf_ffmpeg, &marked_mp4, &plain_mp4, size, &vmaf_json)?;
            let (control_score, _) = vmaf(&vmaf_ffmpeg, &control_mp4, &plain_mp4, size, &vmaf_json)?;
            // away from the cuts
            let readings = read(&leak_mp4, &input, &word, 2..SEGMENT_FRAMES - 2)?;
            let (right, amp) = tally(&readings);
            let mut strengths: Vec<f64> = readings.iter().map(|r| r.2.abs()).collect();
            strengths.sort_by(f64::total_cmp);
            println!(
                "{name:<11} {peak:>4.2} {positions:>5} {right:>5} {:>5} {:>12.1} {:>9.2} {amp:>6.3} {score:>6.2} {control_score:>7.2} {self_score:>6.2} {pixel_score:>7.2} {pictures_score:>8.2} {plain_source:>8.2} {marked_source:>8.2}",
                readings.len() - right,
                strengths[strengths.len() / 2],
                strengths[0],
            );
        }
    }
    let sweep: Vec<String> = amplitudes.iter().map(f32::to_string).collect();
    println!("reproduce: cargo run --release -p farm-benches --bin mark-bench -- --seconds {seconds} --amplitudes {} --dither {dither_name}", sweep.join(","));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{shown, Args, Codec, Dither};
    use clap::Parser;

    fn parse(line: &str) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("mark-bench").chain(line.split_whitespace()))
    }

    /// The commands docs/benchmarks.md gives still mean what they say, and a slip is an error
    /// rather than a default measured in its place.
    #[test]
    fn the_documented_commands_parse_and_a_slip_stops_the_benchmark() {
        let tail = parse("--seconds 12 --tail 3 --anchor --follow-qp --tail-iqp 0 --codec hevc").unwrap();
        assert_eq!((tail.seconds, tail.tail.as_deref(), tail.anchor, tail.follow_qp, tail.codec), (12, Some(&[3][..]), true, true, Codec::Hevc));
        let spread = parse("--spread --seconds 6 --clips detail,graphics --modes abr,cqp --fraction 1 --mbs 0.02").unwrap();
        assert_eq!((spread.clips, spread.modes, spread.fraction, spread.mbs), (Some(vec!["detail".into(), "graphics".into()]), Some(vec!["abr".into(), "cqp".into()]), 1.0, Some(0.02)));
        let sweep = parse("--seconds 12 --amplitudes 0.8,0.4 --dither frame").unwrap();
        assert_eq!((sweep.amplitudes, sweep.tail, sweep.spread, sweep.dither), (vec![0.8, 0.4], None, false, Dither::Frame));
        for slip in ["--secs 12", "--seconds 12s", "--amplitudes 0.8;0.4", "--dither field", "--modes abr", "--tail 3 --spread", "--tail 3 --clips grain", "--codec hevc"] {
            assert!(parse(slip).is_err(), "{slip} was accepted");
        }
    }

    #[test]
    fn a_leak_frame_shows_the_source_frame_that_fps_30_repeats_there() {
        // output frames 0..12 of fps=30 from 25 fps input, as FFmpeg picks them
        let picked: Vec<usize> = (0..12).map(shown).collect();
        assert_eq!(picked, [0, 1, 2, 2, 3, 4, 5, 6, 7, 7, 8, 9]);
    }
}
