//! Forensic A/B watermarking (issue 19) through the embedded farm on local disk: a job asks
//! for `forensic_watermark`, its chunks are encoded as A and B, and every share plays its
//! own code word's copy: its media playlist picks A or B at each segment position, the
//! coordinator serves the segments it lists and refuses the other variant's, B's own
//! playlists and the I-frame playlists; FFmpeg plays the mixed copy through; the audit trail
//! names each share's code word. Without a master key the job is refused. A screen-capture
//! -like leak of one share, starting 5 s into a looped shot (its pictures match two moments
//! of the job), is traced to that share by `coordinator trace`;
//! an unrelated clip, through the admin endpoint, to nobody. A leak of a steady zoom,
//! which its pictures place a second late (its crop looks like more of the zoom), is traced
//! at its own time by its marks. A leak that skips (two parts of a copy joined) is read in
//! pieces, each part at its own time. Four minutes mixed segment by segment from two viewers'
//! copies are traced to both, as a collusion, and to neither other viewer. A watermarked
//! job with burn-ins, a per-title ladder and leading segments plays by word while it runs,
//! its burnt-in timecode exact in B's tails.

use std::time::Duration;

use farm_tests::farm::Farm;
use farm_tests::fixtures::SMALL_LADDER;
use farm_tests::leak::{mixed, screen_capture, screen_capture_parts, trace};
use farm_tests::picture::digits;
use farm_tests::probe::decoded_frames;

const SECONDS: u32 = 16;

/// A generated clip with sound (`picture`: a lavfi graph, at 25 fps), copied into `dir`.
fn clip(dir: &std::path::Path, name: &str, picture: &str, seconds: u32) -> std::path::PathBuf {
    let made = farm_tests::fixtures::make(
        name,
        &[
            "-f", "lavfi", "-i", picture,
            "-f", "lavfi", "-i", &format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
        ],
    )
    .unwrap();
    let path = dir.join(name);
    std::fs::copy(made, &path).unwrap();
    path
}

fn uris(playlist: &str) -> Vec<String> {
    playlist.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(str::to_string).collect()
}

#[test]
fn a_watermarked_jobs_shares_each_play_their_own_words_segments() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(dir.path(), "forensic-16s.mov", &format!("testsrc2=size=320x180:rate=25:duration={SECONDS}"), SECONDS);
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
    // Without a ladder of its own, a watermarked job gets 2 s segments (a mark position each).
    let mut defaults: serde_json::Value = serde_json::from_str(&body("defaults")).unwrap();
    defaults.as_object_mut().unwrap().remove("ladder");
    let (code, job) = farm.submit(&defaults.to_string());
    assert_eq!((code, &job["ladder"]["segment_seconds"]), (201, &serde_json::json!(2.0)), "{job}");
    assert_eq!(farm.http.delete(format!("{}/v1/jobs/{}", farm.base, job["id"].as_str().unwrap())).send().unwrap().status(), 200);
    let (code, job) = farm.submit(&body("out"));
    assert_eq!((code, &job["forensic_watermark"]), (201, &serde_json::Value::Bool(true)), "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let done = farm.wait_final(&id, Duration::from_secs(180));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["tasks"].as_array().unwrap().len() >= 2, "chunked: {done}");
    let out = dir.path().join("out/144p");
    let stored_a = uris(&std::fs::read_to_string(out.join("index.m3u8")).unwrap());
    let first_marked = farm_contract::manifest::FIRST_MARKED_SEGMENT as usize;
    assert_eq!(uris(&std::fs::read_to_string(out.join("b/index.m3u8")).unwrap()), stored_a[first_marked..], "B at every marked position A is");
    assert!(!out.join("b/seg_00000.m4s").exists(), "the first segment is encoded once");

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
        assert!(listed[..first_marked].iter().all(|u| !u.starts_with("b/")), "every share plays A before the first marked position: {media}");
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

/// A watermarked job of `source` at 1 s segments (the small ladder, no leading segments,
/// `fields` added to the request) on an embedded farm under the master key `key_byte`
/// repeated, run to its end: the farm, its data directory, the master key's file and the
/// job's id.
fn watermarked_job(dir: &std::path::Path, source: &std::path::Path, key_byte: &str, fields: serde_json::Value) -> (Farm, std::path::PathBuf, std::path::PathBuf, String) {
    let master = dir.join("master.key");
    std::fs::write(&master, key_byte.repeat(32)).unwrap();
    let data = dir.join("data");
    let farm = Farm::embedded_with(&data, 2, 30.0, &[("FARM_MASTER_KEY_FILE", master.display().to_string())]);
    let mut ladder: serde_json::Value = serde_json::from_str(SMALL_LADDER).unwrap();
    (ladder["segment_seconds"], ladder["gop_seconds"], ladder["lead_segments"]) = (1.into(), 1.into(), 0.into());
    let mut body = serde_json::json!({"source": source.display().to_string(), "output": dir.join("out").display().to_string(), "ladder": ladder, "forensic_watermark": true});
    body.as_object_mut().unwrap().extend(fields.as_object().cloned().unwrap_or_default());
    let (code, job) = farm.submit(&body.to_string());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(farm.wait_final(&id, Duration::from_secs(300))["state"], "succeeded");
    (farm, data, master, id)
}

/// A share of job `id` for each of `viewers`, for ten minutes: the API's answers.
fn share_each(farm: &Farm, id: &str, viewers: &[&str]) -> Vec<serde_json::Value> {
    viewers
        .iter()
        .map(|viewer| farm.http.post(format!("{}/v1/jobs/{id}/shares", farm.base)).json(&serde_json::json!({"viewer": viewer, "expires_in": 600})).send().unwrap().json().unwrap())
        .collect()
}

#[test]
fn a_leak_from_a_share_is_traced_to_its_viewer_and_an_unrelated_clip_to_nobody() {
    let dir = tempfile::tempdir().unwrap();
    // A minute of picture: 12 s whose layout changes all the time (a test pattern turning
    // ever faster), looped five times, as a looped shot repeats; at 1 s segments, 60
    // positions. A leak from 5 s looks as much like 17 s in: the marks tell them apart.
    let source = clip(dir.path(), "forensic-looped-60s.mov", "testsrc2=size=320x180:rate=25:duration=12,rotate=a=0.02*t*t:fillcolor=gray,loop=loop=4:size=300", 60);
    let (farm, data, master, id) = watermarked_job(dir.path(), &source, "4d", serde_json::json!({}));
    let shares = share_each(&farm, &id, &["director", "editor", "executive"]);

    let leaked = dir.path().join("leak.mp4");
    screen_capture(shares[1]["playlist"].as_str().unwrap(), 5, 40, 10, &leaked).unwrap();
    let (verdict, _) = trace(&data, &master, &leaked, &id).unwrap();
    println!("{verdict}");
    assert_eq!(verdict["verdict"], "match", "{verdict}");
    assert_eq!(verdict["shares"], serde_json::json!([shares[1]["id"]]), "the editor's share, and nobody else: {verdict}");
    assert_eq!(verdict["viewers"], serde_json::json!(["editor"]), "{verdict}");
    assert!(verdict["confidence"].as_f64().unwrap() > 0.999_999 - 1e-9, "{verdict}");
    let offset = verdict["offset_seconds"].as_f64().unwrap();
    assert!((offset - 5.0).abs() < 0.2, "the leak starts 5 s in: {verdict}");
    assert!(verdict["note"].as_str().unwrap_or_default().contains("read at 2 offsets"), "the pictures alone left two offsets: {verdict}");

    let unrelated = dir.path().join("unrelated.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "500k"])
        .arg(&unrelated)
        .status()
        .unwrap();
    assert!(status.success());
    // The admin endpoint answers as the command does, and the trace is audited.
    let r = farm.http.post(format!("{}/v1/jobs/{id}/trace", farm.base)).json(&serde_json::json!({"leak": unrelated.display().to_string()})).timeout(Duration::from_secs(600)).send().unwrap();
    assert_eq!(r.status(), 200);
    let verdict: serde_json::Value = r.json().unwrap();
    assert_eq!((verdict["verdict"].as_str(), verdict["shares"].as_array().map(Vec::len)), (Some("no_match"), Some(0)), "{verdict}");
    // A refused trace is audited too: a file that is not video.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a video").unwrap();
    let r = farm.http.post(format!("{}/v1/jobs/{id}/trace", farm.base)).json(&serde_json::json!({"leak": notes.display().to_string()})).send().unwrap();
    assert_eq!(r.status(), 422, "{}", r.text().unwrap());
    let audit: serde_json::Value = farm.http.get(format!("{}/v1/audit?job={id}", farm.base)).send().unwrap().json().unwrap();
    let rows = audit.as_array().unwrap();
    let row = |action: &str, principal: &str, leak: &std::path::Path, said: &str| {
        rows.iter().any(|r| r["action"] == action && r["principal"].as_str().unwrap().starts_with(principal) && r["detail"].as_str().unwrap().starts_with(&format!("leak {}: {said}", leak.display())))
    };
    assert!(row("job.traced", "console:", &leaked, "match"), "the command's trace: {audit}");
    assert!(row("job.traced", "local", &unrelated, "no_match"), "the endpoint's trace: {audit}");
    assert!(row("job.trace_refused", "local", &notes, "422 "), "the refused trace: {audit}");
}

#[test]
fn a_leak_of_a_steady_zoom_is_traced_at_its_own_time_and_crop() {
    let dir = tempfile::tempdir().unwrap();
    // 48 s of a steady zoom, 11 % closer every second: a leak cropped by 10 % looks like the
    // zoom a second later, uncropped, where the pictures place it and its marks (1 s
    // segments) are other positions' patterns.
    let picture = "mandelbrot=size=320x180:rate=25:end_pts=1200:end_scale=0.0194,trim=duration=48";
    let source = clip(dir.path(), "forensic-zoom-48s.mov", picture, 48);
    let (farm, data, master, id) = watermarked_job(dir.path(), &source, "5e", serde_json::json!({}));
    let shares = share_each(&farm, &id, &["director", "editor"]);

    let leaked = dir.path().join("leak.mp4");
    // 36 positions: naming one of two shares needs at least 21 read right (L ln 2 over
    // ln(2 / 1e-6)); 20, tried first, answered no_match.
    screen_capture(shares[0]["playlist"].as_str().unwrap(), 5, 36, 10, &leaked).unwrap();
    let (verdict, _) = trace(&data, &master, &leaked, &id).unwrap();
    println!("{verdict}");
    assert_eq!((&verdict["verdict"], &verdict["viewers"]), (&serde_json::json!("match"), &serde_json::json!(["director"])), "{verdict}");
    // To the search's step (0.25 s): within it, a quarter second and a crop larger by under
    // a per cent look alike in a zoom, and the marks still read (4.75 s in one run).
    let offset = verdict["offset_seconds"].as_f64().unwrap();
    assert!((offset - 5.0).abs() < 0.3, "the leak starts 5 s in: {verdict}");
    assert!(verdict["note"].as_str().unwrap_or_default().contains("steady zoom or pan"), "the pictures alone misplaced it: {verdict}");
}

/// An HEVC rendition's A and B are spliced from one encode as an H.264 one's are (only the
/// tails marked): a leak made from a share's HEVC rendition alone is traced to that share.
#[test]
fn a_leak_of_a_shares_hevc_rendition_is_traced_to_its_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let picture = "testsrc2=size=320x180:rate=25:duration=40,rotate=a=0.02*t*t:fillcolor=gray";
    let source = clip(dir.path(), "forensic-turning-40s.mov", picture, 40);
    let fields = serde_json::json!({"segment_format": "fmp4", "codecs": ["h264", "hevc"]});
    let (farm, data, master, id) = watermarked_job(dir.path(), &source, "6f", fields);
    let shares = share_each(&farm, &id, &["director", "editor"]);

    let master_url = shares[1]["playlist"].as_str().unwrap();
    let listed = farm.http.get(master_url).send().unwrap().text().unwrap();
    // The source fills the 240p rung at most (320x180): its HEVC twin is the top one listed.
    let hevc = uris(&listed).into_iter().find(|u| u.starts_with("240p-hevc/")).unwrap_or_else(|| panic!("no 240p-hevc in {listed}"));
    let hevc_url = reqwest::Url::parse(master_url).unwrap().join(&hevc).unwrap();
    let leaked = dir.path().join("leak.mp4");
    screen_capture(hevc_url.as_str(), 3, 30, 10, &leaked).unwrap();
    let (verdict, _) = trace(&data, &master, &leaked, &id).unwrap();
    println!("{verdict}");
    assert_eq!((&verdict["verdict"], &verdict["viewers"]), (&serde_json::json!("match"), &serde_json::json!(["editor"])), "{verdict}");
}

/// A viewer who skipped while recording leaks two parts of the copy joined: the whole leak
/// is placed at the first part's time or the second's, and the other part's pictures do not
/// match there; read in pieces, each placed on its own, both parts are read at their own
/// times and traced to the viewer.
#[test]
fn a_leak_that_skips_is_read_in_pieces_each_at_its_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let picture = "testsrc2=size=320x180:rate=25:duration=70,rotate=a=0.02*t*t:fillcolor=gray";
    let source = clip(dir.path(), "forensic-turning-70s.mov", picture, 70);
    let (farm, data, master, id) = watermarked_job(dir.path(), &source, "8b", serde_json::json!({}));
    let shares = share_each(&farm, &id, &["director", "editor"]);

    let leaked = dir.path().join("leak.mp4");
    // 25 s from 3 s, then 25 s from 40 s: placed at 3 s and at 15 s of the job.
    screen_capture_parts(shares[1]["playlist"].as_str().unwrap(), &[(3, 28), (40, 65)], 10, &leaked).unwrap();
    let (verdict, _) = trace(&data, &master, &leaked, &id).unwrap();
    println!("{verdict}");
    assert_eq!((&verdict["verdict"], &verdict["viewers"]), (&serde_json::json!("match"), &serde_json::json!(["editor"])), "{verdict}");
    let offset = verdict["offset_seconds"].as_f64().unwrap();
    assert!((offset - 3.0).abs() < 0.2, "the first part starts 3 s in: {verdict}");
    let note = verdict["note"].as_str().unwrap_or_default();
    assert!(note.starts_with("the leak skipped"), "{verdict}");
    assert!(note.contains(" at 15.0") || note.contains(" at 14.9"), "the second part read at 15 s: {verdict}");
    assert!(verdict["positions"].as_u64().unwrap() >= 45, "both parts' positions read: {verdict}");
}

/// Two viewers who mix their copies segment by segment (each position's segment from one
/// of the two at random, as `leak-bench --collusions` does) and leak four minutes of the
/// mix are named together, as a collusion, and neither of the two other viewers is. Four
/// minutes at 1 s segments: the accusation rules name both in every simulated mix of this
/// case (farm-hls `forensic::tests::a_four_minute_mix_among_four_shares_...`: 400 of 400
/// with 1 % and with 3 % of the positions misread), two minutes in 334 of 400 (1 %);
/// shorter mixes are measured by the leak benchmark.
#[test]
fn a_mix_of_two_viewers_copies_is_traced_to_both_as_a_collusion() {
    let dir = tempfile::tempdir().unwrap();
    let seconds = 250;
    let picture = format!("testsrc2=size=320x180:rate=25:duration={seconds},rotate=a=0.01*t*t:fillcolor=gray");
    let source = clip(dir.path(), "forensic-turning-250s.mov", &picture, seconds);
    let (farm, data, master, id) = watermarked_job(dir.path(), &source, "7a", serde_json::json!({}));
    let shares = share_each(&farm, &id, &["director", "editor", "executive", "colourist"]);

    let urls = [shares[1]["url"].as_str().unwrap(), shares[2]["url"].as_str().unwrap()];
    let playlist = dir.path().join("mixed.m3u8");
    mixed(&farm.http, urls, "240p", &mut 19, &playlist).unwrap();
    let (segments, _) = listing(&std::fs::read_to_string(&playlist).unwrap());
    let taken: Vec<usize> = urls.iter().map(|url| segments.iter().filter(|(uri, _)| uri.starts_with(url)).count()).collect();
    assert!(taken.iter().all(|&n| n >= 90) && taken.iter().sum::<usize>() == seconds as usize, "segments taken from each copy: {taken:?}");

    let leaked = dir.path().join("leak.mp4");
    screen_capture(playlist.to_str().unwrap(), 5, 240, 10, &leaked).unwrap();
    let (verdict, took) = trace(&data, &master, &leaked, &id).unwrap();
    println!("{verdict} ({took:.1} s)");
    assert_eq!(verdict["verdict"], "collusion", "{verdict}");
    let sorted = |values: &serde_json::Value| -> Vec<String> {
        let mut names: Vec<String> = values.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        names.sort();
        names
    };
    assert_eq!(sorted(&verdict["viewers"]), ["editor", "executive"], "the two who mixed, nobody else: {verdict}");
    assert_eq!(sorted(&verdict["shares"]), sorted(&serde_json::json!([shares[1]["id"], shares[2]["id"]])), "{verdict}");
    assert!(verdict["confidence"].as_f64().unwrap() > 0.999_999 - 1e-9, "{verdict}");
    assert!((verdict["offset_seconds"].as_f64().unwrap() - 5.0).abs() < 0.2, "the leak starts 5 s in: {verdict}");
}

/// The URIs and durations of a media playlist's segments, and whether it is ended.
fn listing(playlist: &str) -> (Vec<(String, f32)>, bool) {
    let media = farm_tests::hls::parse_media(playlist.as_bytes(), "the share's media playlist").unwrap();
    (media.segments.into_iter().map(|s| (s.uri, s.duration)).collect(), media.end_list)
}

/// With A/B on, the rest of a review job keeps working: a per-title ladder with leading
/// segments, burnt-in timecode and a visible watermark, chunked on one worker. A share made
/// as the job is submitted plays its word's mix while the job runs (a live playlist, no end,
/// whose segments the finished playlist lists in the same order and variants), and the
/// burnt-in timecode reads frame-exact in the marked tails of B segments its word gives it.
#[test]
fn a_watermarked_review_job_plays_by_word_while_it_runs_with_its_burn_ins_and_per_title_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let seconds = 30;
    // A turning test pattern over a plain band at the bottom, where the timecode is burnt in.
    let picture = format!("testsrc2=size=320x180:rate=25:duration={seconds},rotate=a=0.02*t*t:fillcolor=gray,drawbox=y=ih*0.74:w=iw:h=ih*0.26:color=gray:t=fill");
    let source = clip(dir.path(), "forensic-review-band-30s.mov", &picture, seconds);
    let master = dir.path().join("master.key");
    std::fs::write(&master, "7a".repeat(32)).unwrap();
    // One worker, 6 s chunks: five video tasks one after the other.
    let farm = Farm::embedded_with(&dir.path().join("data"), 1, 6.0, &[("FARM_MASTER_KEY_FILE", master.display().to_string())]);
    let mut ladder: serde_json::Value = serde_json::from_str(SMALL_LADDER).unwrap();
    (ladder["segment_seconds"], ladder["gop_seconds"], ladder["lead_segments"], ladder["lead_seconds"]) = (2.into(), 1.into(), 3.into(), 1.into());
    let body = serde_json::json!({
        "source": source.display().to_string(), "output": dir.path().join("out").display().to_string(),
        "ladder": ladder, "ladder_mode": "per_title", "forensic_watermark": true,
        "burn_in": ["timecode"], "start_timecode": "01:00:00:00", "watermark": "CONFIDENTIAL",
    });
    let (code, job) = farm.submit(&body.to_string());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let share = &share_each(&farm, &id, &["director"])[0];
    let media_url = format!("{}media/144p/index.m3u8", share["url"].as_str().unwrap());

    // The share's playlist while the job runs: live, past the first marked position.
    let started = std::time::Instant::now();
    let live = loop {
        assert!(started.elapsed() < Duration::from_secs(240), "never saw the share's playlist live past its first marked position");
        let r = farm.http.get(&media_url).send().unwrap();
        if r.status() == 200 {
            let (segments, ended) = listing(&r.text().unwrap());
            if !ended && segments.len() > 2 && farm.job(&id)["state"] == "running" {
                break segments;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("live with {} segments {:?} after submission", live.len(), started.elapsed());
    let done = farm.wait_final(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");
    eprintln!("succeeded {:?} after submission", started.elapsed());
    assert_eq!(done["ladder"]["ladder_mode"], "per_title", "{done}");
    assert!(done["ladder"]["decision"].is_object(), "the per-title decision: {done}");
    let (segments, ended) = listing(&farm.http.get(&media_url).send().unwrap().text().unwrap());
    assert!(ended && segments.len() > live.len(), "{segments:?}");
    assert_eq!(segments[..live.len()], live[..], "the live playlist's segments, variants and durations stay");
    let durations: Vec<f32> = segments.iter().map(|(_, d)| *d).collect();
    assert!(durations[..3].iter().all(|d| (d - 1.0).abs() < 0.05) && (durations[3] - 2.0).abs() < 0.05, "three 1 s leading segments, then 2 s: {durations:?}");

    // The last picture of each of the first two B positions, in its marked tail: burnt-in
    // timecode, frame-exact (the share's playlist decoded through its key endpoint).
    let rate = farm_contract::timeline::FrameRate { num: 25, den: 1 };
    let start = farm_contract::timecode::Timecode::parse("01:00:00:00").unwrap();
    let mut end = 0.0;
    let mut read = 0;
    for (uri, duration) in &segments {
        end += f64::from(*duration);
        if uri.starts_with("b/") && read < 2 {
            let n = (end * 25.0).round() as u64 - 1;
            let expected = start.plus_frames(n, rate).unwrap().to_string();
            let text = farm_tests::picture::ocr(std::path::Path::new(&media_url), n, (0.0, 0.75, 0.7, 0.21)).unwrap();
            assert_eq!(digits(&text), digits(&expected), "frame {n} of {uri}: read {text:?}, expected {expected}");
            read += 1;
        }
    }
    eprintln!("read {:?} after submission", started.elapsed());
    assert_eq!(read, 2, "the share's word gives B at two positions or more: {segments:?}");
    assert_eq!(decoded_frames(&[], share["playlist"].as_str().unwrap(), "v"), u64::from(seconds) * 25, "the mixed copy plays through");
}
