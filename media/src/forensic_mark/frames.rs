//! A video file's pictures as the detector reads them: 8-bit luma at one working size, with
//! the time each is shown. Opened as sources are ([`crate::source::open`]: our own reader,
//! only the containers we accept), since a leaked file is untrusted input too.

use ffmpeg_next as ffmpeg;
use ffmpeg::software::scaling;
use ffmpeg::{codec, format, frame};

use crate::error::{Result, TranscodeError};
use farm_storage::SourceLocation;

/// Pictures of one file, every one `size` (width, height) packed luma.
#[derive(Debug, Default)]
pub struct Frames {
    pub size: (usize, usize),
    pub planes: Vec<Vec<u8>>,
    /// Seconds from the file's first picture.
    pub times: Vec<f64>,
}

impl Frames {
    pub fn luma(&self, index: usize) -> super::Luma<'_> {
        super::Luma::packed(&self.planes[index], self.size)
    }

    pub fn len(&self) -> usize {
        self.planes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.planes.is_empty()
    }

    /// The pictures shown within `times` (seconds, as [`Self::times`]), their times kept.
    pub fn shown(&self, times: impl std::ops::RangeBounds<f64>) -> Frames {
        let kept: Vec<usize> = (0..self.len()).filter(|&i| times.contains(&self.times[i])).collect();
        Frames { size: self.size, planes: kept.iter().map(|&i| self.planes[i].clone()).collect(), times: kept.iter().map(|&i| self.times[i]).collect() }
    }
}

/// Every picture of the first video stream of `location`, scaled to `size`, in order.
pub fn read(location: &SourceLocation, size: (usize, usize)) -> Result<Frames> {
    let mut source = crate::source::open(location)?;
    let index = source.info.video_index;
    let base = f64::from(source.input.stream(index).expect("video stream").time_base());
    let mut decoder = crate::transcode::decode::open_video(&source, index, 2, codec::threading::Type::Frame)?;
    let mut out = Frames { size, ..Default::default() };
    let mut scaler: Option<scaling::Context> = None;
    let mut first: Option<i64> = None;
    let mut take = |decoder: &mut ffmpeg::decoder::Video, out: &mut Frames| -> Result<()> {
        let mut picture = frame::Video::empty();
        while decoder.receive_frame(&mut picture).is_ok() {
            let scaler = match &mut scaler {
                Some(s) => s,
                None => scaler.insert(
                    scaling::Context::get(picture.format(), picture.width(), picture.height(), format::Pixel::GRAY8, size.0 as u32, size.1 as u32, scaling::Flags::AREA)
                        .map_err(|e| TranscodeError::ffmpeg("scaling for the detector", "-", e))?,
                ),
            };
            let mut gray = frame::Video::empty();
            scaler.run(&picture, &mut gray).map_err(|e| TranscodeError::ffmpeg("scaling for the detector", "-", e))?;
            let stride = gray.stride(0);
            let plane: Vec<u8> = (0..size.1).flat_map(|y| gray.data(0)[y * stride..y * stride + size.0].iter().copied()).collect();
            let pts = picture.timestamp().or(picture.pts()).unwrap_or(0);
            let start = *first.get_or_insert(pts);
            out.times.push((pts - start) as f64 * base);
            out.planes.push(plane);
        }
        Ok(())
    };
    for (stream, packet) in source.input.packets() {
        if stream.index() == index && decoder.send_packet(&packet).is_ok() {
            take(&mut decoder, &mut out)?;
        }
    }
    let _ = decoder.send_eof();
    take(&mut decoder, &mut out)?;
    if let Some(e) = source.take_io_error() {
        return Err(e);
    }
    Ok(out)
}
