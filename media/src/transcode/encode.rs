//! Opening the encoders: libx264 per video rendition, FFmpeg's AAC for audio.
//!
//! The x264 settings are the ladder's (preset, profile, VBV) plus what segmenting needs:
//! no scene-cut keyframes, closed GOPs, and forced keyframes coded as IDR frames, so that
//! keyframes fall only where the grid puts them. No global header in MPEG-TS, where every
//! IDR must carry its own SPS/PPS (see the verified notes); in fMP4 they go in the init
//! segment's `avcC`, so the encoder hands them on as extradata (global header).

use farm_contract::ladder::{AudioSpec, FittedRendition, SegmentFormat, VideoCodec, X264Settings};
use farm_contract::timeline::Grid;
use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, encoder, ffi, format, frame, Dictionary, Rational};

use crate::error::{Result, TranscodeError};

/// Time base of video encoders: one tick per frame, so a timestamp is a frame number.
pub fn video_time_base(grid: &Grid) -> Rational {
    Rational(grid.rate.den as i32, grid.rate.num as i32)
}

/// x264 options shared with the benchmark's CLI command, so both encode alike.
/// `cpu-independent`: x264's macroblock-tree propagation in its canonical (C) form. Its
/// AVX-512 form made the encode depend on memory it had not written: the same task gave
/// different bytes from run to run once an encoder was opened on recycled heap (the second
/// segment onward: 3 versions in 9 runs of a 1080p source; identical under
/// `MALLOC_PERTURB_`, and with AVX-512 off). With it, 8 of 8 runs identical, and the same
/// bytes with AVX-512, AVX2, SSE2 or no assembly at all: a task retried on a worker with
/// another CPU writes what the first one wrote.
pub fn x264_options(x264: &X264Settings, grid: &Grid) -> Vec<(String, String)> {
    vec![
        ("preset".into(), x264.preset.clone()),
        ("profile".into(), x264.profile.clone()),
        ("forced-idr".into(), "1".into()),
        (
            "x264-params".into(),
            format!("scenecut=0:open-gop=0:keyint={0}:min-keyint={0}:cpu-independent=1", grid.gop_frames),
        ),
    ]
}

/// The rendition's encoder: x264, or x265 for an HEVC rendition; with `qp`, held at that
/// quantiser (see [`open_h264`]).
#[allow(clippy::too_many_arguments)]
pub fn open_video(
    rendition: &FittedRendition,
    x264: &X264Settings,
    grid: &Grid,
    like: &frame::Video,
    threads: usize,
    bt709: bool,
    format: SegmentFormat,
    qp: Option<u32>,
) -> Result<encoder::Video> {
    match rendition.codec {
        VideoCodec::H264 => open_h264(rendition, x264, grid, like, threads, bt709, format, qp),
        VideoCodec::Hevc => open_hevc(rendition, x264, grid, like, bt709, qp),
    }
}

/// The rendition's x264 encoder; with `qp`, held at that quantiser on every frame (x264's
/// `qpmin` and `qpmax` both `qp`), its rate control otherwise the rendition's, so that its
/// SPS and PPS are the ones the rendition's own encoder writes (a forensic tail,
/// `super::tails`).
#[allow(clippy::too_many_arguments)]
pub fn open_h264(
    rendition: &FittedRendition,
    x264: &X264Settings,
    grid: &Grid,
    like: &frame::Video,
    threads: usize,
    bt709: bool,
    format: SegmentFormat,
    qp: Option<u32>,
) -> Result<encoder::Video> {
    let mut enc = video_context(rendition, grid, like, bt709, "libx264")?;
    if format == SegmentFormat::Fmp4 {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    if threads > 0 {
        // Sliced threads: the same input gives the same bytes whatever the thread timing.
        // x264's frame threads with VBV do not (measured: two runs of one source differed
        // in every video segment), and a task that runs twice (redelivered, reclaimed) must
        // write identical segments, or a late writer would break the I-frame byte ranges.
        enc.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Slice,
            count: threads,
            ..Default::default()
        });
    }
    let mut opts = Dictionary::new();
    for (k, mut v) in x264_options(x264, grid) {
        if let (Some(qp), "x264-params") = (qp, k.as_str()) {
            v.push_str(&format!(":qpmin={qp}:qpmax={qp}"));
        }
        opts.set(&k, &v);
    }
    if let Some(crf) = rendition.crf {
        opts.set("crf", &format!("{crf:.1}"));
    }
    let fail = |e: ffmpeg::Error| TranscodeError::ffmpeg("opening the H.264 encoder", &rendition.name, e);
    enc.open_with(opts).map_err(fail)
}

/// x265 for an HEVC rendition (fMP4 only: parameter sets in the init segment's `hvcC`).
/// Keyframes only where the grid wants them, closed GOPs, forced keyframes as IDR; one
/// frame thread and one pool thread, so that a task run twice writes the same bytes: with
/// wavefront rows on a pool of 2, the 1080p HEVC rung of one source came out different in 4
/// runs of 4 (with `lookahead-slices=0` too); with 1, identical in 4 of 4, for about 8 %
/// more wall time of an fMP4 + HEVC ladder on 2 cores (20.4-20.9 s against 18.7-19.4 s, 6 s
/// of 1080p, five rungs twice). The renditions run side by side on their own threads.
/// No x265 settings SEI (`info=0`): x265 puts its whole command line in the `hvcC`, which
/// would then differ between a rendition and its forensic tails' encoders (`qp`, held as
/// in [`open_h264`]), and tells a leak's reader nothing it needs.
pub fn open_hevc(rendition: &FittedRendition, x264: &X264Settings, grid: &Grid, like: &frame::Video, bt709: bool, qp: Option<u32>) -> Result<encoder::Video> {
    let mut enc = video_context(rendition, grid, like, bt709, "libx265")?;
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut opts = Dictionary::new();
    opts.set("preset", &x264.preset);
    opts.set("profile", "main");
    opts.set("forced-idr", "1");
    let mut params = format!("keyint={0}:min-keyint={0}:scenecut=0:open-gop=0:frame-threads=1:pools=1:info=0:log-level=error", grid.gop_frames);
    if let Some(qp) = qp {
        params.push_str(&format!(":qpmin={qp}:qpmax={qp}"));
    }
    opts.set("x265-params", &params);
    if let Some(crf) = rendition.crf {
        opts.set("crf", &format!("{crf:.1}"));
    }
    let fail = |e: ffmpeg::Error| TranscodeError::ffmpeg("opening the HEVC encoder", &rendition.name, e);
    enc.open_with(opts).map_err(fail)
}

/// Every packet a video encoder has ready (all it has left after `send_eof`), each one
/// frame long: FFmpeg 5.1's libx264 wrapper leaves durations at 0.
pub fn video_packets(encoder: &mut encoder::Video, stage: &'static str, name: &str) -> Result<Vec<ffmpeg::Packet>> {
    let mut packets = Vec::new();
    loop {
        let mut packet = ffmpeg::Packet::empty();
        match encoder.receive_packet(&mut packet) {
            Ok(()) => {
                packet.set_duration(1);
                packets.push(packet);
            }
            Err(ffmpeg::Error::Other { errno: ffi::EAGAIN }) | Err(ffmpeg::Error::Eof) => return Ok(packets),
            Err(e) => return Err(TranscodeError::ffmpeg(stage, name, e)),
        }
    }
}

/// An encoder context named `name` set up for the rendition: size, rates, GOP, colour tags.
fn video_context(rendition: &FittedRendition, grid: &Grid, like: &frame::Video, bt709: bool, name: &str) -> Result<encoder::video::Video> {
    let fail = |e: ffmpeg::Error| TranscodeError::ffmpeg("opening the video encoder", &rendition.name, e);
    let codec = encoder::find_by_name(name).ok_or_else(|| {
        TranscodeError::ffmpeg("opening the video encoder", &rendition.name, format!("FFmpeg has no {name}"))
    })?;
    let mut enc = codec::context::Context::new_with_codec(codec).encoder().video().map_err(fail)?;
    enc.set_width(rendition.width);
    enc.set_height(rendition.height);
    enc.set_format(format::Pixel::YUV420P);
    enc.set_time_base(video_time_base(grid));
    enc.set_frame_rate(Some(Rational(grid.rate.num as i32, grid.rate.den as i32)));
    enc.set_aspect_ratio(Rational(1, 1));
    // Capped CRF (per-title) leaves the average to the quality factor; the cap stays.
    enc.set_bit_rate(if rendition.crf.is_some() { 0 } else { rendition.bitrate_kbps as usize * 1000 });
    enc.set_max_bit_rate(rendition.maxrate_kbps as usize * 1000);
    enc.set_gop(grid.gop_frames as u32);
    if bt709 {
        // The VUI says what the picture chain made: BT.709 SDR, limited range.
        enc.set_colorspace(ffmpeg::color::Space::BT709);
        enc.set_color_primaries(ffmpeg::color::Primaries::BT709);
        enc.set_color_transfer_characteristic(ffmpeg::color::TransferCharacteristic::BT709);
    } else {
        enc.set_colorspace(like.color_space());
        enc.set_color_primaries(like.color_primaries());
        enc.set_color_transfer_characteristic(like.color_transfer_characteristic());
    }
    enc.set_color_range(ffmpeg::color::Range::MPEG);
    // SAFETY: `enc` owns its codec context, not yet opened; a plain field write.
    unsafe {
        (*enc.as_mut_ptr()).rc_buffer_size = (rendition.bufsize_kbits * 1000) as i32;
    }
    Ok(enc)
}

pub fn open_aac(audio: &AudioSpec, name: &str) -> Result<encoder::Audio> {
    let fail = |e: ffmpeg::Error| TranscodeError::ffmpeg("opening the AAC encoder", name, e);
    let codec = encoder::find(codec::Id::AAC)
        .ok_or_else(|| TranscodeError::ffmpeg("opening the AAC encoder", name, "no AAC encoder"))?;
    let mut enc = codec::context::Context::new_with_codec(codec).encoder().audio().map_err(fail)?;
    enc.set_rate(audio.sample_rate as i32);
    enc.set_format(format::Sample::F32(format::sample::Type::Planar));
    enc.set_bit_rate(audio.bitrate_kbps as usize * 1000);
    enc.set_time_base(Rational(1, audio.sample_rate as i32));
    enc.set_channel_layout(channel_layout(audio.channels));
    // SAFETY: `enc` owns its codec context, not yet opened; `ch_layout` is a field of it,
    // which av_channel_layout_default overwrites whole.
    unsafe {
        let ctx = enc.as_mut_ptr();
        (*ctx).channels = audio.channels as i32;
        ffi::av_channel_layout_default(&mut (*ctx).ch_layout, audio.channels as i32);
        (*ctx).profile = ffi::FF_PROFILE_AAC_LOW;
    }
    // The TS muxer builds ADTS headers from the AudioSpecificConfig in extradata.
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    enc.open().map_err(fail)
}

/// `samples` of silence in the AAC encoder's input format.
pub fn silence(audio: &AudioSpec, samples: usize) -> frame::Audio {
    let mut silence = frame::Audio::new(format::Sample::F32(format::sample::Type::Planar), samples, channel_layout(audio.channels));
    silence.set_rate(audio.sample_rate);
    for plane in 0..silence.planes() {
        silence.data_mut(plane).fill(0);
    }
    silence
}

pub fn channel_layout(channels: u32) -> ffmpeg::ChannelLayout {
    if channels == 1 {
        ffmpeg::ChannelLayout::MONO
    } else {
        ffmpeg::ChannelLayout::STEREO
    }
}
