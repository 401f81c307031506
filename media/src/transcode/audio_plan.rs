//! Which audio renditions a source gets: the review mix (the `DEFAULT=YES` rendition) and,
//! when the source has two or more tracks, one rendition per track (up to
//! [`MAX_TRACKS`]), so a mixer can solo the boom or a lavalier.
//!
//! With audio by bandwidth, every rendition again at the low rate in the second group
//! (RFC 8216: groups of one type have the same members), named with `-low` added.
//!
//! Takes the probed tracks and the ladder's audio settings; hands on each rendition's name,
//! group, label, language, the decoded tracks it takes (its inputs) and its encoder
//! settings.
//! The coordinator plans live playlists from the same function the worker encodes by.

use farm_contract::ladder::{AudioSpec, AUDIO_GROUP, LOW_AUDIO_GROUP, LOW_SUFFIX};
use farm_contract::manifest::AUDIO_RENDITION;

use crate::source::AudioTrack;

/// Source tracks that get a rendition of their own; later ones are in no rendition.
pub const MAX_TRACKS: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct AudioRendition {
    /// `audio` for the mix, `audio_N` for the source's N-th audio track (from 1).
    pub name: String,
    /// [`AUDIO_GROUP`] or [`LOW_AUDIO_GROUP`].
    pub group: &'static str,
    /// The playlist's NAME: the track's title or handler name, else `Track N`.
    pub label: String,
    pub language: Option<String>,
    /// Indices into the decoded tracks (the `streams` of [`plan`]), in mix order.
    pub inputs: Vec<usize>,
    /// The source's stream indices behind it.
    pub source_streams: Vec<usize>,
    pub spec: AudioSpec,
}

/// Which tracks make the review mix: a multichannel first track on its own; two or more
/// mono tracks (the usual camera or recorder layout) give left and right from the first
/// two; a single mono track is used alone. Returns stream indices in mix order.
pub fn select_tracks(tracks: &[AudioTrack]) -> Vec<usize> {
    match tracks {
        [] => vec![],
        [first, second, ..] if first.channels == 1 && second.channels == 1 => {
            vec![first.index, second.index]
        }
        [first, ..] => vec![first.index],
    }
}

/// The streams to decode and the renditions made of them. `per_track`: tasks of jobs from
/// before per-track renditions make the mix alone, as their other chunks did. `low`: the
/// low group's stereo rate ([`AudioSpec::low_group`]).
pub fn plan(tracks: &[AudioTrack], spec: &AudioSpec, per_track: bool, low: Option<u32>) -> (Vec<usize>, Vec<AudioRendition>) {
    let (streams, mut renditions) = main_group(tracks, spec, per_track);
    if let Some(rate) = low {
        let lows: Vec<AudioRendition> = renditions.iter().map(|r| low_copy(r, rate)).collect();
        renditions.extend(lows);
    }
    (streams, renditions)
}

/// A rendition at the low rate: stereo at `rate`, mono at half of it (at least 32 kb/s).
fn low_copy(r: &AudioRendition, rate: u32) -> AudioRendition {
    let bitrate_kbps = if r.spec.channels == 1 { (rate / 2).max(32) } else { rate };
    AudioRendition {
        name: format!("{}{LOW_SUFFIX}", r.name),
        group: LOW_AUDIO_GROUP,
        spec: AudioSpec { bitrate_kbps: bitrate_kbps.min(r.spec.bitrate_kbps), ..r.spec.clone() },
        ..r.clone()
    }
}

fn main_group(tracks: &[AudioTrack], spec: &AudioSpec, per_track: bool) -> (Vec<usize>, Vec<AudioRendition>) {
    let mix = select_tracks(tracks);
    if mix.is_empty() {
        return (vec![], vec![]);
    }
    let own: &[AudioTrack] = if per_track && tracks.len() >= 2 { &tracks[..tracks.len().min(MAX_TRACKS)] } else { &[] };
    let mut streams: Vec<usize> = own.iter().map(|t| t.index).collect();
    for s in &mix {
        if !streams.contains(s) {
            streams.push(*s);
        }
    }
    let slot = |stream: usize| streams.iter().position(|&s| s == stream).expect("decoded");
    let label = if spec.channels == 1 { "Mono mix" } else { "Stereo mix" };
    let mut renditions = vec![AudioRendition {
        name: AUDIO_RENDITION.into(),
        group: AUDIO_GROUP,
        label: label.into(),
        language: tracks.iter().find(|t| t.index == mix[0]).and_then(|t| t.language.clone()),
        inputs: mix.iter().map(|&s| slot(s)).collect(),
        source_streams: mix.clone(),
        spec: spec.clone(),
    }];
    for (n, track) in own.iter().enumerate() {
        let channels = track.channels.min(spec.channels.max(1)).min(2);
        // A mono track needs half a stereo track's rate for the same quality.
        let bitrate_kbps = if channels == 1 { (spec.bitrate_kbps / 2).max(64) } else { spec.bitrate_kbps };
        renditions.push(AudioRendition {
            name: format!("{AUDIO_RENDITION}_{}", n + 1),
            group: AUDIO_GROUP,
            label: track.title.clone().unwrap_or_else(|| format!("Track {}", n + 1)),
            language: track.language.clone(),
            inputs: vec![slot(track.index)],
            source_streams: vec![track.index],
            spec: AudioSpec { channels, bitrate_kbps, ..spec.clone() },
        });
    }
    (streams, renditions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(index: usize, channels: u32) -> AudioTrack {
        AudioTrack { index, channels, sample_rate: 48_000, codec: "pcm_s24le".into(), title: None, language: None }
    }

    #[test]
    fn picks_the_tracks_of_the_review_mix() {
        assert!(select_tracks(&[]).is_empty());
        assert_eq!(select_tracks(&[track(1, 2)]), vec![1]);
        assert_eq!(select_tracks(&[track(1, 6), track(2, 1)]), vec![1]);
        assert_eq!(select_tracks(&[track(1, 1)]), vec![1]);
        assert_eq!(select_tracks(&[track(1, 1), track(2, 1), track(3, 1), track(4, 1)]), vec![1, 2]);
        assert_eq!(select_tracks(&[track(1, 1), track(2, 2)]), vec![1]);
    }

    #[test]
    fn every_track_gets_a_rendition_beside_the_mix() {
        let spec = AudioSpec::default();
        let mut tracks: Vec<AudioTrack> = (1..=8).map(|i| track(i, 1)).collect();
        tracks[2].title = Some("Boom".into());
        tracks[2].language = Some("eng".into());
        tracks.push(track(9, 6));
        let (streams, r) = plan(&tracks, &spec, true, None);
        assert_eq!(streams, (1..=9).collect::<Vec<_>>());
        assert_eq!(r.len(), 10);
        assert_eq!((r[0].name.as_str(), r[0].label.as_str(), &r[0].inputs), ("audio", "Stereo mix", &vec![0, 1]));
        assert_eq!((r[3].name.as_str(), r[3].label.as_str(), r[3].language.as_deref()), ("audio_3", "Boom", Some("eng")));
        assert_eq!((r[1].label.as_str(), r[1].spec.channels, r[1].spec.bitrate_kbps), ("Track 1", 1, 64));
        assert_eq!((r[9].inputs.clone(), r[9].spec.channels), (vec![8], 2), "5.1 is down-mixed to stereo");
        // one track: the mix alone; tasks from before: the mix alone
        assert_eq!(plan(&tracks[..1], &spec, true, None).1.len(), 1);
        assert_eq!(plan(&tracks, &spec, false, None).1.len(), 1);
        let many: Vec<AudioTrack> = (1..=20).map(|i| track(i, 1)).collect();
        assert_eq!(plan(&many, &spec, true, None).1.len(), 1 + MAX_TRACKS);
    }

    #[test]
    fn the_low_group_has_the_same_members_at_the_low_rate() {
        let spec = AudioSpec::default();
        let tracks = [track(1, 1), track(2, 1), track(3, 2)];
        let (streams, r) = plan(&tracks, &spec, true, Some(64));
        assert_eq!(streams, vec![1, 2, 3]);
        let names: Vec<(&str, &str, u32, u32)> = r.iter().map(|r| (r.name.as_str(), r.group, r.spec.bitrate_kbps, r.spec.channels)).collect();
        assert_eq!(
            names,
            vec![
                ("audio", "audio", 128, 2),
                ("audio_1", "audio", 64, 1),
                ("audio_2", "audio", 64, 1),
                ("audio_3", "audio", 128, 2),
                ("audio-low", "audio-low", 64, 2),
                ("audio_1-low", "audio-low", 32, 1),
                ("audio_2-low", "audio-low", 32, 1),
                ("audio_3-low", "audio-low", 64, 2),
            ]
        );
        assert_eq!((r[4].label.as_str(), &r[4].inputs), (r[0].label.as_str(), &r[0].inputs));
    }
}
