//! A forensic job's video rendition as variants A and B spliced from one unmarked encode.
//!
//! A and B are the unmarked encode's own bytes except in the last [`TAIL_FRAMES`] pictures
//! of each marked segment position, its *tail*, which each variant encodes again, marked
//! (`crate::forensic_mark`), on a fresh encoder of the rendition's settings. So A and B
//! differ from the unmarked encode in a few pictures a segment, where marking every picture
//! changed the encoder's decisions in all of them (the mark benchmark's tables in
//! docs/benchmarks.md, "Forensic marks on segment tails").
//!
//! How the bytes can be cut and joined:
//! - The picture before each tail, the *anchor*, is forced to a P frame in the unmarked
//!   encode (an IDR frame where the grid puts one). x264 (x265 alike, closed GOPs) codes a
//!   P frame, then the B frames displayed before it; the tail's frames come after all of
//!   them in decode order, and the next segment opens on an IDR frame no tail frame
//!   predicts from. The unmarked packets of a position other than its tail's are therefore
//!   a prefix of its decode order, and decode without the tail.
//! - A tail's encode opens on an IDR frame, so it predicts from nothing before it. Its
//!   packets take the decode timestamps of the unmarked encode's packets of the same
//!   pictures, which are then dropped: the spliced stream's timestamps are the unmarked
//!   one's (x264's reorder delay follows from its settings, the same in both).
//! - Its quantiser is the mean of those the unmarked encode gave the same pictures (x264
//!   and x265 report one with every packet), held on every frame: at the rung's rate a
//!   tail of three frames came out sharper than its neighbours where the rung is starved,
//!   a flash every segment; at their quantiser it keeps to them.
//! - Its SPS and PPS must be the unmarked encode's: fMP4 segments share one init segment.
//!   Holding the quantiser through `qpmin`/`qpmax` keeps the rate control method, and with
//!   it the headers (x265 writes no settings SEI into them: `encode::open_hevc`); they are
//!   compared before a tail is written.
//!
//! Positions before [`FIRST_MARKED_SEGMENT`] are the unmarked encode's, in A alone.

use std::collections::BTreeMap;
use std::ops::Range;

use farm_contract::manifest::{RenditionPart, FIRST_MARKED_SEGMENT, VARIANT_B};
use farm_contract::timeline::Grid;
use ffmpeg_next as ffmpeg;
use ffmpeg::codec::packet::side_data;
use ffmpeg::{codec, ffi, frame, picture, Packet};

use super::encode;
use super::segment::Segmenter;
use super::video::{part, VideoClock, VideoJob};
use crate::error::{Result, TranscodeError};
use crate::forensic_mark::{Pattern, Variant};

/// Pictures at the end of each marked position that carry its mark.
pub const TAIL_FRAMES: u64 = 3;

/// The frames of `position`'s tail, when it has one: its last [`TAIL_FRAMES`], leaving its
/// first (the IDR frame that opens it) unmarked, where the pictures are expected to `end`
/// (a job's last position is short). Any picture after them in the position belongs to
/// the tail too (an estimate of the end that fell short). The anchor is the frame before.
pub fn tail_of(grid: &Grid, position: u64, end: Option<u64>) -> Option<Range<u64>> {
    if position < FIRST_MARKED_SEGMENT {
        return None;
    }
    let (start, next) = (grid.segment_start(position), grid.segment_start(position + 1));
    let last = end.map_or(next, |end| end.min(next));
    (last >= start + 2).then(|| last.saturating_sub(TAIL_FRAMES).max(start + 1)..next)
}

/// One position's tail while it is being made.
#[derive(Default)]
struct Tail {
    /// Its scaled pictures, unmarked, in display order (pts set).
    pictures: Vec<frame::Video>,
    /// Decode timestamps of the unmarked encode's packets of those pictures, in decode order.
    dts: Vec<i64>,
    /// Their quantisers, summed.
    quantisers: f64,
}

pub struct Spliced<'a> {
    encoder: ffmpeg::encoder::Video,
    a: Segmenter<'a, VideoClock>,
    b: Segmenter<'a, VideoClock>,
    tails: BTreeMap<u64, Tail>,
    seed: &'a [u8; 32],
    /// The colour tags the unmarked encoder was opened with (the source picture's), for the
    /// tails' encoders: the scaled pictures carry none, and the VUI is part of the SPS.
    tags: frame::Video,
}

impl<'a> Spliced<'a> {
    pub fn open(job: &VideoJob<'a>, like: &frame::Video, seed: &'a [u8; 32]) -> Result<Self> {
        let r = job.rendition;
        let encoder = encode::open_video(r, job.x264, &job.grid, like, job.threads, job.bt709, job.output.format, None)?;
        let params = codec::Parameters::from(&*encoder);
        let time_base = encode::video_time_base(&job.grid);
        let a = Segmenter::new(&r.name, VideoClock(job.grid), params.clone(), time_base, job.output);
        let b = Segmenter::new(&format!("{}/{VARIANT_B}", r.name), VideoClock(job.grid), params, time_base, job.output)
            .starting_at(FIRST_MARKED_SEGMENT);
        Ok(Self { encoder, a, b, tails: BTreeMap::new(), seed, tags: colour_tags(like) })
    }

    /// Encodes frame `n`'s scaled picture (its keyframe flag set): kept for its position's
    /// tail, or made the anchor.
    pub fn encode(&mut self, job: &VideoJob<'a>, picture: &mut frame::Video, n: u64) -> Result<()> {
        let (grid, position) = (&job.grid, job.grid.segment_of(n));
        if let Some(tail) = tail_of(grid, position, job.end_frame) {
            if tail.contains(&n) {
                self.tails.entry(position).or_default().pictures.push(picture.clone());
            } else if n + 1 == tail.start && !grid.is_keyframe(n) {
                picture.set_kind(picture::Type::P);
            }
        }
        self.encoder.send_frame(picture).map_err(|e| TranscodeError::ffmpeg("encoding", &job.rendition.name, e))?;
        self.drain(job)
    }

    /// Closes the task's first segment and goes on with a fresh unmarked encoder.
    pub fn restart(&mut self, job: &VideoJob<'a>, like: &frame::Video) -> Result<()> {
        let r = job.rendition;
        self.encoder.send_eof().map_err(|e| TranscodeError::ffmpeg("encoding", &r.name, e))?;
        self.drain(job)?;
        self.splice_before(job, u64::MAX)?;
        self.a.close()?;
        self.b.close()?;
        self.encoder = encode::open_video(r, job.x264, &job.grid, like, job.threads, job.bt709, job.output.format, None)?;
        self.tags = colour_tags(like);
        Ok(())
    }

    /// The rendition's part and its variant B's.
    pub fn finish(mut self, job: &VideoJob<'a>) -> Result<(RenditionPart, RenditionPart)> {
        let r = job.rendition;
        self.encoder.send_eof().map_err(|e| TranscodeError::ffmpeg("encoding", &r.name, e))?;
        self.drain(job)?;
        self.splice_before(job, u64::MAX)?;
        let mut parts = Vec::new();
        for segmenter in [self.a, self.b] {
            let (codecs, init) = (segmenter.codecs().map(str::to_owned), segmenter.init_uri());
            let segments = segmenter.finish()?;
            // A task that ended before the first marked position has no B segments, nor init.
            let init = init.filter(|_| !segments.is_empty());
            parts.push(part(r, &job.grid, codecs, segments, init));
        }
        let b = parts.pop().expect("two parts");
        Ok((parts.pop().expect("two parts"), b))
    }

    fn drain(&mut self, job: &VideoJob<'a>) -> Result<()> {
        for packet in encode::video_packets(&mut self.encoder, "encoding", &job.rendition.name)? {
            self.route(job, packet)?;
        }
        Ok(())
    }

    /// An unmarked packet to A and (from the first marked position on) B, or, a tail's, kept
    /// for its timestamp and quantiser. The tails of earlier positions are complete once a
    /// later position's packet is out (it opens on an IDR frame), and are spliced in first.
    fn route(&mut self, job: &VideoJob<'a>, packet: Packet) -> Result<()> {
        let name = &job.rendition.name;
        let frame = packet.pts().unwrap_or(0).max(0) as u64;
        let position = job.grid.segment_of(frame);
        self.splice_before(job, position)?;
        let Some(_) = tail_of(&job.grid, position, job.end_frame).filter(|t| t.contains(&frame)) else {
            if self.tails.get(&position).is_some_and(|t| !t.dts.is_empty()) {
                let detail = format!("frame {frame} was coded after the tail of position {position} began");
                return Err(TranscodeError::ffmpeg("splicing forensic tails", name, detail));
            }
            self.a.push(&packet)?;
            return if position >= FIRST_MARKED_SEGMENT { self.b.push(&packet) } else { Ok(()) };
        };
        let kept = self.tails.get_mut(&position).ok_or_else(|| TranscodeError::ffmpeg("splicing forensic tails", name, format!("frame {frame} came out of the encoder without going in")))?;
        kept.dts.push(packet.dts().unwrap_or(packet.pts().unwrap_or(0)));
        kept.quantisers += quantiser(&packet).ok_or_else(|| TranscodeError::ffmpeg("splicing forensic tails", name, "the encoder gave a packet without its quantiser"))?;
        Ok(())
    }

    /// Splices in the tails of positions before `position`.
    fn splice_before(&mut self, job: &VideoJob<'a>, position: u64) -> Result<()> {
        while let Some(entry) = self.tails.first_entry().filter(|e| *e.key() < position) {
            let (position, tail) = entry.remove_entry();
            self.splice(job, position, tail)?;
        }
        Ok(())
    }

    /// Encodes `tail` marked as A and as B and writes each after the unmarked packets.
    fn splice(&mut self, job: &VideoJob<'a>, position: u64, tail: Tail) -> Result<()> {
        let (r, grid) = (job.rendition, &job.grid);
        let fail = |detail: String| TranscodeError::ffmpeg("splicing forensic tails", &r.name, detail);
        if tail.dts.len() != tail.pictures.len() {
            return Err(fail(format!("position {position}: {} tail packets for {} pictures", tail.dts.len(), tail.pictures.len())));
        }
        let qp = (tail.quantisers / tail.dts.len() as f64).round() as u32;
        let field = Pattern::new(self.seed, position).field(r.width as usize, r.height as usize);
        for (variant, segmenter) in [(Variant::A, &mut self.a), (Variant::B, &mut self.b)] {
            let mut encoder = encode::open_video(r, job.x264, grid, &self.tags, job.threads, job.bt709, job.output.format, Some(qp))?;
            if extradata(&encoder) != extradata(&self.encoder) {
                return Err(fail(format!("position {position}: the tail encoder's SPS/PPS differ from the rendition's")));
            }
            let marking = field.marking(variant);
            let mut packets = Vec::new();
            for (k, picture) in tail.pictures.iter().enumerate() {
                let mut marked = picture.clone();
                let n = marked.pts().unwrap_or(0) as u64;
                let stride = marked.stride(0);
                marking.apply(marked.data_mut(0), stride, n);
                // The tail opens on an IDR frame; a keyframe of the grid inside it stays one.
                marked.set_kind(if k == 0 || grid.is_keyframe(n) { picture::Type::I } else { picture::Type::None });
                encoder.send_frame(&marked).map_err(|e| TranscodeError::ffmpeg("encoding a tail", &r.name, e))?;
                packets.extend(encode::video_packets(&mut encoder, "encoding a tail", &r.name)?);
            }
            encoder.send_eof().map_err(|e| TranscodeError::ffmpeg("encoding a tail", &r.name, e))?;
            packets.extend(encode::video_packets(&mut encoder, "encoding a tail", &r.name)?);
            if packets.len() != tail.dts.len() {
                return Err(fail(format!("position {position}: {} tail packets for {} pictures", packets.len(), tail.dts.len())));
            }
            for (mut packet, &dts) in packets.into_iter().zip(&tail.dts) {
                if packet.pts().is_none_or(|pts| pts < dts) {
                    return Err(fail(format!("position {position}: a tail packet would be decoded after it is shown")));
                }
                packet.set_dts(Some(dts));
                segmenter.push(&packet)?;
            }
        }
        Ok(())
    }
}

/// A picture carrying only `like`'s colour tags (what an encoder is opened "like").
fn colour_tags(like: &frame::Video) -> frame::Video {
    let mut tags = frame::Video::new(like.format(), 2, 2);
    tags.set_color_space(like.color_space());
    tags.set_color_primaries(like.color_primaries());
    tags.set_color_transfer_characteristic(like.color_transfer_characteristic());
    tags.set_color_range(like.color_range());
    tags
}

/// The quantiser x264 or x265 coded a packet's picture at: the encoder stats side data
/// FFmpeg's wrappers attach, whose first field is the quantiser times FF_QP2LAMBDA (118).
pub fn quantiser(packet: &Packet) -> Option<f64> {
    let stats = packet.side_data().find(|d| d.kind() == side_data::Type::QualityStats)?;
    let lambda = u32::from_le_bytes(stats.data().get(..4)?.try_into().ok()?);
    Some(f64::from(lambda) / f64::from(ffi::FF_QP2LAMBDA))
}

/// The encoder's extradata: its parameter sets under a global header (fMP4), else empty.
pub fn extradata(encoder: &ffmpeg::encoder::Video) -> &[u8] {
    // SAFETY: an opened encoder's context owns `extradata_size` bytes at `extradata` (or
    // holds a null pointer), alive as long as the borrow of the encoder.
    unsafe {
        let ctx = encoder.as_ptr();
        if (*ctx).extradata.is_null() || (*ctx).extradata_size <= 0 {
            return &[];
        }
        std::slice::from_raw_parts((*ctx).extradata, (*ctx).extradata_size as usize)
    }
}

#[cfg(test)]
mod tests;
