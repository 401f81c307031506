//! Cutting encoded packets into segments and writing each one as soon as it closes.
//!
//! Takes packets in decode order with timestamps in units (frames for video, samples
//! for audio) counted from the source's first frame. A packet that opens a new segment of
//! the grid closes the current one: it is muxed, written through the [`Sink`], and
//! recorded with its size, duration and the byte ranges of its I-frames. Hands on the
//! [`SegmentRecord`]s of every segment written.

use farm_contract::manifest::{iframe_uri, segment_uri, IFrame, SegmentKey, SegmentRecord};
use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, Packet, Rational};

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

struct Open {
    index: u64,
    opened: std::time::Instant,
    muxer: TsMuxer,
    start_unit: i64,
    units: u64,
    iframes: Vec<IFrame>,
}

pub struct Segmenter<'a, C: SegmentClock> {
    rendition: String,
    clock: C,
    params: codec::Parameters,
    codec_tb: Rational,
    sink: &'a dyn Sink,
    open: Option<Open>,
    records: Vec<SegmentRecord>,
    codecs: Option<String>,
    on_segment: &'a (dyn Fn(&SegmentRecord) + Sync),
    sealer: Option<&'a Sealer>,
}

impl<'a, C: SegmentClock> Segmenter<'a, C> {
    pub fn new(
        rendition: &str,
        clock: C,
        params: codec::Parameters,
        codec_tb: Rational,
        sink: &'a dyn Sink,
        on_segment: &'a (dyn Fn(&SegmentRecord) + Sync),
        sealer: Option<&'a Sealer>,
    ) -> Self {
        Self {
            rendition: rendition.into(),
            clock,
            params,
            codec_tb,
            sink,
            open: None,
            records: Vec::new(),
            codecs: None,
            on_segment,
            sealer,
        }
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
            let muxer = TsMuxer::new(&self.params, self.codec_tb)
                .map_err(|e| TranscodeError::ffmpeg("muxing", &self.rendition, e))?;
            self.open = Some(Open { index, opened: std::time::Instant::now(), muxer, start_unit: unit, units: 0, iframes: Vec::new() });
        }
        if key && self.clock.needs_keyframe() && self.codecs.is_none() {
            self.codecs = packet.data().and_then(codecs::avc1_from_annexb);
        }
        let open = self.open.as_mut().expect("opened above");
        let before = open.muxer.position();
        open.muxer
            .write(packet)
            .map_err(|e| TranscodeError::ffmpeg("muxing", &self.rendition, e))?;
        if key && self.clock.needs_keyframe() {
            // The muxer writes PAT/PMT right before every keyframe, so this range can be
            // fetched and decoded on its own (I-frame playlists).
            let after = open.muxer.position();
            open.iframes.push(IFrame { frame: unit as u64, offset: before, length: after - before, uri: None, key: None });
        }
        open.units += packet.duration().max(1) as u64;
        Ok(())
    }

    /// Writes the open segment out now, when the caller knows it is complete (the encoder
    /// was flushed at a segment boundary) instead of when the next segment's packet arrives.
    pub fn close(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else { return Ok(()) };
        let data = open
            .muxer
            .finish()
            .map_err(|e| TranscodeError::ffmpeg("muxing", &self.rendition, e))?;
        let uri = segment_uri(&self.rendition, open.index);
        let start_seconds = self.clock.nominal_start_ms(open.index) as f64 / 1000.0;
        let (data, key, iframes) = match self.sealer {
            Some(sealer) => self.seal(sealer, open.index, &open.iframes, start_seconds, data)?,
            None => (data, None, open.iframes),
        };
        self.sink
            .put(&uri, &data)
            .map_err(|source| TranscodeError::Output { key: uri.clone(), source })?;
        let record = SegmentRecord {
            index: open.index,
            uri,
            bytes: data.len() as u64,
            duration: open.units as f64 / self.clock.units_per_second(),
            units: open.units,
            start_unit: open.start_unit.max(0) as u64,
            iframes,
            key,
        };
        let kind = if self.clock.needs_keyframe() { "video" } else { "audio" };
        crate::metrics::SEGMENT_SECONDS.with_label_values(&[kind]).observe(open.opened.elapsed().as_secs_f64());
        crate::metrics::MEDIA_SECONDS.with_label_values(&[&self.rendition]).inc_by(record.duration);
        if kind == "video" {
            crate::metrics::FRAMES.with_label_values(&[&self.rendition]).inc_by(record.units);
        }
        (self.on_segment)(&record);
        self.records.push(record);
        Ok(())
    }

    /// An encrypted job's segment: sealed whole, and each I-frame (with the PAT and PMT
    /// before it) written sealed as a resource of its own for the I-frame playlist.
    #[allow(clippy::type_complexity)]
    fn seal(&self, sealer: &Sealer, index: u64, plain_iframes: &[IFrame], start_seconds: f64, data: Vec<u8>) -> Result<(Vec<u8>, Option<SegmentKey>, Vec<IFrame>)> {
        let fail = |detail: String| TranscodeError::Keys(format!("rendition {}: {detail}", self.rendition));
        let (sealed, key) = sealer.seal(&self.rendition, index, start_seconds, &data).map_err(fail)?;
        let mut iframes = Vec::with_capacity(plain_iframes.len());
        for i in plain_iframes {
            let plain = &data[i.offset as usize..(i.offset + i.length) as usize];
            let (resource, iframe_key) = sealer.seal_iframe(&self.rendition, i.frame, key.period, plain).map_err(fail)?;
            let uri = iframe_uri(&self.rendition, i.frame);
            self.sink.put(&uri, &resource).map_err(|source| TranscodeError::Output { key: uri.clone(), source })?;
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
