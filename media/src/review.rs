//! A job's review options checked against its source: the start timecode chosen (the
//! job's, else the source's, else 00:00:00:00) and valid at the source's rate, burn-in
//! text checked, the LUT parsed. Used by the coordinator at submission and by the
//! one-shot command, so both refuse the same requests with the same words.

use farm_contract::review::{LutRef, Review, ReviewRequest};
use farm_contract::thumbnails::Thumbnails;
use farm_contract::timecode::Timecode;

use crate::lut::{self, Cube};
use crate::source::SourceInfo;

/// The job's [`Review`]; `lut` is the LUT's location and bytes when the request names one.
/// The error says what is wrong, for a 400/422 answer or the command's message.
pub fn resolve(req: &ReviewRequest, source: &str, info: &SourceInfo, lut: Option<(&str, &[u8])>) -> Result<(Review, Option<Cube>), String> {
    if let Some(text) = &req.watermark {
        Review::check_text("watermark", text)?;
    }
    let (start_timecode, timecode_origin) = match (&req.start_timecode, &info.timecode) {
        (Some(tc), _) => (Timecode::parse(tc).map_err(|e| format!("start_timecode: {e}"))?, "job"),
        (None, Some(tc)) => match Timecode::parse(tc) {
            Ok(tc) if tc.frame_index(info.rate).is_ok() => (tc, "source"),
            _ => (zero(info), "default"),
        },
        (None, None) => (zero(info), "default"),
    };
    start_timecode.frame_index(info.rate).map_err(|e| format!("start_timecode: {e}"))?;
    let (lut_ref, cube) = match lut {
        Some((location, data)) => {
            let cube = Cube::parse(data).map_err(|e| format!("lut {location}: {e}"))?;
            (Some(LutRef { location: location.to_string(), sha256: lut::sha256_hex(data) }), Some(cube))
        }
        None => (None, None),
    };
    let (display_w, display_h) = info.display_size();
    let mut burn_in = req.burn_in.clone();
    burn_in.sort();
    burn_in.dedup();
    let review = Review {
        burn_in,
        watermark: req.watermark.clone(),
        lut: lut_ref,
        tone_map: req.tone_map,
        start_timecode,
        timecode_origin: timecode_origin.into(),
        clip_name: Review::clip_name_of(source),
        thumbnails: Some(Thumbnails::for_picture(display_w, display_h)),
        // A tenth in: past slates and fades from black.
        poster_frame: info.frames_expected().map_or(0, |frames| frames / 10),
    };
    Ok((review, cube))
}

/// 00:00:00:00, drop-frame at the rates that count so.
fn zero(info: &SourceInfo) -> Timecode {
    Timecode { hours: 0, minutes: 0, seconds: 0, frames: 0, drop_frame: Timecode::drop_frame_rate(info.rate) }
}
