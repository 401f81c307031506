//! A low-bandwidth rung and audio by bandwidth (issue 17): a job whose ladder has a rung
//! over 1 Mb/s and a 234p rung under it, from a source with two mono tracks, on the
//! embedded farm in two chunks. The 234p rung plays with the `audio-low` group (the mix and
//! each track again at 64 / 32 kb/s) and stays under 300 kb/s with its audio; both groups
//! have the same members; the whole ladder passes the independent checks (ffprobe on every
//! segment, frame counts, boundaries, BANDWIDTH measured per group).

use std::path::Path;
use std::time::Duration;

use farm_tests::farm::Farm;
use farm_tests::fixtures::make;
use farm_tests::hls::{check_ladder, read_master, read_media};

const LADDER: &str = r#"{"video": [
  {"name": "360p", "width": 640, "height": 360, "bitrate_kbps": 1200},
  {"name": "234p", "width": 416, "height": 234, "bitrate_kbps": 160}
]}"#;

/// 12 s of 640x360 at 25 fps with two mono tracks (a boom and a lavalier, say).
fn two_track_source() -> std::path::PathBuf {
    make(
        "low-bandwidth-two-tracks.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=12",
            "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=12",
            "-f", "lavfi", "-i", "sine=frequency=700:sample_rate=48000:duration=12",
            "-map", "0:v", "-map", "1:a", "-map", "2:a",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
        ],
    )
    .unwrap()
}

/// Average bits per second of a rendition's segments, as written (container included).
fn written_rate(out: &Path, rendition: &str) -> f64 {
    let media = read_media(&out.join(rendition).join("index.m3u8")).unwrap();
    let bytes: u64 = media.segments.iter().map(|s| std::fs::metadata(out.join(rendition).join(&s.uri)).unwrap().len()).sum();
    let seconds: f64 = media.segments.iter().map(|s| f64::from(s.duration)).sum();
    bytes as f64 * 8.0 / seconds
}

#[test]
fn the_low_rung_plays_with_low_rate_audio_under_300_kbps() {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::embedded(&dir.path().join("data"), 2, 6.0);
    let out = dir.path().join("out");
    let body = serde_json::json!({
        "source": two_track_source().display().to_string(),
        "output": out.display().to_string(),
        "ladder": serde_json::from_str::<serde_json::Value>(LADDER).unwrap(),
    });
    let (code, job) = farm.submit(&body.to_string());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    let done = farm.wait_final(id, Duration::from_secs(240));
    assert_eq!(done["state"], "succeeded", "{done}\n{}", farm.coordinator.log());

    let check = check_ladder(&out, 300, 25.0, true).unwrap();
    assert_eq!(check.renditions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["360p", "234p"]);
    let master = read_master(&out).unwrap();
    let groups = |group: &str| master.alternatives.iter().filter(|a| a.group_id == group).map(|a| a.uri.clone().unwrap()).collect::<Vec<_>>();
    assert_eq!(groups("audio"), ["audio/index.m3u8", "audio_1/index.m3u8", "audio_2/index.m3u8"]);
    assert_eq!(groups("audio-low"), ["audio-low/index.m3u8", "audio_1-low/index.m3u8", "audio_2-low/index.m3u8"]);
    let variant = |name: &str| master.variants.iter().find(|v| !v.is_i_frame && v.uri == format!("{name}/index.m3u8")).unwrap().clone();
    let (hd, low) = (variant("360p"), variant("234p"));
    assert_eq!((hd.audio.as_deref(), low.audio.as_deref()), (Some("audio"), Some("audio-low")));
    // The low rung with its audio: at most 300 kb/s, peak and average, as measured.
    assert!(low.bandwidth <= 300_000 && low.average_bandwidth.unwrap() <= 300_000, "234p declares {} / {:?}", low.bandwidth, low.average_bandwidth);

    // The low group's rates: the stereo mix at 64 kb/s, each mono track at 32; the main
    // group's mix at 128. MPEG-TS adds about 15-30 kb/s around them (the ffmpeg CLI's TS
    // muxing of the same AAC does too).
    let rate = |r: &str| written_rate(&out, r);
    let (mix, mix_low, track_low) = (rate("audio"), rate("audio-low"), rate("audio_1-low"));
    assert!((128_000.0..170_000.0).contains(&mix), "audio: {mix:.0} b/s");
    assert!((64_000.0..90_000.0).contains(&mix_low), "audio-low: {mix_low:.0} b/s");
    assert!((32_000.0..50_000.0).contains(&track_low), "audio_1-low: {track_low:.0} b/s");
    println!("234p with its audio: BANDWIDTH {} AVERAGE-BANDWIDTH {:?}; audio {mix:.0}, audio-low {mix_low:.0}, audio_1-low {track_low:.0} b/s written", low.bandwidth, low.average_bandwidth);

    // review.json lists each track once.
    let review: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("review.json")).unwrap()).unwrap();
    let names: Vec<&str> = review["audio"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["audio", "audio_1", "audio_2"]);
}
