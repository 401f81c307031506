use super::*;

/// A rendition's playlist as the farm writes an encrypted fMP4 one: the map before the
/// first key line, a key line with its own IV before every segment.
fn playlist(ivs: &[&str], segments: u64, ended: bool) -> String {
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-MAP:URI=\"init.mp4\"\n");
    for i in 0..segments {
        text += &format!("#EXT-X-KEY:METHOD=AES-128,URI=\"/v1/jobs/j1/keys/0\",IV=0x{}\n#EXTINF:2,\nseg_{i:05}.m4s\n", ivs[i as usize]);
    }
    if ended {
        text += "#EXT-X-ENDLIST\n";
    }
    text
}

const A_IVS: [&str; 4] = ["a0", "a1", "a2", "a3"];
const B_IVS: [&str; 4] = ["b0", "b1", "b2", "b3"];

fn word(bits: &'static [u8]) -> impl Fn(u64) -> Variant {
    move |p| if bits[p as usize] == 1 { Variant::B } else { Variant::A }
}

/// (IV, URI) of every segment of a merged playlist.
fn segments(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'))
        .map(|(i, uri)| {
            let key = lines[..i].iter().rev().find(|l| l.starts_with("#EXT-X-KEY")).unwrap();
            (key.rsplit("IV=0x").next().unwrap().to_string(), uri.to_string())
        })
        .collect()
}

#[test]
fn each_position_takes_its_variants_segment_and_iv_under_one_map() {
    let (a, b) = (playlist(&A_IVS, 4, true), playlist(&B_IVS, 4, true));
    let text = media_by_word(&a, &b, word(&[0, 1, 1, 0])).unwrap();
    let expected = [("a0", "seg_00000.m4s"), ("b1", "b/seg_00001.m4s"), ("b2", "b/seg_00002.m4s"), ("a3", "seg_00003.m4s")];
    assert_eq!(segments(&text), expected.map(|(iv, u)| (iv.to_string(), u.to_string())));
    assert_eq!(text.matches("#EXT-X-MAP").count(), 1, "{text}");
    assert!(text.find("#EXT-X-MAP:URI=\"init.mp4\"").unwrap() < text.find("#EXT-X-KEY").unwrap(), "{text}");
    assert!(text.ends_with("seg_00003.m4s\n#EXT-X-ENDLIST\n"), "{text}");
    // All A is A's playlist, line for line.
    assert_eq!(media_by_word(&a, &b, |_| Variant::A).unwrap(), a);
}

#[test]
fn a_live_playlist_stops_before_a_b_segment_not_listed_yet() {
    // B lags A by one segment; the share's position 2 is B.
    let (a, b) = (playlist(&A_IVS, 4, true), playlist(&B_IVS, 2, false));
    let text = media_by_word(&a, &b, word(&[1, 0, 1, 0])).unwrap();
    assert_eq!(segments(&text).iter().map(|s| s.1.as_str()).collect::<Vec<_>>(), ["b/seg_00000.m4s", "seg_00001.m4s"]);
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
}

#[test]
fn uris_without_a_position_and_other_texts_are_refused() {
    let odd = "#EXTM3U\n#EXTINF:2,\nclip.ts\n";
    assert_eq!(media_by_word(odd, odd, |_| Variant::A).unwrap_err(), ByWordError::NoPosition("clip.ts".into()));
    assert_eq!(media_by_word("<html>", odd, |_| Variant::A).unwrap_err(), ByWordError::NotMedia);
    assert_eq!(position("720p/seg_00012.ts").unwrap(), 12);
}

#[test]
fn a_share_reaches_only_its_words_segments_of_marked_renditions() {
    let marked = |folder: &str| folder == "720p" || folder == "720p-hevc";
    let may = |name: &str| reachable(name, marked, word(&[0, 1, 1, 0]));
    assert!(may("720p/seg_00000.m4s") && may("720p/b/seg_00001.m4s") && may("720p/b/seg_00002.m4s") && may("720p/seg_00003.m4s"));
    assert!(!may("720p/b/seg_00000.m4s") && !may("720p/seg_00001.m4s") && !may("720p/seg_00002.m4s") && !may("720p/b/seg_00003.m4s"), "the other variant");
    assert!(!may("720p-hevc/seg_00001.m4s") && may("720p-hevc/b/seg_00001.m4s"), "every marked rendition");
    assert!(may("720p/init.mp4") && may("720p/index.m3u8"), "A's map and playlist (merged by the caller)");
    assert!(!may("720p/b/init.mp4") && !may("720p/b/index.m3u8") && !may("720p/iframes.m3u8"), "B's own files, I-frames pointing into A");
    assert!(may("audio_en/seg_00001.m4s") && !may("audio_en/b/seg_00001.m4s"), "audio is not marked: one variant");
    assert!(may("review.json") && may("thumbs/sprite_000.jpg") && may("index.m3u8"));
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"720p/iframes.m3u8\"\n";
    assert_eq!(without_iframes(master), "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n");
}
