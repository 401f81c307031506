//! One MPEG-TS segment, muxed in memory.
//!
//! Every segment gets a fresh muxer: it starts with PAT/PMT, stands on its own, and can
//! be produced by any worker. Timestamps are rescaled to 90 kHz and shifted by a fixed
//! [`PTS_OFFSET_90K`] so that they are never negative (x264's first DTS and AAC priming
//! are), which would make libavformat shift each segment by a different amount.

use std::io::Write;
use std::sync::{Arc, Mutex};

use ffmpeg_next as ffmpeg;
use ffmpeg::format::context::{Output, StreamIo};
use ffmpeg::{codec, ffi, Packet, Rational};

/// Ten seconds: more than any encoder delay or priming.
pub const PTS_OFFSET_90K: i64 = 900_000;

/// Where a muxer's custom I/O writes: shared, so the bytes can be taken out while the
/// muxer lives.
#[derive(Clone, Default)]
pub(super) struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// Everything written so far, leaving the buffer empty.
    pub(super) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("buffer lock"))
    }
}

impl Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct TsMuxer {
    octx: Output,
    buf: SharedBuf,
    codec_tb: Rational,
    stream_tb: Rational,
}

/// A muxer of `format` writing into memory, with one stream of `params` in `codec_tb`
/// whose sample entry tag is `tag` (0: the muxer's choice; the encoder's own tags mean
/// nothing to it).
pub(super) fn in_memory(format: &str, params: &codec::Parameters, codec_tb: Rational, tag: u32) -> Result<(Output, SharedBuf), ffmpeg::Error> {
    let buf = SharedBuf::default();
    let io = StreamIo::from_write_with_capacity(buf.clone(), 64 * 1024)?;
    let mut octx = ffmpeg::format::output_to_stream(io, None, Some(format))?;
    let mut stream = octx.add_stream(ffmpeg::encoder::find(codec::Id::None))?;
    stream.set_parameters(params.clone());
    stream.set_time_base(codec_tb);
    // SAFETY: the stream was just added to `octx`, which owns it and its codecpar.
    unsafe {
        (*(*stream.as_mut_ptr()).codecpar).codec_tag = tag;
    }
    Ok((octx, buf))
}

impl TsMuxer {
    pub fn new(params: &codec::Parameters, codec_tb: Rational) -> Result<Self, ffmpeg::Error> {
        let (mut octx, buf) = in_memory("mpegts", params, codec_tb, 0)?;
        if params.medium() == ffmpeg::media::Type::Audio {
            // Several AAC frames to a PES packet (up to 0.35 s), as the ffmpeg CLI muxes:
            // one PES per frame fills two TS packets with each 64 kb/s frame and doubles
            // the audio's rate on the wire. Timestamps stay as given (no muxing delay added,
            // which would shift the audio against the separately muxed video).
            let mut opts = ffmpeg::Dictionary::new();
            opts.set("max_delay", "700000");
            opts.set("mpegts_copyts", "1");
            octx.write_header_with(opts)?;
        } else {
            octx.write_header()?;
        }
        let stream_tb = octx.stream(0).expect("one stream").time_base();
        Ok(Self { octx, buf, codec_tb, stream_tb })
    }

    /// Bytes muxed so far, counting what is still in FFmpeg's I/O buffer.
    pub fn position(&mut self) -> u64 {
        // SAFETY: the header is written, so `pb` is the open custom I/O context; seeking by 0
        // from the current position only reports it.
        unsafe { ffi::avio_seek((*self.octx.as_mut_ptr()).pb, 0, libc_seek_cur()).max(0) as u64 }
    }

    pub fn write(&mut self, packet: &Packet) -> Result<(), ffmpeg::Error> {
        let mut p = packet.clone();
        p.set_stream(0);
        p.rescale_ts(self.codec_tb, self.stream_tb);
        let shift = ffmpeg::util::mathematics::rescale::Rescale::rescale(
            &PTS_OFFSET_90K,
            Rational(1, 90_000),
            self.stream_tb,
        );
        p.set_pts(p.pts().map(|v| v + shift));
        p.set_dts(p.dts().map(|v| v + shift));
        p.write(&mut self.octx)?;
        Ok(())
    }

    /// Writes the trailer and returns the segment's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, ffmpeg::Error> {
        self.octx.write_trailer()?;
        drop(self.octx); // flushes FFmpeg's I/O buffer into `buf`
        Ok(self.buf.take())
    }
}

const fn libc_seek_cur() -> i32 {
    1 // SEEK_CUR
}
