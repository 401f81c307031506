//! Forensic A/B watermarking (issue 19) through the embedded farm on local disk: a job asks
//! for `forensic_watermark`, its chunks are encoded as A and B, and every share plays its
//! own code word's copy: its media playlist picks A or B at each segment position, the
//! coordinator serves the segments it lists and refuses the other variant's, B's own
//! playlists and the I-frame playlists; FFmpeg plays the mixed copy through; the audit trail
//! names each share's code word. Without a master key the job is refused.

use std::time::Duration;

use farm_tests::farm::Farm;
use farm_tests::fixtures::SMALL_LADDER;
use farm_tests::probe::decoded_frames;

const SECONDS: u32 = 16;

fn source(dir: &std::path::Path) -> std::path::PathBuf {
    let made = farm_tests::fixtures::make(
        "forensic-16s.mov",
        &[
            "-f", "lavfi", "-i", &format!("testsrc2=size=320x180:rate=25:duration={SECONDS}"),
            "-f", "lavfi", "-i", &format!("sine=frequency=440:sample_rate=48000:duration={SECONDS}"),
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
        ],
    )
    .unwrap();
    let path = dir.join("in.mov");
    std::fs::copy(made, &path).unwrap();
    path
}

fn uris(playlist: &str) -> Vec<String> {
    playlist.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(str::to_string).collect()
}

#[test]
fn a_watermarked_jobs_shares_each_play_their_own_words_segments() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path());
    let mut ladder: serde_json::Value = serde_json::from_str(SMALL_LADDER).unwrap();
    ladder["segment_seconds"] = 2.into();
    let body = |out: &str| serde_json::json!({"source": source.display().to_string(), "output": dir.path().join(out).display().to_string(), "ladder": ladder, "forensic_watermark": true}).to_string();

    let plain = Farm::embedded_with(&dir.path().join("plain"), 1, 60.0, &[]);
    let (code, refused) = plain.submit(&body("refused"));
    assert_eq!(code, 422, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("FARM_MASTER_KEY_FILE"), "{refused}");
    drop(plain);

    std::fs::write(dir.path().join("master.key"), "3c".repeat(32)).unwrap();
    let farm = Farm::embedded_with(&dir.path().join("data"), 2, 8.0, &[("FARM_MASTER_KEY_FILE", dir.path().join("master.key").display().to_string())]);
    let (code, job) = farm.submit(&body("out"));
    assert_eq!((code, &job["forensic_watermark"]), (201, &serde_json::Value::Bool(true)), "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let done = farm.wait_final(&id, Duration::from_secs(180));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["tasks"].as_array().unwrap().len() >= 2, "chunked: {done}");
    let out = dir.path().join("out/144p");
    let stored_a = uris(&std::fs::read_to_string(out.join("index.m3u8")).unwrap());
    assert_eq!(uris(&std::fs::read_to_string(out.join("b/index.m3u8")).unwrap()), stored_a, "B at every position A is");

    let mut words = Vec::new();
    for viewer in ["director", "editor", "executive"] {
        let r = farm.http.post(format!("{}/v1/jobs/{id}/shares", farm.base)).json(&serde_json::json!({"viewer": viewer, "expires_in": 600})).send().unwrap();
        assert_eq!(r.status(), 201);
        let share: serde_json::Value = r.json().unwrap();
        let url = share["url"].as_str().unwrap().to_string();
        let get = |file: &str| reqwest::blocking::get(format!("{url}media/{file}")).unwrap();
        let master = get("index.m3u8").text().unwrap();
        assert!(master.contains("144p/index.m3u8") && !master.contains("I-FRAME"), "no I-frame playlists pointing into A: {master}");
        let media = get("144p/index.m3u8").text().unwrap();
        let listed = uris(&media);
        assert_eq!(listed.iter().map(|u| u.trim_start_matches("b/")).collect::<Vec<_>>(), stored_a, "one segment per position: {media}");
        assert_eq!(media.matches("#EXT-X-MAP:").count(), 1, "{media}");
        for uri in &listed {
            let (mine, other) = match uri.strip_prefix("b/") {
                Some(a) => (uri.clone(), a.to_string()),
                None => (uri.clone(), format!("b/{uri}")),
            };
            let served = get(&format!("144p/{mine}"));
            assert_eq!(served.status(), 200, "{mine}");
            assert_eq!(served.bytes().unwrap().as_ref(), std::fs::read(out.join(&mine)).unwrap().as_slice(), "{mine}: the stored bytes");
            assert_eq!(get(&format!("144p/{other}")).status(), 404, "{viewer} asked for the other variant: {other}");
        }
        for refused in ["144p/b/index.m3u8", "144p/b/init.mp4", "144p/iframes.m3u8"] {
            assert_eq!(get(refused).status(), 404, "{refused}");
        }
        if words.is_empty() {
            assert_eq!(decoded_frames(&[], share["playlist"].as_str().unwrap(), "v"), u64::from(SECONDS) * 25, "the mixed copy plays through");
        }
        words.push((share["id"].as_str().unwrap().to_string(), listed));
    }
    let all: Vec<&String> = words.iter().flat_map(|(_, w)| w).collect();
    assert!(all.iter().any(|u| u.starts_with("b/")) && all.iter().any(|u| !u.starts_with("b/")), "both variants handed out: {words:?}");
    assert!(words.windows(2).any(|w| w[0].1 != w[1].1), "the shares' words differ: {words:?}");

    let principal = farm.http.get(format!("{}/v1/jobs/{id}/media/144p/index.m3u8", farm.base)).send().unwrap().text().unwrap();
    assert_eq!(uris(&principal), stored_a, "the job's own player plays A");
    let audit: serde_json::Value = farm.http.get(format!("{}/v1/audit?job={id}", farm.base)).send().unwrap().json().unwrap();
    let mut named = Vec::new();
    for (share, _) in &words {
        let row = audit.as_array().unwrap().iter().find(|r| r["action"] == "share.created" && r["share_id"] == share.as_str()).unwrap_or_else(|| panic!("{audit}"));
        let detail = row["detail"].as_str().unwrap();
        let word = detail.split("forensic code word ").nth(1).unwrap_or_else(|| panic!("{detail}"));
        assert_eq!(word.len(), 16, "{detail}");
        named.push(word.to_string());
    }
    named.dedup();
    assert_eq!(named.len(), 3, "one code word per share: {named:?}");
}
