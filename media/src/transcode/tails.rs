//! A forensic job's video rendition as variants A and B spliced from one unmarked encode.
//!
//! A and B are the unmarked encode's own bytes except in the last pictures of each marked
//! segment position, its *tail* ([`tail_of`]), which each variant encodes again, marked
//! (`crate::forensic_mark`), on a fresh encoder of the rendition's settings. The unmarked
//! encode is the rendition's ordinary one, exactly what a job without the mark gets: the
//! tails are cut where its encoder's own frame types allow, not where one was forced.
//!
//! How the bytes can be cut and joined:
//! - A tail begins after a frame that closes a run of the decode order: every picture
//!   shown before the cut is coded before every picture shown after it (after an I or P
//!   frame and the B frames shown before it, in x264's and x265's closed GOPs), and the next
//!   segment opens on an IDR frame no tail frame predicts from. The unmarked packets before
//!   the cut are then a prefix of the position's decode order and decode without the tail.
//!   Which cuts there are is known once the position's packets are out of the encoder, so a
//!   position's packets are held until then.
//! - A tail's pictures are the unmarked encode's own, decoded from the position's packets
//!   (it opens on an IDR frame), then marked: a tail then differs from the unmarked pictures
//!   it replaces by the mark and its own coding, where one made from the source's pictures
//!   differed by a second coding of the source as well, which VMAF against the unmarked
//!   encode scored far under the mark's own cost on detailed pictures.
//! - A tail's encode opens on an IDR frame, so it predicts from nothing before it. Its
//!   packets take the decode timestamps of the unmarked encode's packets of the same
//!   pictures, which are then dropped: the spliced stream's timestamps are the unmarked
//!   one's (the reorder delay follows from the encoder's settings, the same in both).
//! - Its quantiser is [`TAIL_QP_BELOW`] under the mean of those the unmarked encode gave the
//!   same pictures (x264 and x265 report one with every packet), held on every frame: at
//!   the rung's rate a tail of three frames came out sharper than its neighbours where the
//!   rung is starved, a flash every segment; at their quantiser it keeps to them, and a
//!   little under it, its second coding of the unmarked pictures costs them little.
//! - Its SPS and PPS must be the unmarked encode's: fMP4 segments share one init segment.
//!   Holding the quantiser through `qpmin`/`qpmax` keeps the rate control method, and with
//!   it the headers (x265 writes no settings SEI into them: `encode::open_hevc`); they are
//!   compared before a tail is written.
//!
//! Positions before [`FIRST_MARKED_SEGMENT`] are the unmarked encode's, in A alone.

use std::collections::BTreeMap;
use std::ops::Range;

use farm_contract::manifest::{RenditionPart, FIRST_MARKED_SEGMENT, VARIANT_B};
use ffmpeg_next as ffmpeg;
use ffmpeg::codec::packet::side_data;
use ffmpeg::{codec, ffi, frame, picture, Packet};

use super::encode;
use super::segment::Segmenter;
use super::video::{part, VideoClock, VideoJob};
use crate::error::{Result, TranscodeError};
use crate::forensic_mark::{Pattern, Variant};

/// Pictures at the end of each marked position that carry its mark, at least, where the
/// encoder's frame types allow a cut that leaves that many.
pub const TAIL_FRAMES: u64 = 3;
/// How far under the unmarked encode's quantiser a tail is coded. A tail recodes pictures
/// already coded once: at the same quantiser the second coding took as much again from
/// them (the detailed clip of `mark-bench` lost 7.8 VMAF points against its source in the
/// tails, a dip every segment); 6 under, 2.7, for 15 % more bytes there (the tails' share
/// of the encode), and A and B score 99.07 against the unmarked encode where 98 is asked.
pub const TAIL_QP_BELOW: u32 = 6;
/// Pictures a tail holds at most: [`TAIL_FRAMES`] and a run of B frames before it (x264
/// and x265 allow up to 3 or 4 in a row at the ladder's presets, 8 at the slowest).
pub const MAX_TAIL_FRAMES: u64 = 10;

/// The tail of a marked position whose frames from `start` on came out of the encoder as
/// `order` (each packet's frame number, in decode order): the pictures after the last cut
/// that leaves [`TAIL_FRAMES`] or more of them, or where no cut does, after the first that
/// leaves at most [`MAX_TAIL_FRAMES`]; never the position's first picture (the IDR frame
/// that opens it, left unmarked). `None` where no cut qualifies (a position of one picture,
/// or one whose runs of B frames at its end are all longer: it goes unmarked, and the
/// detector reads nothing there); an error where `order` is not each of the position's
/// frames once.
pub fn tail_of(start: u64, order: &[u64]) -> std::result::Result<Option<Range<u64>>, String> {
    let end = start + order.len() as u64;
    let mut sorted = order.to_vec();
    sorted.sort_unstable();
    if sorted.iter().copied().ne(start..end) {
        return Err(format!("the encoder gave frames {order:?} for the position of frames {start}..{end}"));
    }
    // A cut before frame `s`: the packets coded first are frames start..s, all of them.
    let (mut shown_last, mut cuts) = (start, Vec::new());
    for (k, &frame) in order.iter().enumerate() {
        shown_last = shown_last.max(frame);
        let s = start + k as u64 + 1;
        if shown_last + 1 == s && s < end && end - s <= MAX_TAIL_FRAMES {
            cuts.push(s);
        }
    }
    let cut = cuts.iter().rev().find(|&&s| end - s >= TAIL_FRAMES).or(cuts.first());
    Ok(cut.map(|&s| s..end))
}

pub struct Spliced<'a> {
    encoder: ffmpeg::encoder::Video,
    /// A decoder of the unmarked encode, for the pictures a tail replaces.
    decoder: ffmpeg::decoder::Video,
    a: Segmenter<'a, VideoClock>,
    b: Segmenter<'a, VideoClock>,
    /// Each marked position being made: the unmarked encode's packets of it, in decode order.
    pending: BTreeMap<u64, Vec<Packet>>,
    seed: &'a [u8; 32],
    /// The colour tags the unmarked encoder was opened with (the source picture's), for the
    /// tails' encoders, whose SPS (and its VUI) must be the rendition's.
    tags: frame::Video,
}

impl<'a> Spliced<'a> {
    pub fn open(job: &VideoJob<'a>, like: &frame::Video, seed: &'a [u8; 32]) -> Result<Self> {
        let r = job.rendition;
        let encoder = encode::open_video(r, job.x264, &job.grid, like, job.threads, job.bt709, job.output.format, None)?;
        let params = codec::Parameters::from(&*encoder);
        let decoder = open_decoder(&params, &r.name)?;
        let time_base = encode::video_time_base(&job.grid);
        let a = Segmenter::new(&r.name, VideoClock(job.grid), params.clone(), time_base, job.output);
        let b = Segmenter::new(&format!("{}/{VARIANT_B}", r.name), VideoClock(job.grid), params, time_base, job.output)
            .starting_at(FIRST_MARKED_SEGMENT);
        Ok(Self { encoder, decoder, a, b, pending: BTreeMap::new(), seed, tags: colour_tags(like) })
    }

    /// Encodes frame `n`'s scaled picture (its keyframe flag set).
    pub fn encode(&mut self, job: &VideoJob<'a>, picture: &frame::Video, n: u64) -> Result<()> {
        let position = job.grid.segment_of(n);
        if position >= FIRST_MARKED_SEGMENT {
            self.pending.entry(position).or_default();
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
        self.close()?;
        self.encoder = encode::open_video(r, job.x264, &job.grid, like, job.threads, job.bt709, job.output.format, None)?;
        self.decoder = open_decoder(&codec::Parameters::from(&*self.encoder), &r.name)?;
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

    /// An unmarked packet: to A before the first marked position, else held with its
    /// position's. The earlier positions are complete once a later position's packet is out
    /// (it opens on an IDR frame of a closed GOP), and are spliced first.
    fn route(&mut self, job: &VideoJob<'a>, packet: Packet) -> Result<()> {
        let position = job.grid.segment_of(frame_of(&packet));
        self.splice_before(job, position)?;
        if position < FIRST_MARKED_SEGMENT {
            return self.a.push(&packet);
        }
        // An unmarked segment A still has open is complete too (the marked ones are closed
        // as they are spliced).
        self.a.close()?;
        let name = &job.rendition.name;
        let packets = self.pending.get_mut(&position).ok_or_else(|| {
            TranscodeError::ffmpeg("splicing forensic tails", name, format!("frame {} came out of the encoder without going in", frame_of(&packet)))
        })?;
        packets.push(packet);
        Ok(())
    }

    /// Splices the positions before `position`.
    fn splice_before(&mut self, job: &VideoJob<'a>, position: u64) -> Result<()> {
        while let Some(entry) = self.pending.first_entry().filter(|e| *e.key() < position) {
            let (position, packets) = entry.remove_entry();
            self.splice(job, position, packets)?;
        }
        Ok(())
    }

    /// Writes a complete position to A and B, and publishes the segments: the unmarked
    /// packets before its tail's cut, then the tail encoded marked as A in one and as B in
    /// the other. (Left open, each would wait for the next position's first packet, which
    /// is held until that position is complete: a segment late.)
    fn splice(&mut self, job: &VideoJob<'a>, position: u64, mut packets: Vec<Packet>) -> Result<()> {
        let name = &job.rendition.name;
        let fail = |detail: String| TranscodeError::ffmpeg("splicing forensic tails", name, detail);
        let order: Vec<u64> = packets.iter().map(frame_of).collect();
        let start = job.grid.segment_start(position).max(order.iter().copied().min().unwrap_or(0));
        let tail = tail_of(start, &order).map_err(|e| fail(format!("position {position}: {e}")))?;
        let cut = tail.as_ref().map_or(order.len(), |t| (t.start - start) as usize);
        let coded = packets.split_off(cut);
        for packet in &packets {
            self.a.push(packet)?;
            self.b.push(packet)?;
        }
        let Some(tail) = tail else { return self.close() };
        let pictures = decode_tail(&mut self.decoder, packets.iter().chain(&coded), &tail).map_err(|e| fail(format!("position {position}: decoding the unmarked encode: {e}")))?;
        if pictures.len() != coded.len() {
            return Err(fail(format!("position {position}: {} pictures decoded for the tail's frames {tail:?}", pictures.len())));
        }
        let dts: Vec<i64> = coded.iter().map(|p| p.dts().unwrap_or(p.pts().unwrap_or(0))).collect();
        let quantisers = coded.iter().map(quantiser).sum::<Option<f64>>().ok_or_else(|| fail("the encoder gave a packet without its quantiser".into()))?;
        let qp = ((quantisers / coded.len() as f64).round() as u32).saturating_sub(TAIL_QP_BELOW);
        for variant in [Variant::A, Variant::B] {
            for packet in self.encode_tail(job, position, &pictures, variant, qp, &dts)? {
                match variant {
                    Variant::A => self.a.push(&packet)?,
                    Variant::B => self.b.push(&packet)?,
                }
            }
        }
        self.close()
    }

    fn close(&mut self) -> Result<()> {
        self.a.close()?;
        self.b.close()
    }

    /// A tail's `pictures` marked as `variant`, encoded at `qp` from an IDR frame, its packets
    /// given the decode timestamps `dts` of the unmarked ones they replace.
    fn encode_tail(&self, job: &VideoJob<'a>, position: u64, pictures: &[frame::Video], variant: Variant, qp: u32, dts: &[i64]) -> Result<Vec<Packet>> {
        let (r, grid) = (job.rendition, &job.grid);
        let fail = |detail: String| TranscodeError::ffmpeg("splicing forensic tails", &r.name, detail);
        let mut encoder = encode::open_video(r, job.x264, grid, &self.tags, job.threads, job.bt709, job.output.format, Some(qp))?;
        if extradata(&encoder) != extradata(&self.encoder) {
            return Err(fail(format!("position {position}: the tail encoder's SPS/PPS differ from the rendition's")));
        }
        let marking = Pattern::new(self.seed, position).field(r.width as usize, r.height as usize).marking(variant);
        let mut packets = Vec::new();
        for (k, picture) in pictures.iter().enumerate() {
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
        if packets.len() != dts.len() {
            return Err(fail(format!("position {position}: {} tail packets for {} pictures", packets.len(), dts.len())));
        }
        for (packet, &dts) in packets.iter_mut().zip(dts) {
            if packet.pts().is_none_or(|pts| pts < dts) {
                return Err(fail(format!("position {position}: a tail packet would be decoded after it is shown")));
            }
            packet.set_dts(Some(dts));
        }
        Ok(packets)
    }
}

/// A decoder of the stream an encoder with `params` makes (its parameter sets in `params`'
/// extradata under a global header, else in the stream).
fn open_decoder(params: &codec::Parameters, name: &str) -> Result<ffmpeg::decoder::Video> {
    let fail = |e: ffmpeg::Error| TranscodeError::ffmpeg("opening a decoder of the unmarked encode", name, e);
    codec::context::Context::from_parameters(params.clone()).map_err(fail)?.decoder().video().map_err(fail)
}

/// The pictures of frames `tail`, in display order, decoded from `packets`: a position's,
/// in decode order, from the IDR frame that opens it. The decoder is flushed for the next.
fn decode_tail<'p>(decoder: &mut ffmpeg::decoder::Video, packets: impl Iterator<Item = &'p Packet>, tail: &Range<u64>) -> std::result::Result<Vec<frame::Video>, ffmpeg::Error> {
    let mut pictures = Vec::new();
    for packet in packets {
        decoder.send_packet(packet)?;
        receive(decoder, tail, &mut pictures)?;
    }
    decoder.send_eof()?;
    receive(decoder, tail, &mut pictures)?;
    decoder.flush();
    pictures.sort_unstable_by_key(|p| p.pts());
    Ok(pictures)
}

/// The pictures `decoder` has ready whose frames are in `tail`.
fn receive(decoder: &mut ffmpeg::decoder::Video, tail: &Range<u64>, pictures: &mut Vec<frame::Video>) -> std::result::Result<(), ffmpeg::Error> {
    loop {
        let mut picture = frame::Video::empty();
        match decoder.receive_frame(&mut picture) {
            Ok(()) => {
                if picture.pts().is_some_and(|pts| tail.contains(&(pts.max(0) as u64))) {
                    pictures.push(picture);
                }
            }
            Err(ffmpeg::Error::Other { errno: ffi::EAGAIN }) | Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The frame a packet of a video encoder shows (its timestamp: one tick per frame).
fn frame_of(packet: &Packet) -> u64 {
    packet.pts().unwrap_or(0).max(0) as u64
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
