//! What a source says about its audio tracks and its timecode.

use ffmpeg_next as ffmpeg;
use ffmpeg::format::context::Input;
use ffmpeg::media::Type;

use super::AudioTrack;

/// The audio streams a decoder exists for, with their channels, sample rate, title and
/// language.
pub(super) fn audio_tracks(input: &Input) -> Vec<AudioTrack> {
    input
        .streams()
        .filter(|s| s.parameters().medium() == Type::Audio)
        .filter_map(|s| {
            // SAFETY: codec parameters of an open input's stream are valid while it is borrowed.
            let p = unsafe { &*s.parameters().as_ptr() };
            let channels = p.ch_layout.nb_channels;
            let meta = s.metadata();
            let text = |key: &str| {
                meta.get(key)
                    .map(|v| v.chars().filter(|c| !c.is_control()).take(64).collect::<String>())
                    .filter(|v| !v.trim().is_empty())
            };
            // MOV writes a generic handler name on every track: it names nothing.
            let title = text("title").or_else(|| text("handler_name").filter(|h| !is_generic_handler(h)));
            let language = text("language").filter(|l| l.len() == 3 && l != "und" && l.chars().all(|c| c.is_ascii_lowercase()));
            (channels > 0 && p.sample_rate > 0 && ffmpeg::decoder::find(s.parameters().id()).is_some())
                .then(|| AudioTrack {
                    index: s.index(),
                    channels: channels as u32,
                    sample_rate: p.sample_rate as u32,
                    codec: format!("{:?}", s.parameters().id()).to_lowercase(),
                    title,
                    language,
                })
        })
        .collect()
}

fn is_generic_handler(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    matches!(n.as_str(), "soundhandler" | "sound handler" | "core media audio" | "apple sound media handler")
}

/// The first frame's timecode: the container's (MXF), else a stream's (the MOV `tmcd`
/// track, which FFmpeg also copies onto the video stream).
pub(super) fn timecode(input: &Input) -> Option<String> {
    let valid = |tc: &str| farm_contract::timecode::Timecode::parse(tc).is_ok();
    input
        .metadata()
        .get("timecode")
        .map(str::to_owned)
        .filter(|tc| valid(tc))
        .or_else(|| input.streams().find_map(|s| s.metadata().get("timecode").map(str::to_owned).filter(|tc| valid(tc))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn generic_handler_names_are_not_titles() {
        assert!(super::is_generic_handler("SoundHandler"));
        assert!(!super::is_generic_handler("Boom"));
    }
}
