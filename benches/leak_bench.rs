//! Leak benchmark (issue 19): are leaks of watermarked shares traced to the right viewer,
//! and never to a wrong one? A watermarked job (the embedded farm, release build; a
//! generated `--seconds` s 640x360 clip whose layout changes all the time, `--segment` s
//! segments, 1 by default, 1 s GOPs)
//! is shared with `--viewers` viewers. For each viewer (the first `--lone` of them when
//! given: the rest are only shares the trace must not name) a leak is made as a screen capture
//! would: the share's master playlist played by FFmpeg from a random point for `--leak`
//! seconds, cropped by `--crop` per cent (10 by default, half on each side), scaled to
//! 640x360, brought to 30 fps, gamma, contrast and brightness changed, re-encoded with x264
//! at 500 kb/s; `coordinator trace` answers.
//! Then `--collusions` two-viewer mixes (a playlist taking each segment from one of two
//! shares at random) go through the same processing. Printed: each trial's verdict, the
//! right, wrong and missed counts, the time per trace, how the mixes were named, and the
//! false-accusation bound.
//!
//! `--hevc` adds the HEVC ladder (`"codecs": ["h264", "hevc"]`, fMP4 segments) and makes
//! every leak from the share's `360p-hevc` rendition alone.
//!
//! `--clip` picks the generated picture: `rotating` (test card turning ever faster, the
//! default), `detail` (a steady zoom into the Mandelbrot set), `dark-grain` (dark, slowly moving
//! gradients under heavy moving grain; the mark benchmark's hardest clip).
//!
//! Reproduce with (from the repository root; ffmpeg on the PATH):
//!     cargo run --release -p farm-benches --bin leak-bench -- [--viewers 50] [--lone 50] [--seconds 150] [--leak 60] [--collusions 2] [--seed 1] [--segment 1] [--clip rotating] [--crop 10] [--hevc]

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use farm_tests::farm::Farm;
use farm_tests::fixtures::SMALL_LADDER;
use farm_tests::leak::{mixed, next, screen_capture, trace};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<()> {
    let (viewers, seconds, leak_seconds, collusions) = (arg("--viewers", 50), arg("--seconds", 150), arg("--leak", 60), arg("--collusions", 2));
    let (seed, crop, lone) = (arg("--seed", 1), arg("--crop", 10), arg("--lone", viewers));
    ensure!(crop < 50, "--crop is the per cent of the picture cut away, under 50");
    let mut state = seed;
    let dir = tempfile::tempdir()?;
    let clip = std::env::args().skip_while(|a| a != "--clip").nth(1).unwrap_or_else(|| "rotating".into());
    let picture = match clip.as_str() {
        "rotating" => format!("testsrc2=size=640x360:rate=25:duration={seconds},rotate=a=0.01*t*t:fillcolor=gray"),
        "detail" => format!("mandelbrot=size=640x360:rate=25:end_pts={}:end_scale=0.001,trim=duration={seconds}", seconds * 25),
        "dark-grain" => format!("gradients=size=640x360:rate=25:speed=0.01:seed=1:n=2:c0=0x405070:c1=0xC0A080:duration={seconds},eq=brightness=-0.3,noise=alls=20:allf=t+u"),
        other => anyhow::bail!("--clip is rotating, detail or dark-grain, not {other}"),
    };
    let name = format!("leak-bench-{clip}-{seconds}s.mov");
    let made = farm_tests::fixtures::make(&name, &["-f", "lavfi", "-i", &picture, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])?;
    let master = dir.path().join("master.key");
    std::fs::write(&master, "6b".repeat(32))?;
    let data = dir.path().join("data");
    let farm = Farm::embedded_with(&data, 2, 30.0, &[("FARM_MASTER_KEY_FILE", master.display().to_string())]);
    let mut ladder: serde_json::Value = serde_json::from_str(SMALL_LADDER)?;
    let segment = arg("--segment", 1);
    (ladder["segment_seconds"], ladder["gop_seconds"], ladder["lead_segments"]) = (segment.into(), 1.into(), 0.into());
    let hevc = std::env::args().any(|a| a == "--hevc");
    if hevc {
        (ladder["segment_format"], ladder["codecs"]) = ("fmp4".into(), serde_json::json!(["h264", "hevc"]));
    }
    // What a leak plays: the master playlist (FFmpeg picks its top rendition), or with
    // `--hevc` the top HEVC rendition's playlist; a mix is always of one rendition.
    let (played, mixed_rendition) = if hevc { ("media/360p-hevc/index.m3u8", "360p-hevc") } else { ("media/index.m3u8", "360p") };
    let body = serde_json::json!({"source": made.display().to_string(), "output": dir.path().join("out").display().to_string(), "ladder": ladder, "forensic_watermark": true});
    let encode = Instant::now();
    let (status, job) = farm.submit(&body.to_string());
    ensure!(status == 201, "{job}");
    let id = job["id"].as_str().context("job id")?.to_string();
    let done = farm.wait_final(&id, Duration::from_secs(3600));
    ensure!(done["state"] == "succeeded", "{done}");
    println!("leak benchmark: a {seconds} s 640x360 {clip} watermarked job ({segment} s segments, encoded in {:.0} s), {viewers} shares, leaks of {leak_seconds} s of {played}: crop {crop} %, 640x360, 30 fps, gamma/contrast/brightness, x264 500 kb/s", encode.elapsed().as_secs_f64());
    let shares: Vec<(String, String)> = (0..viewers)
        .map(|v| {
            let share: serde_json::Value = farm.http.post(format!("{}/v1/jobs/{id}/shares", farm.base)).json(&serde_json::json!({"viewer": format!("viewer-{v}"), "expires_in": 86400})).send()?.json()?;
            Ok((share["id"].as_str().context("share id")?.to_string(), share["url"].as_str().context("share url")?.to_string()))
        })
        .collect::<Result<_>>()?;
    let (mut right, mut wrong, mut missed, mut seconds_traced) = (0, 0, 0, Vec::new());
    let leaked = dir.path().join("leak.mp4");
    for (v, (share, url)) in shares.iter().enumerate().take(lone as usize) {
        let start = next(&mut state) % (seconds - leak_seconds).max(1);
        screen_capture(&format!("{url}{played}"), start, leak_seconds, crop, &leaked)?;
        let (verdict, took) = trace(&data, &master, &leaked, &id)?;
        seconds_traced.push(took);
        let named: Vec<&str> = verdict["shares"].as_array().map(|a| a.iter().filter_map(|s| s.as_str()).collect()).unwrap_or_default();
        let innocents = named.iter().filter(|s| **s != share).count();
        wrong += usize::from(innocents > 0);
        match (named.contains(&share.as_str()), innocents) {
            (true, 0) => right += 1,
            (false, 0) => missed += 1,
            _ => {}
        }
        println!("viewer {v:>3} from {start:>3} s: {} {:?} confidence {} positions {} offset {} ({took:.1} s)", verdict["verdict"], named, verdict["confidence"], verdict["positions"], verdict["offset_seconds"]);
        if let Some(note) = verdict["note"].as_str() {
            println!("    {note}");
        }
    }
    let http = reqwest::blocking::Client::new();
    let mut mixes = [0; 4]; // both named, one of the two, nobody, an innocent among them
    for c in 0..collusions {
        let (i, j) = ((2 * c) as usize % shares.len(), (2 * c + 1) as usize % shares.len());
        let playlist = dir.path().join("mixed.m3u8");
        mixed(&http, [&shares[i].1, &shares[j].1], mixed_rendition, &mut state, &playlist)?;
        let start = next(&mut state) % (seconds - leak_seconds).max(1);
        screen_capture(playlist.to_str().context("path")?, start, leak_seconds, crop, &leaked)?;
        let (verdict, took) = trace(&data, &master, &leaked, &id)?;
        let named: Vec<&str> = verdict["shares"].as_array().map(|a| a.iter().filter_map(|s| s.as_str()).collect()).unwrap_or_default();
        let innocents = named.iter().filter(|s| **s != shares[i].0 && **s != shares[j].0).count();
        let ours = named.len() - innocents;
        mixes[if innocents > 0 { 3 } else { [2, 1, 0][ours.min(2)] }] += 1;
        println!("collusion {c} of viewers {i} and {j} from {start} s: {} {:?} (innocents named: {innocents}) ({took:.1} s)", verdict["verdict"], named);
    }
    seconds_traced.sort_by(f64::total_cmp);
    if lone > 0 {
        println!(
            "viewers {}: right {right}, wrong viewer named {wrong}, nobody named {missed}; trace median {:.1} s; false-accusation bound per trace 1e-6",
            lone.min(viewers),
            seconds_traced.get(seconds_traced.len() / 2).copied().unwrap_or(0.0)
        );
    }
    if collusions > 0 {
        println!("mixes {collusions}: both viewers named {}, one of the two {}, nobody {}, an innocent named {}", mixes[0], mixes[1], mixes[2], mixes[3]);
    }
    println!("reproduce: cargo run --release -p farm-benches --bin leak-bench -- --viewers {viewers} --lone {lone} --seconds {seconds} --leak {leak_seconds} --collusions {collusions} --seed {seed} --segment {segment} --clip {clip} --crop {crop}{}", if hevc { " --hevc" } else { "" });
    Ok(())
}
