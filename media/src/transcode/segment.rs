//! Cutting encoded packets into segments and writing each one as soon as it closes.
//!
//! Takes packets in decode order with timestamps in units (frames for video, samples
//! for audio) counted from the source's first frame. A packet that opens a new segment of
//! the grid closes the current one: it is muxed, written through the [`Sink`], and
//! recorded with its size, duration and the byte ranges of its I-frames. Hands on the
//! [`SegmentRecord`]s of every segment written. MPEG-TS segments stand alone; fMP4 ones
//! share the rendition's init segment, written with segment 0.

use farm_contract::ladder::SegmentFormat;
use farm_contract::manifest::{iframe_uri, init_uri, segment_uri, IFrame, SegmentKey, SegmentRecord};
use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, Packet, Rational};

use super::fmp4::Fmp4Muxer;
use super::mux::TsMuxer;
use super::seal::Sealer;
use farm_hls::codecs;
use crate::error::{Result, TranscodeError};
use farm_storage::Sink;

/// Which segment a packet starts, decided by the caller's grid.
pub trait SegmentClock {
    /// Segment index for a packet at `unit`.
    fn segment_of(&self, unit: i64) -> u64;
    /// Units per second, to turn unit counts into seconds.
    fn units_per_second(&self) -> f64;
    /// Whether a segment must begin with a keyframe (video) or may begin anywhere (audio).
    fn needs_keyframe(&self) -> bool;
    /// Where segment `index` starts on the ladder's nominal cuts, in milliseconds: the same
    /// for every rendition, so the coordinator's playlists find the same key period.
    fn nominal_start_ms(&self, index: u64) -> u64;
}

enum Muxer {
    Ts(TsMuxer),
    Fmp4(Fmp4Muxer),
}

struct Open {
    index: u64,
    opened: std::time::Instant,
    muxer: Muxer,
    start_unit: i64,
    units: u64,
    /// MPEG-TS: the I-frames' byte ranges, as they are muxed. fMP4: the I-frames' frame
    /// numbers (one fragment each; their ranges are known when the segment is finished).
    iframes: Vec<IFrame>,
}

/// Where and how a rendition's segments go.
#[derive(Clone, Copy)]
pub struct Output<'a> {
    pub sink: &'a dyn Sink,
    /// Told of every segment written.
    pub on_segment: &'a (dyn Fn(&SegmentRecord) + Sync),
    /// Encrypted jobs: the task's keys.
    pub sealer: Option<&'a Sealer>,
    pub format: SegmentFormat,
}

pub struct Segmenter<'a, C: SegmentClock> {
    rendition: String,
    clock: C,
    params: codec::Parameters,
    codec_tb: Rational,
    open: Option<Open>,
    records: Vec<SegmentRecord>,
    codecs: Option<String>,
    out: Output<'a>,
    /// fMP4: the init segment of the first segment muxed; every later one must match it.
    init: Option<Vec<u8>>,
    /// The rendition's first segment position, written with the init segment before it.
    first_index: u64,
}

impl<'a, C: SegmentClock> Segmenter<'a, C> {
    pub fn new(rendition: &str, clock: C, params: codec::Parameters, codec_tb: Rational, out: Output<'a>) -> Self {
        Self { rendition: rendition.into(), clock, params, codec_tb, open: None, records: Vec::new(), codecs: None, out, init: None, first_index: 0 }
    }

    /// A rendition whose segments start at position `index` (a forensic job's variant B):
    /// its init segment is written with that segment, not with segment 0.
    pub fn starting_at(self, index: u64) -> Self {
        Self { first_index: index, ..self }
    }

    /// fMP4: the init segment's URI for the rendition's part; `None` for MPEG-TS.
    pub fn init_uri(&self) -> Option<String> {
        init_uri(&self.rendition, self.out.format)
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Codec string read from the first keyframe (video only).
    pub fn codecs(&self) -> Option<&str> {
        self.codecs.as_deref()
    }

    /// `packet` has timestamps in units; `duration` is its length in units.
    pub fn push(&mut self, packet: &Packet) -> Result<()> {
        let unit = packet.pts().or(packet.dts()).unwrap_or(0);
        let index = self.clock.segment_of(unit);
        let key = packet.is_key();
        if self.open.as_ref().is_none_or(|o| o.index != index) {
            if self.clock.needs_keyframe() && !key {
                // Only possible if the encoder ignored a forced keyframe.
                return Err(TranscodeError::ffmpeg(
                    "segmenting",
                    &self.rendition,
                    format!("segment {index} would start at unit {unit} without a keyframe"),
                ));
            }
            self.close()?;
            let muxer = self.open_muxer()?;
            self.open = Some(Open { index, opened: std::time::Instant::now(), muxer, start_unit: unit, units: 0, iframes: Vec::new() });
        }
        let video_key = key && self.clock.needs_keyframe();
        if video_key && self.codecs.is_none() {
            self.codecs = match &self.init {
                Some(init) => codecs::video_from_init(init),
                None => packet.data().and_then(codecs::avc1_from_annexb),
            };
        }
        let open = self.open.as_mut().expect("opened above");
        let fail = |e| TranscodeError::ffmpeg("muxing", &self.rendition, e);
        match &mut open.muxer {
            Muxer::Ts(muxer) => {
                let before = muxer.position();
                muxer.write(packet).map_err(fail)?;
                if video_key {
                    // The muxer writes PAT/PMT right before every keyframe, so this range can
                    // be fetched and decoded on its own (I-frame playlists).
                    let after = muxer.position();
                    open.iframes.push(IFrame { frame: unit as u64, offset: before, length: after - before, uri: None, key: None });
                }
            }
            Muxer::Fmp4(muxer) => {
                if video_key {
                    // One fragment per GOP: a video segment opens on a keyframe, so every
                    // keyframe after the first closes the GOP before it.
                    if !open.iframes.is_empty() {
                        muxer.fragment().map_err(fail)?;
                    }
                    open.iframes.push(IFrame { frame: unit as u64, offset: 0, length: 0, uri: None, key: None });
                }
                muxer.write(packet).map_err(fail)?;
            }
        }
        open.units += packet.duration().max(1) as u64;
        Ok(())
    }

    /// A fresh muxer for the next segment; an fMP4 one must have the init segment of the
    /// rendition's first (the same encoder settings give the same one).
    fn open_muxer(&mut self) -> Result<Muxer> {
        let fail = |e| TranscodeError::ffmpeg("muxing", &self.rendition, e);
        if self.out.format == SegmentFormat::Ts {
            return Ok(Muxer::Ts(TsMuxer::new(&self.params, self.codec_tb).map_err(fail)?));
        }
        let muxer = Fmp4Muxer::new(&self.params, self.codec_tb).map_err(fail)?;
        match &self.init {
            Some(init) if init != muxer.init() => {
                return Err(TranscodeError::ffmpeg("muxing", &self.rendition, "the init segment changed between segments"));
            }
            Some(_) => {}
            None => self.init = Some(muxer.init().to_vec()),
        }
        Ok(Muxer::Fmp4(muxer))
    }

    /// The segment's bytes and its I-frames' byte ranges.
    fn finish_muxer(&self, open: Open) -> Result<(Vec<u8>, Vec<IFrame>)> {
        let fail = |e| TranscodeError::ffmpeg("muxing", &self.rendition, e);
        match open.muxer {
            Muxer::Ts(muxer) => Ok((muxer.finish().map_err(fail)?, open.iframes)),
            Muxer::Fmp4(muxer) => {
                let segment = muxer.finish().map_err(fail)?;
                if open.iframes.is_empty() {
                    return Ok((segment.data, open.iframes));
                }
                if segment.first_samples.len() != open.iframes.len() {
                    let detail = format!("{} fragments for {} keyframes", segment.first_samples.len(), open.iframes.len());
                    return Err(TranscodeError::ffmpeg("muxing", &self.rendition, detail));
                }
                let iframes = open.iframes.iter().zip(&segment.first_samples);
                let iframes = iframes.map(|(i, &(offset, length))| IFrame { offset, length, ..i.clone() }).collect();
                Ok((segment.data, iframes))
            }
        }
    }

    /// Writes the open segment out now, when the caller knows it is complete (the encoder
    /// was flushed at a segment boundary) instead of when the next segment's packet arrives.
    pub fn close(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else { return Ok(()) };
        let (index, opened, start_unit, units) = (open.index, open.opened, open.start_unit, open.units);
        let (data, plain_iframes) = self.finish_muxer(open)?;
        if let (Some(init), Some(uri), true) = (&self.init, self.init_uri(), index == self.first_index) {
            // Before the segment: a playlist that lists segment 0 finds its init segment.
            self.out.sink.put(&uri, init).map_err(|source| TranscodeError::Output { key: uri.clone(), source })?;
        }
        let uri = segment_uri(&self.rendition, index, self.out.format);
        let start_seconds = self.clock.nominal_start_ms(index) as f64 / 1000.0;
        let (data, key, iframes) = match self.out.sealer {
            Some(sealer) => self.seal(sealer, index, &plain_iframes, start_seconds, data)?,
            None => (data, None, plain_iframes),
        };
        self.out.sink
            .put(&uri, &data)
            .map_err(|source| TranscodeError::Output { key: uri.clone(), source })?;
        let record = SegmentRecord {
            index,
            uri,
            bytes: data.len() as u64,
            duration: units as f64 / self.clock.units_per_second(),
            units,
            start_unit: start_unit.max(0) as u64,
            iframes,
            key,
        };
        let kind = if self.clock.needs_keyframe() { "video" } else { "audio" };
        crate::metrics::SEGMENT_SECONDS.with_label_values(&[kind]).observe(opened.elapsed().as_secs_f64());
        crate::metrics::MEDIA_SECONDS.with_label_values(&[&self.rendition]).inc_by(record.duration);
        if kind == "video" {
            crate::metrics::FRAMES.with_label_values(&[&self.rendition]).inc_by(record.units);
        }
        (self.out.on_segment)(&record);
        self.records.push(record);
        Ok(())
    }

    /// An encrypted job's segment: sealed whole, and each I-frame (with the PAT and PMT
    /// before it, or its fragment's moof) sealed as a resource of its own for the I-frame
    /// playlist.
    #[allow(clippy::type_complexity)]
    fn seal(&self, sealer: &Sealer, index: u64, plain_iframes: &[IFrame], start_seconds: f64, data: Vec<u8>) -> Result<(Vec<u8>, Option<SegmentKey>, Vec<IFrame>)> {
        let fail = |detail: String| TranscodeError::Keys(format!("rendition {}: {detail}", self.rendition));
        let (sealed, key) = sealer.seal(&self.rendition, index, start_seconds, &data).map_err(fail)?;
        let mut iframes = Vec::with_capacity(plain_iframes.len());
        for i in plain_iframes {
            let plain = &data[i.offset as usize..(i.offset + i.length) as usize];
            let (resource, iframe_key) = sealer.seal_iframe(&self.rendition, i.frame, key.period, plain).map_err(fail)?;
            let uri = iframe_uri(&self.rendition, i.frame, self.out.format);
            self.out.sink.put(&uri, &resource).map_err(|source| TranscodeError::Output { key: uri.clone(), source })?;
            iframes.push(IFrame { frame: i.frame, offset: 0, length: resource.len() as u64, uri: Some(uri), key: Some(iframe_key) });
        }
        Ok((sealed, Some(key), iframes))
    }

    /// Closes the last segment and returns every segment written.
    pub fn finish(mut self) -> Result<Vec<SegmentRecord>> {
        self.close()?;
        Ok(self.records)
    }
}
