//! Viewer benchmark: the coordinator's CPU per playing viewer of share links. An encrypted
//! job (RabbitMQ, SeaweedFS, two workers; a 30 s 640x360 clip in 2 s segments, keys every
//! `--period` seconds of media) is shared with `--viewers` viewers, each played at once in
//! real time by an FFmpeg client (`-re`, streams copied, not decoded) through its share
//! link (one rung and the stereo mix, as a player takes): the coordinator answers the playlists and keys, the segments come from S3 by
//! signed URLs. Measured: the coordinator's CPU seconds (utime + stime from /proc) over the
//! playback, per viewer and per minute of media, and the requests it answered.
//!
//! Reproduce with (from the repository root; starts SeaweedFS and RabbitMQ if needed):
//!     cargo run --release -p farm-benches --bin viewer-bench -- [--viewers 8] [--period 10]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use farm_tests::farm::{Extra, Farm};
use farm_tests::fixtures::{clip_30s, SMALL_LADDER};
use farm_tests::s3::{s3, unique_prefix, BUCKET};

/// The benchmark's options.
#[derive(clap::Parser)]
#[command(about = "The coordinator's CPU per playing viewer of share links")]
struct Args {
    /// Viewers playing at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    viewers: u32,
    /// Seconds of media per content key (at least 2, a segment).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..))]
    period: u32,
}

/// CPU seconds process `pid` has used (utime + stime).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
    Ok((fields[11].parse::<f64>()? + fields[12].parse::<f64>()?) / 100.0)
}

fn main() -> Result<()> {
    let Args { viewers, period } = clap::Parser::parse();
    let prefix = unique_prefix("bench-viewers");
    s3().put_file(&format!("{prefix}/in.mov"), &clip_30s())?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("master.key"), "9d".repeat(32))?;
    let extra = Extra {
        coordinator: vec![
            ("FARM_MASTER_KEY_FILE", dir.path().join("master.key").display().to_string()),
            ("FARM_KEY_PERIOD_SECONDS", period.to_string()),
        ],
        ..Default::default()
    };
    let farm = Farm::start_with(&farm_tests::farm::sqlite_url(dir.path()), &prefix.replace('/', "-"), 2, 6.0, extra);
    let mut ladder: serde_json::Value = serde_json::from_str(SMALL_LADDER)?;
    ladder["segment_seconds"] = 2.into();
    let body = serde_json::json!({"source": format!("s3://{BUCKET}/{prefix}/in.mov"), "output": format!("s3://{BUCKET}/{prefix}/out/"), "ladder": ladder});
    let (status, job) = farm.submit(&body.to_string());
    ensure!(status == 201, "{job}");
    let id = job["id"].as_str().unwrap_or_default().to_string();
    let done = farm.wait_final(&id, Duration::from_secs(600));
    ensure!(done["state"] == "succeeded", "{done}");

    let playlists: Vec<String> = (0..viewers)
        .map(|v| {
            let share = farm.http.post(format!("{}/v1/jobs/{id}/shares", farm.base)).json(&serde_json::json!({"viewer": format!("viewer-{v}"), "expires_in": 3600})).send()?;
            let share: serde_json::Value = share.json()?;
            Ok(share["playlist"].as_str().context("a share playlist")?.to_string())
        })
        .collect::<Result<_>>()?;
    let pid = farm.coordinator.child.id();
    let before = cpu_seconds(pid)?;
    let started = Instant::now();
    let players: Vec<_> = playlists
        .iter()
        .map(|p| Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-re", "-i", p, "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-f", "null", "-"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn())
        .collect::<Result<_, _>>()?;
    for player in players {
        let out = player.wait_with_output()?;
        ensure!(out.status.success(), "a viewer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds(pid)? - before);
    let audit: serde_json::Value = farm.http.get(format!("{}/v1/audit?job={id}", farm.base)).send()?.json()?;
    let rows = audit.as_array().map_or(0, |a| a.iter().filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with("share.") && a != "share.created")).count());
    let media_minutes = 30.0 / 60.0;
    println!("viewer benchmark: {viewers} viewers playing a 30 s encrypted ladder (3 rungs + stereo, 2 s segments, keys every {period} s) at once through share links");
    println!("  playback took {wall:.1} s; the coordinator used {cpu:.2} CPU s: {:.3} CPU s per viewer, {:.3} CPU s per viewer per minute of media", cpu / f64::from(viewers), cpu / f64::from(viewers) / media_minutes);
    println!("  it answered {rows} audited share requests (playlists and keys), {:.1} per viewer", rows as f64 / f64::from(viewers));
    println!("  reproduce: cargo run --release -p farm-benches --bin viewer-bench -- --viewers {viewers} --period {period}");
    Ok(())
}
