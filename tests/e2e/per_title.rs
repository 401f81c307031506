//! Per-title ladders on the farm (issue 17): a `per_title` job on RabbitMQ and SeaweedFS in
//! three chunks on two workers. The coordinator's probe measures the source once; the
//! decision is stored with the job, and every chunk of every rendition is encoded with it:
//! read back from the bitstream itself (x264 writes its settings into each encoder's first
//! frame), all segments of a rendition name one rate control, the decision's capped CRF.
//! The ladder passes the same independent checks as a fixed one, and the per-title rates
//! of this simple source are well below the fixed ladder's.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use farm_tests::farm::{chunked_s3_job, Farm};
use farm_tests::fixtures::{make, SMALL_LADDER};
use farm_tests::hls::{check_ladder, read_master, read_media};

/// The x264 settings each encoder wrote into a segment (its SEI), if it opens an encoder.
fn x264_settings(segment: &Path) -> Option<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(segment)
        .args(["-map", "0:v", "-c", "copy", "-f", "h264", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", segment.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("x264 - core")?;
    let options = &text[start..];
    Some(options[..options.find('\0').unwrap_or(options.len())].to_string())
}

fn option<'a>(settings: &'a str, name: &str) -> &'a str {
    settings.split(' ').find_map(|o| o.strip_prefix(&format!("{name}="))).unwrap_or_else(|| panic!("no {name} in {settings}"))
}

#[test]
fn every_chunk_of_a_per_title_job_encodes_with_the_one_decision() {
    let (done, out) = chunked_s3_job("per-title", serde_json::json!({"ladder_mode": "per_title", "segment_format": "ts", "codecs": ["h264"]}));

    // The decision, as stored with the job.
    let ladder = &done["ladder"];
    assert_eq!(ladder["ladder_mode"], "per_title");
    let decision = &ladder["decision"];
    let complexity = &decision["complexity"];
    assert!(complexity["kbps"].as_f64().unwrap() > 0.0, "{decision}");
    // How long the probe takes is the quality benchmark's to measure (here it shares the
    // cores with the other tests); it is recorded with the decision.
    println!("probe: {} kb/s in {} s", complexity["kbps"], complexity["seconds"]);
    let rungs = decision["rungs"].as_array().unwrap();
    assert_eq!(rungs.iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(), ["360p", "240p", "144p"]);

    let check = check_ladder(out.path(), 375, 25.0, true).unwrap();
    assert_eq!(check.renditions.len(), 3);

    let master = read_master(out.path()).unwrap();
    for rung in rungs {
        let name = rung["name"].as_str().unwrap();
        let media = read_media(&out.path().join(name).join("index.m3u8")).unwrap();
        let settings: Vec<Option<String>> = media.segments.iter().map(|s| x264_settings(&out.path().join(name).join(&s.uri))).collect();
        // 2 + 2 + 2 + 6 + 3 s: the chunks (6 s) open on segments 0, 3 and 4, each with an encoder.
        assert_eq!(settings.len(), 5);
        assert!([0, 3, 4].iter().all(|&i| settings[i].is_some()), "{name}: a chunk without encoder settings: {settings:?}");
        let settings: Vec<String> = settings.into_iter().flatten().collect();
        let distinct: BTreeSet<(&str, &str, &str, &str)> = settings
            .iter()
            .map(|s| (option(s, "rc"), option(s, "crf"), option(s, "vbv_maxrate"), option(s, "vbv_bufsize")))
            .collect();
        let expected = ("crf", format!("{:.1}", rung["crf"].as_f64().unwrap()), rung["maxrate_kbps"].to_string(), rung["bufsize_kbits"].to_string());
        assert_eq!(distinct.len(), 1, "{name}: every chunk encodes alike: {distinct:?}");
        let (rc, crf, maxrate, bufsize) = distinct.into_iter().next().unwrap();
        assert_eq!((rc, crf, maxrate, bufsize), (expected.0, expected.1.as_str(), expected.2.as_str(), expected.3.as_str()), "{name}");

        // Simple pictures: the per-title rate is under the ladder's, as written (TS included;
        // the fixed ladder's encodes reach their rate and add the TS overhead).
        let fixed: u64 = serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap()["video"]
            .as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["bitrate_kbps"].as_u64().unwrap();
        let bytes: u64 = media.segments.iter().map(|s| std::fs::metadata(out.path().join(name).join(&s.uri)).unwrap().len()).sum();
        let written = bytes as f64 * 8.0 / 15.0 / 1000.0;
        assert!(written < fixed as f64, "{name}: {written:.0} kb/s written, the fixed ladder's rate {fixed} kb/s");
        let variant = master.variants.iter().find(|v| !v.is_i_frame && v.uri == format!("{name}/index.m3u8")).unwrap();
        println!("{name}: {rc} crf={crf} vbv_maxrate={maxrate}; {written:.0} kb/s written (fixed {fixed}), AVERAGE-BANDWIDTH {:?} with audio", variant.average_bandwidth);
    }
}

/// A 4 s 640x360 source of the given picture (ProRes, as from a camera).
fn clip(name: &str, picture: &str) -> std::path::PathBuf {
    make(name, &["-f", "lavfi", "-i", picture, "-t", "4", "-c:v", "prores_ks", "-profile:v", "2", "-pix_fmt", "yuv422p10le"]).unwrap()
}

/// The per-title decision the embedded farm makes for `source` with the small ladder.
fn decide(farm: &Farm, dir: &Path, source: &Path, out: &str) -> serde_json::Value {
    decide_with(farm, dir, source, out, serde_json::from_str(SMALL_LADDER).unwrap())
}

fn decide_with(farm: &Farm, dir: &Path, source: &Path, out: &str, ladder: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({"source": source.display().to_string(), "output": dir.join(out).display().to_string(), "ladder": ladder, "ladder_mode": "per_title"});
    let (status, job) = farm.submit(&body.to_string());
    assert_eq!(status, 201, "{job}");
    let done = farm.wait_final(job["id"].as_str().unwrap(), Duration::from_secs(120));
    assert_eq!(done["state"], "succeeded", "{done}");
    done["ladder"]["decision"].clone()
}

#[test]
fn the_probe_tells_a_still_interview_from_grainy_night_footage() {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::embedded(&dir.path().join("data"), 1, 60.0);
    let ladder = serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap();
    let decide = |source: std::path::PathBuf, out: &str| decide(&farm, dir.path(), &source, out);
    let still = decide(clip("per-title-still.mov", "color=c=0x607080:size=640x360:rate=25,drawbox=x='280+20*sin(t)':y=120:w=80:h=120:color=0xC8A080:t=fill"), "still");
    let grain = decide(clip("per-title-grain.mov", "color=c=0x303030:size=640x360:rate=25,noise=alls=40:allf=t+u"), "grain");
    let kbps = |d: &serde_json::Value| d["complexity"]["kbps"].as_f64().unwrap();
    assert!(kbps(&grain) > 10.0 * kbps(&still), "grain {} kb/s, still {} kb/s", kbps(&grain), kbps(&still));
    let fixed = |name: &str| ladder["video"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["bitrate_kbps"].as_u64().unwrap();
    // The still picture: every rung at the quality target, for much less than the fixed rate.
    for r in still["rungs"].as_array().unwrap() {
        assert_eq!(r["crf"], 23.0, "{still}");
        assert!(r["bitrate_kbps"].as_u64().unwrap() * 2 < fixed(r["name"].as_str().unwrap()), "{still}");
    }
    // The grain: the fixed rates, at a higher CRF; starved rungs dropped, the smallest kept.
    for r in grain["rungs"].as_array().unwrap() {
        assert!(r["crf"].as_f64().unwrap() > 23.0, "{grain}");
        assert_eq!(r["bitrate_kbps"].as_u64().unwrap(), fixed(r["name"].as_str().unwrap()), "{grain}");
    }
    assert_eq!(grain["rungs"].as_array().unwrap().last().unwrap()["name"], "144p", "{grain}");
    println!("complexity: still {} kb/s, grain {} kb/s; grain dropped {}", kbps(&still), kbps(&grain), grain["dropped"]);
}

/// The probe samples a long-GOP camera file from its keyframes (no run-up to decode before
/// each sample) and an intra-only one where its samples fall: 6 s at 25 fps, samples at
/// 1/6, 3/6 and 5/6 of the frames (24, 72, 120), the H.264 file's keyframes every 2 s.
#[test]
fn the_probe_samples_a_long_gop_source_from_its_keyframes() {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::embedded(&dir.path().join("data"), 1, 60.0);
    let picture = "testsrc2=size=640x360:rate=25";
    let long_gop = make("per-title-long-gop.mp4", &["-f", "lavfi", "-i", picture, "-t", "6", "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p"]).unwrap();
    let intra = make("per-title-intra.mov", &["-f", "lavfi", "-i", picture, "-t", "6", "-c:v", "prores_ks", "-profile:v", "2", "-pix_fmt", "yuv422p10le"]).unwrap();
    let long_gop = decide(&farm, dir.path(), &long_gop, "long-gop")["complexity"].clone();
    let intra = decide(&farm, dir.path(), &intra, "intra")["complexity"].clone();
    assert_eq!(long_gop["samples"], serde_json::json!([0, 50, 100]), "{long_gop}");
    assert_eq!(intra["samples"], serde_json::json!([24, 72, 120]), "{intra}");
    // Five frames a sample, whatever the GOP.
    assert_eq!(long_gop["frames"], 15, "{long_gop}");
    assert_eq!(intra["frames"], 15, "{intra}");
    // The same picture costs about as much from either original.
    let kbps = |c: &serde_json::Value| c["kbps"].as_f64().unwrap();
    assert!((kbps(&long_gop) / kbps(&intra) - 1.0).abs() < 0.5, "long-GOP {long_gop}, intra {intra}");
    println!("probe: long-GOP H.264 {} s, ProRes {} s", long_gop["seconds"], intra["seconds"]);
}

/// Above 640x360 a rung's rate grows as the source's own detail makes it, so the probe also
/// measures the source at its own size (unscaled patches): grain, which scaling down
/// averages away, costs far more at 1280x720 than at 640x360, a smooth gradient not much
/// more. The largest rung, the source's size, expects the native rate.
#[test]
fn the_probe_measures_the_rate_at_the_sources_own_size() {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::embedded(&dir.path().join("data"), 1, 60.0);
    let ladder = serde_json::json!({"version": 1, "video": [
        {"name": "720p", "width": 1280, "height": 720, "bitrate_kbps": 3000},
        {"name": "360p", "width": 640, "height": 360, "bitrate_kbps": 900}]});
    let clip = |name: &str, picture: &str| make(name, &["-f", "lavfi", "-i", picture, "-t", "2", "-c:v", "prores_ks", "-profile:v", "2", "-pix_fmt", "yuv422p10le"]).unwrap();
    let smooth = clip("per-title-smooth-720p.mov", "gradients=size=1280x720:rate=25:speed=0.05:seed=1:n=2:c0=0x2050C0:c1=0xE0A040");
    let grain = clip("per-title-grain-720p.mov", "color=c=0x303030:size=1280x720:rate=25,noise=alls=40:allf=t+u");
    let smooth = decide_with(&farm, dir.path(), &smooth, "smooth", ladder.clone());
    let grain = decide_with(&farm, dir.path(), &grain, "grain", ladder);
    // The rate grows with the pixel count (4x from 640x360 to 1280x720) to this power.
    let exponent = |d: &serde_json::Value| {
        let c = &d["complexity"];
        assert_eq!((c["native"]["width"].as_u64(), c["native"]["height"].as_u64()), (Some(1280), Some(720)), "{d}");
        (c["native"]["kbps"].as_f64().unwrap() / c["kbps"].as_f64().unwrap()).ln() / 4f64.ln()
    };
    let (smooth_exponent, grain_exponent) = (exponent(&smooth), exponent(&grain));
    println!("rate against pixel count above 640x360: smooth gradient ^{smooth_exponent:.2}, grain ^{grain_exponent:.2}");
    assert!(grain_exponent > 1.5 && smooth_exponent < 1.2, "grain ^{grain_exponent}, smooth ^{smooth_exponent}");
    let top = |d: &serde_json::Value| d["rungs"][0].clone();
    // The gradient's 720p rung: CRF 23, expecting the native rate (never under a tenth of
    // the fixed rate), capped at twice that.
    let native = smooth["complexity"]["native"]["kbps"].as_f64().unwrap().round().max(300.0) as u64;
    assert_eq!((top(&smooth)["name"].as_str(), top(&smooth)["crf"].as_f64(), top(&smooth)["bitrate_kbps"].as_u64()), (Some("720p"), Some(23.0), Some(native)), "{smooth}");
    assert_eq!(top(&smooth)["maxrate_kbps"].as_u64(), Some(2 * native), "{smooth}");
    // The grain's is starved: the fixed rate, as its VBV peak too, at a higher CRF.
    assert_eq!((top(&grain)["bitrate_kbps"].as_u64(), top(&grain)["maxrate_kbps"].as_u64()), (Some(3000), Some(3000)), "{grain}");
    assert!(top(&grain)["crf"].as_f64().unwrap() > 23.0, "{grain}");
}
