//! Share links (issue 16) through the farm: RabbitMQ, S3, PostgreSQL, two workers, keys
//! rotating every 4 s of media. A producer makes a share (an ingest principal may not);
//! the share URL plays with no bearer token: its media playlists hold short-lived signed
//! S3 URLs and key URIs of the share's own endpoint, and FFmpeg decodes every frame through
//! them. A revoked share's keys and playlists are refused at once, and a client playing in
//! real time stops within one key period and one segment of the revocation. Everything is
//! in the audit trail: who made and revoked the share, which playlists and which minutes
//! (key periods) the viewer fetched, what was refused.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use farm_tests::farm::{new_token, Extra, Farm, POSTGRES};
use farm_tests::fixtures::{clip_30s, SMALL_LADDER};
use farm_tests::probe::decoded_frames;
use farm_tests::s3::{s3, unique_prefix, BUCKET, ENDPOINT};

const KEY_PERIOD: f64 = 4.0;
const SEGMENT: f64 = 2.0;
const FPS: f64 = 25.0;

fn with_token(token: &str) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::blocking::Client::builder().default_headers(headers).timeout(Duration::from_secs(30)).build().unwrap()
}

fn make_share(http: &reqwest::blocking::Client, farm: &Farm, job: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = http.post(format!("{}/v1/jobs/{job}/shares", farm.base)).json(&body).send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or_default())
}

#[test]
fn a_share_plays_through_signed_urls_and_stops_when_revoked() {
    let prefix = unique_prefix("shares");
    s3().put_file(&format!("{prefix}/in.mov"), &clip_30s()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (producer, ingest) = (new_token("paul", "producer"), new_token("pipeline", "ingest"));
    std::fs::write(dir.path().join("principals.json"), format!("[{},{}]", producer.1, ingest.1)).unwrap();
    std::fs::write(dir.path().join("master.key"), "5a".repeat(32)).unwrap();
    let extra = Extra {
        coordinator: vec![
            ("FARM_PRINCIPALS_FILE", dir.path().join("principals.json").display().to_string()),
            ("FARM_MASTER_KEY_FILE", dir.path().join("master.key").display().to_string()),
            ("FARM_KEY_PERIOD_SECONDS", KEY_PERIOD.to_string()),
            ("FARM_SHARE_URL_SECONDS", "300".into()),
        ],
        ..Default::default()
    };
    let farm = Farm::start_with(POSTGRES, &prefix.replace('/', "-"), 2, 6.0, extra);
    let mut ladder: serde_json::Value = serde_json::from_str(SMALL_LADDER).unwrap();
    ladder["segment_seconds"] = SEGMENT.into();
    let body = serde_json::json!({
        "source": format!("s3://{BUCKET}/{prefix}/in.mov"),
        "output": format!("s3://{BUCKET}/{prefix}/out/"),
        "ladder": ladder,
    });
    let (code, job) = farm.submit(&body.to_string());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let done = farm.wait_final(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");

    let (paul, pipeline) = (with_token(&producer.0), with_token(&ingest.0));
    let good = serde_json::json!({"viewer": "director@studio.example", "expires_in": 3600, "note": "reel 2, cut 3"});
    assert_eq!(make_share(&pipeline, &farm, &id, good.clone()).0, 403, "ingest may not share");
    for (bad, why) in [
        (serde_json::json!({"viewer": "d", "expires_in": 10}), "expires_in"),
        (serde_json::json!({"viewer": " ", "expires_in": 600}), "viewer"),
        (serde_json::json!({"viewer": "d", "expires_in": 600, "extra": 1}), "unknown field"),
    ] {
        let (code, answer) = make_share(&paul, &farm, &id, bad);
        assert!(code == 400 || code == 422, "{code} {answer}");
        assert!(answer["error"].as_str().unwrap_or("").contains(why), "{answer}");
    }
    assert_eq!(make_share(&paul, &farm, "no-such-job", good.clone()).0, 404);
    let (code, share) = make_share(&paul, &farm, &id, good.clone());
    assert_eq!(code, 201, "{share}");
    let (share_id, url, playlist) = (share["id"].as_str().unwrap(), share["url"].as_str().unwrap(), share["playlist"].as_str().unwrap());
    assert!(url.starts_with(&farm.base) && playlist == format!("{url}media/index.m3u8"), "{share}");
    assert!(share["expires"].as_str().unwrap().ends_with('Z'), "{share}");

    // Playlists with no bearer token: signed S3 segment URLs, the share's own key URIs.
    let anonymous = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let media = anonymous.get(format!("{url}media/360p/index.m3u8")).send().unwrap();
    assert_eq!(media.status(), 200);
    assert_eq!(media.headers()["cache-control"], "no-store");
    let media = media.text().unwrap();
    let segments: Vec<&str> = media.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    assert_eq!(segments.len(), 15, "{media}");
    for s in &segments {
        assert!(s.starts_with(&format!("{ENDPOINT}/{BUCKET}/{prefix}/out/360p/")) && s.contains("X-Amz-Signature=") && s.contains("X-Amz-Expires=300"), "{s}");
    }
    let keys: Vec<&str> = media.lines().filter(|l| l.starts_with("#EXT-X-KEY:")).collect();
    assert!(keys.iter().all(|k| k.contains("URI=\"../../keys/") && k.contains(",IV=0x")), "{media}");
    assert!(!media.contains("/v1/jobs/"), "no principal's key URI leaks into a share's playlist");
    // A segment asked of the coordinator: a redirect to a signed URL; review.json (and the
    // thumbnails): served, so that a page reads them without the bucket's CORS rules.
    let segment = anonymous.get(format!("{url}media/360p/seg_00000.m4s")).send().unwrap();
    assert_eq!(segment.status(), 302);
    assert!(segment.headers()["location"].to_str().unwrap().contains("X-Amz-Signature="));
    let review = anonymous.get(format!("{url}media/review.json")).send().unwrap();
    assert_eq!(review.status(), 200);
    assert_eq!(review.json::<serde_json::Value>().unwrap()["frame_count"], 750);
    for refused in ["media/parts/x.json", "media/../secret.ts", "media/in.mov"] {
        assert_eq!(anonymous.get(format!("{url}{refused}")).send().unwrap().status(), 404, "{refused}");
    }
    // FFmpeg plays the share as a viewer would: every frame of the top rung decodes.
    assert_eq!(decoded_frames(&[], playlist, "v"), 30 * 25, "the whole review copy plays through the share");

    // The list shows the share, never its secret.
    let listed: serde_json::Value = paul.get(format!("{}/v1/jobs/{id}/shares", farm.base)).send().unwrap().json().unwrap();
    assert_eq!(listed[0]["id"], share_id, "{listed}");
    assert_eq!((listed[0]["status"].as_str(), listed[0]["viewer"].as_str(), listed[0]["created_by"].as_str()), (Some("active"), Some("director@studio.example"), Some("paul")));
    let secret = url.trim_end_matches('/').rsplit('/').next().unwrap();
    assert!(!listed.to_string().contains(secret), "{listed}");

    // Revocation: keys and playlists refused at once.
    let revoked: serde_json::Value = paul.delete(format!("{}/v1/shares/{share_id}", farm.base)).send().unwrap().json().unwrap();
    assert_eq!((revoked["status"].as_str(), revoked["revoked_by"].as_str()), (Some("revoked"), Some("paul")), "{revoked}");
    assert_eq!(anonymous.get(format!("{url}keys/0")).send().unwrap().status(), 403);
    assert_eq!(anonymous.get(playlist).send().unwrap().status(), 403);
    assert_eq!(pipeline.delete(format!("{}/v1/shares/{share_id}", farm.base)).send().unwrap().status(), 403, "ingest may not revoke");

    // Expiry: a share past its time is refused at the key endpoint (the clock moved on in
    // the database rather than by waiting the 60 s a share lives at least).
    let (code, short) = make_share(&paul, &farm, &id, serde_json::json!({"viewer": "late", "expires_in": 60}));
    assert_eq!(code, 201, "{short}");
    let short_url = short["url"].as_str().unwrap();
    assert_eq!(anonymous.get(format!("{short_url}keys/0")).send().unwrap().status(), 200);
    farm_tests::farm::psql(POSTGRES, &format!("UPDATE shares SET expires_ms = expires_ms - 61000 WHERE id = '{}'", short["id"].as_str().unwrap()));
    let refused = anonymous.get(format!("{short_url}keys/0")).send().unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().unwrap().contains("expired"));

    let stop = revoke_while_playing(&farm, &paul, &id);
    let audit: serde_json::Value = farm.http.get(format!("{}/v1/audit?share={share_id}", farm.base)).send().unwrap().json().unwrap();
    let rows: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["action"].as_str().unwrap().into(), r["principal"].as_str().unwrap().into(), r["detail"].as_str().unwrap().into()))
        .collect();
    let has = |action: &str, principal: &str, detail: &str| rows.iter().any(|(a, p, d)| a == action && p == principal && d.contains(detail));
    assert!(has("share.created", "paul", "viewer director@studio.example until"), "{rows:?}");
    assert!(has("share.playlist_fetched", "viewer:director@studio.example", "360p/index.m3u8"), "{rows:?}");
    for period in 0..8 {
        assert!(has("share.key_fetched", "viewer:director@studio.example", &format!("period {period}: media ")), "period {period}: {rows:?}");
    }
    assert!(has("share.key_fetched", "viewer:director@studio.example", "period 1: media 0:00:04 to 0:00:08"), "{rows:?}");
    assert!(has("share.revoked", "paul", "director@studio.example"), "{rows:?}");
    assert!(has("request.denied", "viewer:director@studio.example", "was revoked"), "{rows:?}");
    println!("{stop}");
}

/// A second share played in real time by FFmpeg (`-re`), revoked a few seconds in; returns
/// what was measured. Playback must stop within one key period and one segment of the
/// play position at revocation (plus 2 s: FFmpeg reads the first segment ahead to find
/// the streams), long before the 30 s end.
fn revoke_while_playing(farm: &Farm, producer: &reqwest::blocking::Client, job: &str) -> String {
    let (code, share) = make_share(producer, farm, job, serde_json::json!({"viewer": "editor", "expires_in": 600}));
    assert_eq!(code, 201, "{share}");
    let out = tempfile::tempdir().unwrap();
    let crc = out.path().join("played.crc");
    let mut player = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-re", "-i", share["playlist"].as_str().unwrap(), "-map", "0:v:0", "-f", "framecrc", "-progress", "pipe:1"])
        .arg(&crc)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let progress = std::io::BufReader::new(player.stdout.take().unwrap());
    let mut at_revocation = None;
    for line in progress.lines().map_while(Result::ok) {
        let Some(us) = line.strip_prefix("out_time_us=").and_then(|v| v.parse::<f64>().ok()) else { continue };
        if us >= 5e6 && at_revocation.is_none() {
            let status = producer.delete(format!("{}/v1/shares/{}", farm.base, share["id"].as_str().unwrap())).send().unwrap().status();
            assert_eq!(status, 200);
            at_revocation = Some(us / 1e6);
        }
    }
    let started = Instant::now();
    while player.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "the player did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let position = at_revocation.expect("the player reached 5 s before the end");
    let frames = std::fs::read_to_string(&crc).unwrap().lines().filter(|l| !l.starts_with('#')).count();
    let played = frames as f64 / FPS;
    let bound = position + KEY_PERIOD + SEGMENT + 2.0;
    let report = format!("revoked at play position {position:.2} s; the player decoded {played:.2} s of 30 s (bound {bound:.2} s)");
    assert!(played <= bound, "{report}");
    assert!(played >= position, "{report}");
    report
}

/// The embedded farm on local disk (a 320x180 source: the 144p rung only): no signed URLs exist, so the share's playlists keep
/// relative segment URIs and the coordinator serves the (encrypted) segments itself, after
/// checking the share; FFmpeg decodes every frame through it.
#[test]
fn on_local_storage_the_coordinator_serves_a_share_segments() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("in.mov");
    std::fs::copy(
        farm_tests::fixtures::make(
            "shares-local-4s.mov",
            &[
                "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
            ],
        )
        .unwrap(),
        &source,
    )
    .unwrap();
    std::fs::write(dir.path().join("master.key"), "7e".repeat(32)).unwrap();
    let farm = Farm::embedded_with(&dir.path().join("data"), 1, 60.0, &[("FARM_MASTER_KEY_FILE", dir.path().join("master.key").display().to_string())]);
    let mut ladder: serde_json::Value = serde_json::from_str(SMALL_LADDER).unwrap();
    ladder["segment_seconds"] = SEGMENT.into();
    let body = serde_json::json!({"source": source.display().to_string(), "output": dir.path().join("out").display().to_string(), "ladder": ladder});
    let (code, job) = farm.submit(&body.to_string());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(farm.wait_final(&id, Duration::from_secs(120))["state"], "succeeded");
    let (code, share) = make_share(&farm.http, &farm, &id, serde_json::json!({"viewer": "colourist", "expires_in": 600}));
    assert_eq!(code, 201, "{share}");
    let url = share["url"].as_str().unwrap();

    let media = reqwest::blocking::get(format!("{url}media/144p/index.m3u8")).unwrap().text().unwrap();
    let segments: Vec<&str> = media.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    assert_eq!(segments.len(), 2, "{media}");
    assert!(segments.iter().all(|s| !s.contains('/') && s.ends_with(".m4s")), "relative URIs: {media}");
    assert!(media.contains("#EXT-X-MAP:URI=\"init.mp4\""), "the init segment, relative too: {media}");
    let segment = reqwest::blocking::get(format!("{url}media/144p/{}", segments[0])).unwrap();
    assert_eq!((segment.status().as_u16(), segment.headers()["content-type"].to_str().unwrap()), (200, "video/iso.segment"));
    let init = reqwest::blocking::get(format!("{url}media/144p/init.mp4")).unwrap();
    assert_eq!((init.status().as_u16(), init.headers()["content-type"].to_str().unwrap()), (200, "video/mp4"));
    let stored = std::fs::read(dir.path().join("out/144p").join(segments[0])).unwrap();
    assert_eq!(segment.bytes().unwrap().as_ref(), stored.as_slice(), "the stored (encrypted) bytes");
    assert_eq!(decoded_frames(&[], share["playlist"].as_str().unwrap(), "v"), 100);

    let revoked = farm.http.delete(format!("{}/v1/shares/{}", farm.base, share["id"].as_str().unwrap())).send().unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(reqwest::blocking::get(format!("{url}media/144p/{}", segments[0])).unwrap().status(), 403, "segments too, once revoked");
}
