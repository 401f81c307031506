//! The review page in a real browser (issue 16): Debian's Chromium, driven by
//! tests/browser/review_page.mjs with playwright-core, on an embedded farm with encryption
//! on (keys every 4 s of media). The list shows the job while it runs and follows it to
//! its end; its player, opened from the list while the job runs, plays
//! the encrypted ladder from 0 and after a seek; the timecode the page shows for the frame
//! on screen is the one review.json gives for that frame and the one burnt into the
//! picture (read back from the screenshot by OCR); one frame on and back; a thumbnail over
//! the timeline; the selectors; a share made with the form plays with nothing but its link,
//! with hls.js and with the browser's own HLS player (Media Source Extensions hidden, as on
//! an iPhone), and stops once revoked. Screenshots stay in target/test-artefacts/review-page/.
//! The same in fMP4 segments (issue 17), where Chromium's own HLS player is left out: it
//! refuses the fMP4 ladder ("The element has no supported sources"), while it plays TS.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use farm_contract::timecode::Timecode;
use farm_contract::timeline::FrameRate;
use farm_tests::farm::Farm;
use farm_tests::fixtures::{clip_30s, target_dir, SMALL_LADDER};
use farm_tests::picture::ocr_scaled;

const KEY_PERIOD: f64 = 4.0;

#[test]
fn the_review_page_lists_plays_steps_scrubs_shares_and_stops_when_revoked() {
    review_page("ts", true);
}

#[test]
fn the_review_page_plays_an_encrypted_fmp4_ladder_with_hls_js() {
    review_page("fmp4", false);
}

/// The review page's run on a job in `format`; `native`: the share also plays in the
/// browser's own HLS player.
fn review_page(format: &str, native: bool) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("master.key"), "3c".repeat(32)).unwrap();
    let farm = Farm::embedded_with(
        &dir.path().join("data"),
        1,
        6.0,
        &[("FARM_MASTER_KEY_FILE", dir.path().join("master.key").display().to_string()), ("FARM_KEY_PERIOD_SECONDS", KEY_PERIOD.to_string())],
    );
    let mut ladder: serde_json::Value = serde_json::from_str(SMALL_LADDER).unwrap();
    ladder["segment_seconds"] = 2.into();
    let out = dir.path().join("out");
    let body = serde_json::json!({
        "source": clip_30s().display().to_string(),
        "output": out.display().to_string(),
        "ladder": ladder,
        "burn_in": ["timecode"],
        "start_timecode": "01:00:00:00",
        "segment_format": format,
    });
    let (code, job) = farm.submit(&body.to_string());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();

    let shots = target_dir().join(format!("test-artefacts/review-page-{format}"));
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/review_page.mjs");
    let run = Command::new("node").arg(&script).arg(&farm.base).arg(&id).arg(&shots).arg(if native { "native" } else { "hls.js-only" }).output().expect("node (scripts/setup.sh installs the browser tools)");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}\n{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    println!("{report}\nscreenshots: {}", shots.display());
    assert!(report.get("failure").is_none(), "{report}\n{}", farm.coordinator.log());
    // hls.js may note non-fatal hiccups while the playlists grow; nothing fatal, no key refused.
    let errors: Vec<&str> = report["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(errors.iter().all(|e| !e.ends_with("(fatal)") && !e.starts_with("keyLoadError") && !e.starts_with("page")), "{report}");

    let listed = report["listed_state"].as_str().unwrap();
    assert!(listed == "queued" || listed == "running", "the list showed the job {listed}: {report}");
    let opened = report["state_when_opened"].as_str().unwrap();
    assert!(opened == "queued" || opened == "running", "the player was opened on a {opened} job: {report}");
    assert_eq!(report["listed_final"], "100 %", "the list follows the job to its end: {report}");
    assert!(report["played_from_start"].as_f64().unwrap() > 1.5 && report["played_after_seek"].as_f64().unwrap() > 16.5, "{report}");

    // The page's timecode is review.json's for that frame, and the one burnt into it.
    assert_eq!(farm.wait_final(&id, Duration::from_secs(120))["state"], "succeeded");
    let review: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("review.json")).unwrap()).unwrap();
    let start = Timecode::parse(review["start_timecode"].as_str().unwrap()).unwrap();
    let rate: FrameRate = serde_json::from_value(review["frame_rate"].clone()).unwrap();
    let frames = report["frames"].as_array().unwrap();
    let (first, back, later) = (&frames[0], &frames[1], &frames[2]);
    assert_eq!(back["frame"].as_u64().unwrap() + 1, first["frame"].as_u64().unwrap(), "one frame back: {report}");
    assert!(later["frame"].as_u64().unwrap() >= 16 * 25, "{report}");
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    for f in [first, back, later] {
        let expected = start.plus_frames(f["frame"].as_u64().unwrap(), rate).unwrap().to_string();
        assert_eq!(f["timecode"].as_str().unwrap(), expected, "{f}");
    }
    // The share played by the browser's own HLS player (no Media Source Extensions, as on
    // an iPhone): the same timecode, on screen and on the page.
    let mut on_screen = vec![first, later];
    if native {
        let native = &report["native"];
        assert_eq!(native["hls_js"], "undefined", "the page used hls.js: {report}");
        let native_frame = &native["frame"];
        let expected = start.plus_frames(native_frame["frame"].as_u64().unwrap(), rate).unwrap().to_string();
        assert_eq!(native_frame["timecode"].as_str().unwrap(), expected, "{native}");
        assert!(native_frame["time"].as_f64().unwrap() > 3.0, "{native}");
        on_screen.push(native_frame);
    }
    for f in on_screen {
        // The burn-in's box (bottom left), at screen size.
        let burnt = ocr_scaled(Path::new(f["screenshot"].as_str().unwrap()), 0, (0.04, 0.78, 0.62, 0.14), 1.0).unwrap();
        assert_eq!(digits(&burnt), digits(f["timecode"].as_str().unwrap()), "the burn-in on screen reads {burnt:?}: {f}");
    }

    let thumb = &report["thumbnail"];
    assert!((thumb["at"].as_f64().unwrap() - 15.0).abs() < 1.0 && thumb["width"].as_u64().unwrap() > 50, "{report}");
    assert_eq!(report["quality"].as_array().unwrap().len(), 4, "Auto and three rungs: {report}");
    assert!(!report["audio"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["share_url"].as_str().unwrap().starts_with(&format!("{}/s/", farm.base)), "{report}");

    // The share stops within a key period and a segment past what its player had buffered
    // (hls.js keeps up to 8 s ahead on a share), well before the 30 s end.
    let share = &report["share"];
    assert_eq!(report["revoke_status"], 200);
    let (revoked, stopped) = (share["revoked_at"].as_f64().unwrap(), share["stopped_at"].as_f64().unwrap());
    assert!(stopped >= revoked && stopped <= revoked + 8.0 + KEY_PERIOD + 2.0 && stopped < 29.0, "revoked at {revoked:.2} s, stopped at {stopped:.2} s: {report}");
    println!("share revoked at {revoked:.2} s of media; its page played on to {stopped:.2} s");
    let refused = |e: &serde_json::Value| ["keyLoadError", "levelLoadError"].iter().any(|k| e.as_str().unwrap().starts_with(k));
    assert!(share["errors"].as_array().unwrap().iter().any(refused), "{report}");
}
