//! Opening a camera original: only through our own reader, only containers we accept.
//!
//! FFmpeg never opens the source by name. We hand it a reader (a local file, or ranged
//! object-store reads), probe the container ourselves, refuse formats outside
//! [`ALLOWED_DEMUXERS`] (playlists, concat scripts, image sequences...) and forbid every
//! protocol for nested opens, so a container cannot make FFmpeg read other files or hosts.
//! What it hands on: an open [`Source`] with the facts the pipeline needs ([`SourceInfo`]).

use std::ffi::{CStr, CString};
use std::io::{Read, Seek};
use std::ops::Range;
use std::ptr;
use std::sync::{Arc, Mutex};

use farm_contract::timeline::FrameRate;
use ffmpeg_next as ffmpeg;
use ffmpeg::ffi;
use ffmpeg::format::context::{Input, StreamIo};
use ffmpeg::media::Type;


mod tracks;

use crate::error::{Result, TranscodeError};
use farm_storage::{ObjectReader, ReadStats, ReaderHandle, SourceLocation};

/// Demuxers a camera original may come in (matched against FFmpeg's demuxer names).
pub const ALLOWED_DEMUXERS: &[&str] = &[
    "mov", "mxf", "mpegts", "matroska", "avi", "mpeg", "mpegvideo", "m4v", "h264", "hevc",
    "dv", "gxf",
];

/// Pictures larger than 8K in either direction are refused before any decoding.
pub const MAX_DIMENSION: u32 = 8192;
/// Full-aperture 8K (8192x4320): the largest picture a camera original has.
pub const MAX_PIXELS: i64 = 8192 * 4320;
const MIN_DIMENSION: u32 = 16;

trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AudioTrack {
    pub index: usize,
    pub channels: u32,
    pub sample_rate: u32,
    pub codec: String,
    /// The track's title (or its handler name), for the audio rendition's NAME.
    #[serde(default)]
    pub title: Option<String>,
    /// ISO 639 language code, when the container states one.
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceInfo {
    pub container: String,
    pub video_index: usize,
    pub codec: String,
    /// Coded picture size.
    pub width: u32,
    pub height: u32,
    /// Sample (pixel) aspect ratio; 1/1 for square pixels.
    pub sar: (u32, u32),
    /// Clockwise rotation to apply for display: 0, 90, 180 or 270.
    pub rotation: u32,
    pub rate: FrameRate,
    /// The video stream's time base and first timestamp: frame 0 of the timeline.
    pub time_base: (i32, i32),
    pub start_ts: i64,
    pub interlaced: bool,
    /// Frame count from the container, when it states one.
    pub frames_declared: Option<u64>,
    pub duration_seconds: Option<f64>,
    pub audio: Vec<AudioTrack>,
    /// Timecode of the first frame (MOV `tmcd` track, MXF timecode), as the container says it.
    #[serde(default)]
    pub timecode: Option<String>,
}

impl SourceInfo {
    /// Picture size as displayed: square pixels, rotation applied.
    pub fn display_size(&self) -> (u32, u32) {
        let w = (u64::from(self.width) * u64::from(self.sar.0) / u64::from(self.sar.1.max(1)))
            .clamp(2, u64::from(MAX_DIMENSION) * 4) as u32;
        if self.rotation % 180 == 90 {
            (self.height, w)
        } else {
            (w, self.height)
        }
    }

    /// Frames the source should yield: the container's count, else duration x rate.
    pub fn frames_expected(&self) -> Option<u64> {
        self.frames_declared.or_else(|| {
            self.duration_seconds.map(|d| (d * self.rate.as_f64()).round() as u64)
        })
    }
}

pub struct Source {
    pub input: Input,
    pub info: SourceInfo,
    pub location: SourceLocation,
    /// The last error our reader returned to FFmpeg: storage trouble, not a bad file.
    io_error: IoErrorSlot,
    /// The object reader inside FFmpeg's I/O context (none for a local file).
    reader: Option<Arc<ReaderHandle>>,
    /// Size of the original in bytes.
    pub size: u64,
}

impl Source {
    pub fn name(&self) -> String {
        self.location.to_string()
    }

    /// When the demuxer stops on an error: the storage error behind it, if there was one
    /// (FFmpeg only sees "I/O error" and would make it look like a damaged file).
    pub fn take_io_error(&self) -> Option<TranscodeError> {
        self.io_error.take(&self.name())
    }

    /// Ranged GETs and bytes fetched so far, for a source in object storage.
    pub fn read_stats(&self) -> Option<ReadStats> {
        self.reader.as_ref().map(|r| r.stats())
    }

    /// For a source in object storage: tells the reader which byte ranges the demuxer is
    /// going to read for `streams` (from the container's index, in reading order), so it
    /// fetches them ahead, several at a time, and skips the bytes between them. Done only
    /// when those ranges are a small part of the file (an audio task's PCM between video
    /// frames); `false` when there is no plan to make.
    pub fn plan_reads(&mut self, streams: &[usize]) -> bool {
        let Some(reader) = self.reader.clone() else { return false };
        let mut entries: Vec<(f64, Range<u64>)> = Vec::new();
        for &i in streams {
            let Some(mut stream) = self.input.stream_mut(i) else { continue };
            let tb = f64::from(stream.time_base());
            // SAFETY: `stream` borrows the open input, so its index lives and stays unchanged;
            // a null entry (past the end) is checked, each one copied out before the next call.
            unsafe {
                let st = stream.as_mut_ptr();
                let count = ffi::avformat_index_get_entries_count(st);
                for k in 0..count {
                    let Some(e) = ffi::avformat_index_get_entry(st, k).as_ref() else { break };
                    if e.pos >= 0 && e.size() > 0 {
                        entries.push((e.timestamp as f64 * tb, e.pos as u64..e.pos as u64 + e.size() as u64));
                    }
                }
            }
        }
        let total: u64 = entries.iter().map(|(_, r)| r.end - r.start).sum();
        if entries.is_empty() || total * 2 > self.size {
            return false;
        }
        // The demuxer reads the streams' packets in time order.
        entries.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.start.cmp(&b.1.start)));
        reader.plan(entries.into_iter().map(|(_, r)| r).collect());
        true
    }
}

/// The last error a [`Recording`] reader returned, shared with the [`Source`].
#[derive(Clone, Default)]
struct IoErrorSlot(Arc<Mutex<Option<std::io::Error>>>);

impl IoErrorSlot {
    fn put(&self, e: std::io::Error) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(e);
        }
    }

    /// The error as a (retryable) source I/O error, and the slot emptied.
    fn take(&self, path: &str) -> Option<TranscodeError> {
        let error = self.0.lock().ok()?.take()?;
        Some(TranscodeError::SourceIo { path: path.into(), source: error })
    }
}

/// Passes reads and seeks through, keeping the last error for [`Source::take_io_error`].
struct Recording {
    inner: Box<dyn ReadSeek>,
    error: IoErrorSlot,
}

impl Recording {
    fn keep<T>(&self, result: std::io::Result<T>) -> std::io::Result<T> {
        result.map_err(|e| {
            let copy = std::io::Error::new(e.kind(), e.to_string());
            self.error.put(e);
            copy
        })
    }
}

impl std::io::Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let result = self.inner.read(buf);
        self.keep(result)
    }
}

impl std::io::Seek for Recording {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let result = self.inner.seek(to);
        self.keep(result)
    }
}

/// Opens and probes a source. Fails with a message that names the problem.
pub fn open(location: &SourceLocation) -> Result<Source> {
    let name = location.to_string();
    let mut handle = None;
    let size;
    let reader: Box<dyn ReadSeek> = match location {
        SourceLocation::Local(path) => {
            let io_err = |source: std::io::Error| match source.kind() {
                std::io::ErrorKind::NotFound => TranscodeError::SourceMissing(name.clone()),
                _ => TranscodeError::SourceIo { path: name.clone(), source },
            };
            let meta = std::fs::metadata(path).map_err(io_err)?;
            if !meta.is_file() {
                return Err(TranscodeError::NotMedia {
                    path: name,
                    detail: "not a regular file".into(),
                });
            }
            if meta.len() == 0 {
                return Err(TranscodeError::EmptySource(name));
            }
            size = meta.len();
            Box::new(std::fs::File::open(path).map_err(|source| TranscodeError::SourceIo {
                path: name.clone(),
                source,
            })?)
        }
        SourceLocation::Object { store, key, rt, .. } => {
            let reader = ObjectReader::open(store.clone(), key, rt.clone()).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    TranscodeError::SourceMissing(name.clone())
                } else {
                    TranscodeError::SourceIo { path: name.clone(), source }
                }
            })?;
            if reader.size() == 0 {
                return Err(TranscodeError::EmptySource(name));
            }
            size = reader.size();
            handle = Some(reader.handle());
            Box::new(reader)
        }
    };
    let io_error = IoErrorSlot::default();
    let reader: Box<dyn ReadSeek> = Box::new(Recording { inner: reader, error: io_error.clone() });
    let input = open_input(reader, &name).map_err(|e| io_error.take(&name).unwrap_or(e))?;
    let info = inspect(&input, &name)?;
    // An error FFmpeg met and got past while probing is not the one that stops it later.
    io_error.take(&name);
    Ok(Source { input, info, location: location.clone(), io_error, reader: handle, size })
}

fn open_input(reader: Box<dyn ReadSeek>, name: &str) -> Result<Input> {
    ffmpeg::init().map_err(|e| TranscodeError::ffmpeg("init", "-", e))?;
    let not_media = |detail: String| TranscodeError::NotMedia { path: name.into(), detail };
    let mut io = StreamIo::from_read_seek_with_capacity(reader, 64 * 1024)
        .map_err(|e| TranscodeError::ffmpeg("open", "-", e))?;
    // FFmpeg uses the name as a probing hint only (its extension): it never opens it. Only
    // the file name goes in, without a scheme: for a URL whose protocol FFmpeg does not
    // know (s3://), the MOV demuxer assumes a network stream and reconfigures the reader to
    // read through every gap of up to half the interleave distance instead of seeking,
    // which made an audio task pull every video frame of the original through storage.
    let cname = CString::new(probe_hint(name)).expect("no NUL left");
    // SAFETY: `io` owns a valid AVIOContext for the whole block, `cname` outlives the calls,
    // and the format pointer FFmpeg fills in points to a static demuxer description.
    unsafe {
        let mut fmt: *const ffi::AVInputFormat = ptr::null();
        let score = ffi::av_probe_input_buffer2(
            io.as_mut_ptr(),
            &mut fmt,
            cname.as_ptr(),
            ptr::null_mut(),
            0,
            0,
        );
        if score < 0 || fmt.is_null() {
            return Err(not_media(format!(
                "no known container format ({})",
                ffmpeg::Error::from(score)
            )));
        }
        let demuxer = CStr::from_ptr((*fmt).name).to_string_lossy().into_owned();
        if !demuxer.split(',').any(|n| ALLOWED_DEMUXERS.contains(&n)) {
            return Err(not_media(format!(
                "container format {demuxer:?} is not accepted for sources (accepted: {})",
                ALLOWED_DEMUXERS.join(", ")
            )));
        }
        let mut ctx = ffi::avformat_alloc_context();
        if ctx.is_null() {
            return Err(TranscodeError::ffmpeg("open", "-", "out of memory"));
        }
        (*ctx).pb = io.as_mut_ptr();
        (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
        let mut opts = ffmpeg::Dictionary::new();
        // Nested opens (references to other files, URLs inside containers) match no protocol.
        opts.set("protocol_whitelist", "none");
        opts.set("format_whitelist", &ALLOWED_DEMUXERS.join(","));
        let mut raw = opts.disown();
        let ret = ffi::avformat_open_input(&mut ctx, cname.as_ptr(), fmt, &mut raw);
        ffmpeg::Dictionary::own(raw);
        if ret < 0 {
            // avformat_open_input freed the context; the StreamIo is dropped by us.
            return Err(not_media(format!("{demuxer}: {}", ffmpeg::Error::from(ret))));
        }
        let input = Input::wrap_with_custom_io(ctx, io);
        let ret = ffi::avformat_find_stream_info(ctx, ptr::null_mut());
        if ret < 0 {
            return Err(TranscodeError::Damaged {
                path: name.into(),
                detail: format!("cannot read stream information: {}", ffmpeg::Error::from(ret)),
            });
        }
        Ok(input)
    }
}

/// The last path segment of a source's name, as a plain file name (no scheme, no NUL).
fn probe_hint(name: &str) -> String {
    let file = name.rsplit('/').next().unwrap_or(name);
    let file: String = file.chars().map(|c| if c == ':' || c == '\0' { '_' } else { c }).collect();
    if file.is_empty() { "source".into() } else { file }
}

fn inspect(input: &Input, name: &str) -> Result<SourceInfo> {
    let unsupported =
        |detail: String| TranscodeError::Unsupported { path: name.into(), detail };
    let container = input.format().name().to_string();
    let video = input
        .streams()
        .filter(|s| s.parameters().medium() == Type::Video)
        .filter(|s| !s.disposition().contains(ffmpeg::format::stream::Disposition::ATTACHED_PIC))
        // SAFETY: codec parameters of an open input's stream are valid while it is borrowed.
        .max_by_key(|s| unsafe { (*s.parameters().as_ptr()).width })
        .ok_or_else(|| TranscodeError::NoVideo(name.into()))?;
    let params = video.parameters();
    let codec_id = params.id();
    if ffmpeg::decoder::find(codec_id).is_none() {
        return Err(unsupported(format!("no decoder for video codec {codec_id:?}")));
    }
    // SAFETY: `params` borrows the stream's codec parameters, valid while `input` lives.
    let (width, height, sar, field_order) = unsafe {
        let p = &*params.as_ptr();
        (p.width, p.height, p.sample_aspect_ratio, p.field_order)
    };
    check_picture_size(width, height).map_err(unsupported)?;
    let sar = if sar.num > 0 && sar.den > 0 && f64::from(sar.num) / f64::from(sar.den) < 4.0
        && f64::from(sar.den) / f64::from(sar.num) < 4.0
    {
        (sar.num as u32, sar.den as u32)
    } else {
        (1, 1)
    };
    let avg = video.avg_frame_rate();
    let real = video.rate();
    let rate = FrameRate::normalised(avg.numerator().into(), avg.denominator().into())
        .or_else(|| FrameRate::normalised(real.numerator().into(), real.denominator().into()))
        .ok_or_else(|| unsupported("the video stream states no frame rate".into()))?;
    if !(1.0..=240.0).contains(&rate.as_f64()) {
        return Err(unsupported(format!(
            "frame rate {}/{} is outside 1..240 fps",
            rate.num, rate.den
        )));
    }
    let tb = video.time_base();
    if tb.numerator() <= 0 || tb.denominator() <= 0 {
        return Err(unsupported("the video stream has no time base".into()));
    }
    let start_ts = if video.start_time() == ffi::AV_NOPTS_VALUE { 0 } else { video.start_time() };
    let frames_declared = (video.frames() > 0).then(|| video.frames() as u64);
    let duration_seconds = if video.duration() > 0 {
        Some(video.duration() as f64 * f64::from(tb))
    } else if input.duration() > 0 {
        Some(input.duration() as f64 / f64::from(ffi::AV_TIME_BASE))
    } else {
        None
    };
    let interlaced = !matches!(
        field_order,
        ffi::AVFieldOrder::AV_FIELD_PROGRESSIVE | ffi::AVFieldOrder::AV_FIELD_UNKNOWN
    );
    let audio = tracks::audio_tracks(input);
    Ok(SourceInfo {
        container,
        video_index: video.index(),
        codec: format!("{codec_id:?}").to_lowercase(),
        width: width as u32,
        height: height as u32,
        sar,
        rotation: rotation_of(&video),
        rate,
        time_base: (tb.numerator(), tb.denominator()),
        start_ts,
        interlaced,
        frames_declared,
        duration_seconds,
        audio,
        timecode: tracks::timecode(input),
    })
}

/// Clockwise display rotation from the stream's display matrix, as FFmpeg's CLI reads it.
/// Pictures between 16 and 8192 pixels on each side and at most 8K in area; a
/// decompression bomb states a picture within both side bounds but enormous in area.
fn check_picture_size(width: i32, height: i32) -> std::result::Result<(), String> {
    let dims_ok = |v: i32| (MIN_DIMENSION as i32..=MAX_DIMENSION as i32).contains(&v);
    if !dims_ok(width) || !dims_ok(height) {
        return Err(format!("picture size {width}x{height} is outside {MIN_DIMENSION}..{MAX_DIMENSION} pixels"));
    }
    if i64::from(width) * i64::from(height) > MAX_PIXELS {
        return Err(format!(
            "picture size {width}x{height} is {:.1} Mpixels, more than the {:.1} Mpixels of 8K",
            (i64::from(width) * i64::from(height)) as f64 / 1e6,
            MAX_PIXELS as f64 / 1e6
        ));
    }
    Ok(())
}

fn rotation_of(stream: &ffmpeg::format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() == ffmpeg::codec::packet::side_data::Type::DisplayMatrix
            && side.data().len() >= 36
        {
            // SAFETY: a display matrix is nine 32-bit values; the length was checked (36 bytes).
            let theta = -unsafe { ffi::av_display_rotation_get(side.data().as_ptr() as *const i32) };
            if theta.is_nan() {
                return 0;
            }
            let quarter = ((theta / 90.0).round() as i64).rem_euclid(4);
            return (quarter * 90) as u32;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FFmpeg must see the hint as a local file name, or the MOV demuxer switches to
    /// reading through gaps (see `open_input`).
    #[test]
    fn the_probe_hint_is_a_plain_file_name_ffmpeg_takes_for_a_local_file() {
        for (name, hint) in [
            ("s3://rushes/day1/A001_C002.mov", "A001_C002.mov"),
            ("s3://rushes/odd:name.mxf", "odd_name.mxf"),
            ("/mnt/a b/clip.mov", "clip.mov"),
            ("clip.mov", "clip.mov"),
            ("s3://rushes/dir/", "source"),
        ] {
            assert_eq!(probe_hint(name), hint);
            let c = CString::new(probe_hint(name)).unwrap();
            // SAFETY: `c` is NUL-terminated; a known protocol's name is a static C string.
            let protocol = unsafe { CStr::from_ptr(ffi::avio_find_protocol_name(c.as_ptr())) };
            assert_eq!(protocol.to_str().unwrap(), "file", "{name}");
        }
        let c = CString::new("s3://rushes/day1/A001_C002.mov").unwrap();
        // SAFETY: `c` is NUL-terminated and outlives the call.
        assert!(unsafe { ffi::avio_find_protocol_name(c.as_ptr()) }.is_null(), "FFmpeg has no s3 protocol");
    }
}
