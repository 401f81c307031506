//! One fragmented MP4 (CMAF) segment, muxed in memory, and its init segment.
//!
//! As with MPEG-TS, every segment gets a fresh muxer (FFmpeg's `mp4` with an empty moov
//! and fragments cut by hand), so any worker can write any segment. What the muxer writes
//! before the first fragment (`ftyp` + `moov`) is the init segment, the same for every
//! segment of a rendition; the `moof`/`mdat` pairs after it are the segment. The muxer
//! counts time from the segment's first packet; the decode time of each fragment (`tfdt`)
//! is then set to the segment's place on the job's timeline, with the same fixed offset as
//! MPEG-TS ([`PTS_OFFSET_90K`]), so chunks from different workers join.
//!
//! A video segment has one fragment per GOP: an I-frame is then the byte range from its
//! fragment's `moof` to the end of its own sample, which a player fetches and decodes with
//! the init segment (I-frame playlists).

use ffmpeg_next as ffmpeg;
use ffmpeg::format::context::Output;
use ffmpeg::{codec, ffi, Packet, Rational};

use super::mux::{in_memory, SharedBuf, PTS_OFFSET_90K};

pub struct Fmp4Muxer {
    octx: Output,
    buf: SharedBuf,
    init: Vec<u8>,
    codec_tb: Rational,
    stream_tb: Rational,
    /// Decode time of the segment's first packet, in the codec's time base.
    first_dts: Option<i64>,
}

/// A finished segment: its bytes and, per fragment, the byte range from its `moof` to the
/// end of its first sample (offset in the segment, length): a video fragment's I-frame.
pub struct Fmp4Segment {
    pub data: Vec<u8>,
    pub first_samples: Vec<(u64, u64)>,
}

impl Fmp4Muxer {
    pub fn new(params: &codec::Parameters, codec_tb: Rational) -> Result<Self, ffmpeg::Error> {
        // The sample entry: `hvc1` for HEVC (parameter sets in the hvcC only, which Apple's
        // players and hls.js require); otherwise the muxer's choice (`avc1`, `mp4a`).
        let tag = if params.id() == codec::Id::HEVC { u32::from_le_bytes(*b"hvc1") } else { 0 };
        let (mut octx, buf) = in_memory("mp4", params, codec_tb, tag)?;
        let mut opts = ffmpeg::Dictionary::new();
        // An init segment without samples; fragments only where `fragment` cuts them; each
        // fragment's data offsets counted from its own moof (CMAF); no index at the end.
        opts.set("movflags", "frag_custom+empty_moov+default_base_moof+skip_trailer");
        // No edit list: the timeline is the fragments' decode times (tfdt), as in CMAF.
        opts.set("use_editlist", "0");
        octx.write_header_with(opts)?;
        // SAFETY: the header is written, so `pb` is the open custom I/O context.
        unsafe { ffi::avio_flush((*octx.as_mut_ptr()).pb) };
        let init = buf.take();
        let stream_tb = octx.stream(0).expect("one stream").time_base();
        Ok(Self { octx, buf, init, codec_tb, stream_tb, first_dts: None })
    }

    /// The init segment (`ftyp` and `moov`) this muxer wrote.
    pub fn init(&self) -> &[u8] {
        &self.init
    }

    pub fn write(&mut self, packet: &Packet) -> Result<(), ffmpeg::Error> {
        let dts = packet.dts().or(packet.pts()).unwrap_or(0);
        let first = *self.first_dts.get_or_insert(dts);
        let mut p = packet.clone();
        p.set_stream(0);
        p.set_pts(p.pts().map(|v| v - first));
        p.set_dts(p.dts().map(|v| v - first));
        p.rescale_ts(self.codec_tb, self.stream_tb);
        p.write(&mut self.octx)?;
        Ok(())
    }

    /// Closes the current fragment: the next packet opens a new one.
    pub fn fragment(&mut self) -> Result<(), ffmpeg::Error> {
        // SAFETY: the header is written; a null packet asks the muxer to flush its queued
        // packets as a fragment (movflags frag_custom).
        match unsafe { ffi::av_write_frame(self.octx.as_mut_ptr(), std::ptr::null_mut()) } {
            e if e < 0 => Err(ffmpeg::Error::from(e)),
            _ => Ok(()),
        }
    }

    /// Writes the last fragment and returns the segment, its fragments' decode times set
    /// to the segment's place on the timeline.
    pub fn finish(mut self) -> Result<Fmp4Segment, ffmpeg::Error> {
        self.octx.write_trailer()?;
        drop(self.octx); // flushes FFmpeg's I/O buffer into `buf`
        let written = self.buf.take();
        let shift_90k = Rational(1, 90_000);
        let rescale = |v: i64, from: Rational| ffmpeg::util::mathematics::rescale::Rescale::rescale(&v, from, self.stream_tb);
        let base = rescale(self.first_dts.unwrap_or(0), self.codec_tb) + rescale(PTS_OFFSET_90K, shift_90k);
        let base = u64::try_from(base).map_err(|_| ffmpeg::Error::InvalidData)?;
        fragments(&written, base).ok_or(ffmpeg::Error::InvalidData)
    }
}

/// The `moof`/`mdat` boxes of `written` (anything else the muxer added is left out), each
/// `tfdt` moved on by `base`, and the first sample's range of each fragment.
fn fragments(written: &[u8], base: u64) -> Option<Fmp4Segment> {
    let mut data = Vec::with_capacity(written.len());
    let mut first_samples = Vec::new();
    for (offset, kind, size) in boxes(written, 0, written.len())? {
        let mut bytes = written[offset..offset + size].to_vec();
        match &kind {
            b"moof" => {
                let end = shift_decode_time(&mut bytes, base)?;
                first_samples.push((data.len() as u64, end));
            }
            b"mdat" => {}
            _ => continue,
        }
        data.extend_from_slice(&bytes);
    }
    Some(Fmp4Segment { data, first_samples })
}

/// ISO BMFF boxes between `start` and `end`: offset, type and size of each.
pub fn boxes(data: &[u8], start: usize, end: usize) -> Option<Vec<(usize, [u8; 4], usize)>> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let header = data.get(at..at + 8)?;
        let size = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
        let kind: [u8; 4] = header[4..8].try_into().ok()?;
        if size < 8 || at + size > end {
            return None; // 64-bit or open-ended sizes are not what our muxer writes
        }
        out.push((at, kind, size));
        at += size;
    }
    Some(out)
}

/// Adds `base` to the `tfdt` of the (single-track) fragment `moof` and returns where its
/// first sample ends, counted from the start of the moof (its data offset plus its size).
fn shift_decode_time(moof: &mut [u8], base: u64) -> Option<u64> {
    let traf = boxes(moof, 8, moof.len())?.into_iter().find(|b| &b.1 == b"traf")?;
    let (traf_at, _, traf_size) = traf;
    let children = boxes(moof, traf_at + 8, traf_at + traf_size)?;
    let mut default_size = None;
    let mut first_end = None;
    for (at, kind, _) in children {
        let version = moof[at + 8];
        let flags = u32::from_be_bytes([0, moof[at + 9], moof[at + 10], moof[at + 11]]);
        match &kind {
            b"tfhd" => default_size = tfhd_default_size(moof, at, flags),
            b"tfdt" if version == 1 => {
                let field = moof.get_mut(at + 12..at + 20)?;
                let time = u64::from_be_bytes(field.try_into().ok()?) + base;
                field.copy_from_slice(&time.to_be_bytes());
            }
            b"tfdt" => return None, // FFmpeg writes 64-bit decode times
            b"trun" => first_end = trun_first_sample_end(moof, at, flags, default_size),
            _ => {}
        }
    }
    first_end
}

/// `default_sample_size` of a `tfhd`, when it has one (ISO/IEC 14496-12 8.8.7).
fn tfhd_default_size(b: &[u8], at: usize, flags: u32) -> Option<u32> {
    let mut field = at + 16; // header, version and flags, track_ID
    for (flag, len) in [(0x1, 8), (0x2, 4), (0x8, 4)] {
        if flags & flag != 0 {
            field += len;
        }
    }
    (flags & 0x10 != 0).then(|| read_u32(b, field)).flatten()
}

/// Data offset plus size of the first sample of a `trun` (ISO/IEC 14496-12 8.8.8).
fn trun_first_sample_end(b: &[u8], at: usize, flags: u32, default_size: Option<u32>) -> Option<u64> {
    if read_u32(b, at + 12)? == 0 || flags & 0x1 == 0 {
        return None;
    }
    let data_offset = read_u32(b, at + 16)? as i32;
    let mut field = at + 20 + if flags & 0x4 != 0 { 4 } else { 0 };
    if flags & 0x100 != 0 {
        field += 4; // sample_duration
    }
    let size = if flags & 0x200 != 0 { read_u32(b, field)? } else { default_size? };
    u64::try_from(i64::from(data_offset) + i64::from(size)).ok()
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        [&((body.len() + 8) as u32).to_be_bytes()[..], kind, body].concat()
    }

    /// A moof as FFmpeg writes it: tfhd (default-base-is-moof, no default size), a 64-bit
    /// tfdt and a trun with data offset, durations, sizes and flags.
    fn moof(decode_time: u64, sizes: &[u32]) -> Vec<u8> {
        let tfhd = boxed(b"tfhd", &[&[0, 0x02, 0, 0][..], &1u32.to_be_bytes()].concat());
        let tfdt = boxed(b"tfdt", &[&[1, 0, 0, 0][..], &decode_time.to_be_bytes()].concat());
        let mut trun = vec![0, 0, 0x07, 0x01];
        trun.extend_from_slice(&(sizes.len() as u32).to_be_bytes());
        trun.extend_from_slice(&0u32.to_be_bytes()); // data offset, set below
        for s in sizes {
            trun.extend_from_slice(&[0, 0, 2, 0]); // duration 512
            trun.extend_from_slice(&s.to_be_bytes());
            trun.extend_from_slice(&[0; 4]);
        }
        let mfhd = boxed(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]);
        let len = 8 + mfhd.len() + 8 + tfhd.len() + tfdt.len() + 8 + trun.len();
        trun[8..12].copy_from_slice(&((len + 8) as u32).to_be_bytes());
        boxed(b"moof", &[mfhd, boxed(b"traf", &[tfhd, tfdt, boxed(b"trun", &trun)].concat())].concat())
    }

    #[test]
    fn decode_times_move_to_the_timeline_and_first_samples_are_found() {
        let (a, b) = (moof(0, &[1000, 10, 20]), moof(1536, &[700, 30]));
        let mdat_a = boxed(b"mdat", &[7; 1030]);
        let mdat_b = boxed(b"mdat", &[9; 730]);
        let written = [boxed(b"ftyp", b"iso6"), a.clone(), mdat_a.clone(), b.clone(), mdat_b, boxed(b"mfra", &[0; 8])].concat();
        let segment = fragments(&written, 90_000).unwrap();
        assert_eq!(segment.data.len(), a.len() + 1038 + b.len() + 738, "ftyp and mfra are left out");
        let second = (a.len() + 1038) as u64;
        assert_eq!(segment.first_samples, vec![(0, a.len() as u64 + 8 + 1000), (second, b.len() as u64 + 8 + 700)]);
        let tfdt_of = |at: usize| {
            let m = &segment.data[at..];
            let i = m.windows(4).position(|w| w == b"tfdt").unwrap();
            u64::from_be_bytes(m[i + 8..i + 16].try_into().unwrap())
        };
        assert_eq!((tfdt_of(0), tfdt_of(second as usize)), (90_000, 91_536));
        // The first sample of the first fragment is the mdat's first 1000 bytes.
        let (start, end) = segment.first_samples[0];
        assert_eq!(&segment.data[(start + a.len() as u64 + 8) as usize..end as usize], &[7; 1000][..]);
        assert!(fragments(&written[..written.len() - 3], 0).is_none(), "a cut box is refused");
    }
}
