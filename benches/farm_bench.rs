//! Farm benchmark: time from POST to a playable master playlist, and chunk scaling over
//! workers, with real RabbitMQ, SeaweedFS (S3) and coordinator and worker processes.
//!
//! Reproduce with (from the repository root; starts SeaweedFS and RabbitMQ if needed):
//!     cargo run --release -p farm-benches --bin farm-bench -- [--short 30] [--long 300 (0: skip)] [--scale 60 (0: skip)] [--runs 3] [--review] [--encrypted] [--forensic]
//!
//! `--review` gives the jobs every review option (LUT, burn-ins, watermark); `--encrypted`
//! runs the coordinator with a master key, so every segment is sealed (AES-128, keys every
//! 600 s of media): compare its time to playable with a run without. `--forensic` (implies
//! `--encrypted`) times, beside each encrypted job, the same job with
//! `"forensic_watermark": true` (playable at its master playlist too: before the first
//! marked segment every share plays A). Also timed: every rendition's second segment
//! (a forensic job's variant B of it), when a player goes on past the first.
//!
//! 1. Baseline: `worker transcode SOURCE OUT --end FIRST`, the time one worker needs to
//!    open the source and encode the first segment of every rendition (the default ladder
//!    starts with three 2 s segments, so FIRST is 2).
//! 2. Time to playable: a job on a `--short` and a `--long` 1080p25 ProRes 422 HQ source
//!    (default ladder, 60 s chunks, two workers), from POST to the master playlist in S3
//!    (every rendition has its first segment). The job is then cancelled. Baseline and
//!    both jobs are run `--runs` times, interleaved; medians are reported.
//! 3. Scaling: a `--scale` seconds source in 12 s chunks, one worker pinned to core 0
//!    (`taskset`) versus two workers pinned to cores 0 and 1, POST to `succeeded`; also
//!    `--runs` times, one worker and two alternating, medians reported, with the CPU time
//!    SeaweedFS spent in each run (it shares the machine's two cores with the workers).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use farm_tests::farm::{Farm, Proc};
use farm_tests::fixtures::prores_1080p;
use farm_tests::s3::{s3, unique_prefix, BUCKET};
use farm_tests::worker::worker_bin;

/// The benchmark's options (the module doc says what each changes).
#[derive(clap::Parser)]
#[command(about = "Time from POST to a playable master playlist, and chunk scaling over workers")]
struct Args {
    /// The short source's seconds (0: skip).
    #[arg(long, default_value_t = 30)]
    short: u32,
    /// The long source's seconds (0: skip).
    #[arg(long, default_value_t = 300)]
    long: u32,
    /// The scaling source's seconds (0: skip).
    #[arg(long, default_value_t = 60)]
    scale: u32,
    /// Runs of each measure, interleaved; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Jobs carry every review option: LUT, burn-ins, watermark.
    #[arg(long)]
    review: bool,
    /// The coordinator runs with a master key: every segment sealed.
    #[arg(long)]
    encrypted: bool,
    /// Beside each encrypted job, the same job with `forensic_watermark` (implies --encrypted).
    #[arg(long)]
    forensic: bool,
}

/// The command line, read once.
static ARGS: std::sync::LazyLock<Args> = std::sync::LazyLock::new(clap::Parser::parse);

/// With `--review`, jobs carry every review option: a 33-point LUT (in S3), all burn-ins
/// and a watermark (thumbnails are always made).
fn review_options() -> Result<Option<serde_json::Value>> {
    if !ARGS.review {
        return Ok(None);
    }
    let key = "bench/luts/show.cube";
    if !s3().keys("bench/luts")?.iter().any(|k| k == key) {
        let dir = tempfile::tempdir()?;
        let lut = dir.path().join("show.cube");
        farm_tests::picture::write_test_lut(&lut)?;
        s3().put_file(key, &lut)?;
    }
    Ok(Some(serde_json::json!({
        "lut": format!("s3://{BUCKET}/{key}"),
        "burn_in": ["timecode", "clip_name", "frame_number"],
        "watermark": "CONFIDENTIAL - SHOW - VENDOR",
    })))
}

fn submit(farm: &Farm, source_key: &str, out: &str, forensic: bool) -> Result<(String, Instant)> {
    let mut body = serde_json::json!({"source": format!("s3://{BUCKET}/{source_key}"), "output": format!("s3://{BUCKET}/{out}")});
    if forensic {
        body["forensic_watermark"] = true.into();
    }
    if let Some(options) = review_options()? {
        body.as_object_mut().expect("an object").extend(options.as_object().expect("an object").clone());
    }
    let posted = Instant::now();
    let (status, job) = farm.submit(&body.to_string());
    ensure!(status == 201, "submit failed: {status} {job}");
    Ok((job["id"].as_str().unwrap_or_default().to_string(), posted))
}

/// The source in S3 under a fixed key, uploaded once.
fn uploaded(seconds: u32) -> Result<String> {
    let key = format!("bench/sources/prores422hq-1080p25-{seconds}s.mov");
    if !s3().keys("bench/sources")?.contains(&key) {
        let src = prores_1080p(seconds)?;
        eprintln!("uploading the {seconds} s source to S3 (once) ...");
        s3().put_file(&key, &src)?;
    }
    Ok(key)
}

/// What [`time_to_playable`] measures.
type Timings = (f64, f64, f64);

/// Seconds from POST to accepted, to playable (the master playlist in S3) and to every
/// video rendition's second segment (a `forensic` job's: variant B's).
fn time_to_playable(seconds: u32, forensic: bool, db: &std::path::Path) -> Result<Timings> {
    let source = uploaded(seconds)?;
    let prefix = unique_prefix(&format!("bench-playable-{seconds}{}", if forensic { "-ab" } else { "" }));
    let mut extra = farm_tests::farm::Extra::default();
    if ARGS.encrypted || ARGS.forensic {
        let key = db.join("master.key");
        std::fs::write(&key, "b7".repeat(32))?;
        extra.coordinator.push(("FARM_MASTER_KEY_FILE", key.display().to_string()));
    }
    let farm = Farm::start_with(&format!("sqlite://{}/farm-{seconds}.db?mode=rwc", db.display()), &prefix.replace('/', "-"), 2, 60.0, extra);
    let (id, posted) = submit(&farm, &source, &format!("{prefix}/out"), forensic)?;
    let accepted = posted.elapsed().as_secs_f64();
    let master = format!("{prefix}/out/index.m3u8");
    // Seconds from POST until every one of `keys` is there (a key ending in '.' stands
    // for a segment in either container: `seg_00001.`).
    let wait_for = |keys: &[String]| -> Result<f64> {
        loop {
            let present = s3().keys(&format!("{prefix}/out"))?;
            if keys.iter().all(|k| present.iter().any(|p| if k.ends_with('.') { p.starts_with(k.as_str()) } else { p == k })) {
                return Ok(posted.elapsed().as_secs_f64());
            }
            ensure!(posted.elapsed() < Duration::from_secs(600), "never there: {keys:?}: {}", farm.coordinator.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let playable = wait_for(std::slice::from_ref(&master))?;
    // The second segment position of every video rendition the master lists: for a
    // forensic job, B's (made with A's; before it every share plays A).
    let text = String::from_utf8(s3().get(&master)?)?;
    let folders: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(|uri| uri.rsplit_once('/')).map(|(f, _)| f).collect();
    let b = if forensic { format!("/{}", farm_contract::manifest::VARIANT_B) } else { String::new() };
    let second: Vec<String> = folders.iter().map(|folder| format!("{prefix}/out/{folder}{b}/seg_00001.")).collect();
    let second = wait_for(&second)?;
    let _ = farm.http.delete(format!("{}/v1/jobs/{id}", farm.base)).send();
    keep_logs(&format!("playable-{seconds}s{}", if forensic { "-ab" } else { "" }), &farm);
    farm_tests::amqp::broker().delete_farm_queues(&farm.prefix);
    Ok((accepted, playable, second))
}

/// The coordinator's and workers' logs of a run, under target/farm-bench/NAME/.
fn keep_logs(name: &str, farm: &Farm) {
    keep_logs_of(name, farm, &farm.workers);
}

fn keep_logs_of(name: &str, farm: &Farm, workers: &[Proc]) {
    let dir = farm_tests::fixtures::target_dir().join("farm-bench").join(name);
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("coordinator.log"), farm.coordinator.log());
        for (i, w) in workers.iter().enumerate() {
            let _ = std::fs::write(dir.join(format!("worker-{i}.log")), w.log());
        }
    }
}

/// CPU seconds the local SeaweedFS server has used so far (utime + stime from /proc), when
/// it runs on this machine.
fn seaweedfs_cpu() -> Option<f64> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_weed = args.first().is_some_and(|a| a.ends_with(b"weed")) && args.get(1) == Some(&&b"mini"[..]);
        if !is_weed {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // Fields after the command name (which is in parentheses): utime and stime are the
        // 12th and 13th of them.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        return Some(ticks / 100.0);
    }
    None
}

/// Seconds from POST to `succeeded`, and SeaweedFS CPU seconds over that time.
fn scaling(seconds: u32, workers: usize, db: &std::path::Path) -> Result<(f64, Option<f64>)> {
    let source = uploaded(seconds)?;
    let prefix = unique_prefix(&format!("bench-scale-{workers}"));
    let farm = Farm::start(&format!("sqlite://{}/scale-{workers}.db?mode=rwc", db.display()), &prefix.replace('/', "-"), 0, 12.0);
    let mut env: Vec<(&str, String)> = s3().env().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    env.push(("AMQP_URL", farm_tests::amqp::URL.to_string()));
    env.push(("FARM_QUEUE_PREFIX", farm.prefix.clone()));
    env.push(farm_tests::keys::task_key_env());
    let bin = worker_bin();
    let pinned: Vec<Proc> = (0..workers)
        .map(|core| Proc::spawn(PathBuf::from("taskset"), &["-c", &core.to_string(), bin.to_str().unwrap(), "serve"], &env))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let weed_before = seaweedfs_cpu();
    let (id, posted) = submit(&farm, &source, &format!("{prefix}/out"), false)?;
    let done = farm.wait_final(&id, Duration::from_secs(1800));
    ensure!(done["state"] == "succeeded", "{done}");
    let took = posted.elapsed().as_secs_f64();
    let weed = weed_before.zip(seaweedfs_cpu()).map(|(a, b)| b - a);
    keep_logs_of(&format!("scale-{workers}"), &farm, &pinned);
    farm_tests::amqp::broker().delete_farm_queues(&farm.prefix);
    Ok((took, weed))
}

/// Median and the sorted values (to two decimals), for a line of the report.
fn median(values: Vec<f64>) -> (f64, String) {
    median_to(values, 2)
}

/// Median and the sorted values to `decimals` decimals.
fn median_to(mut values: Vec<f64>, decimals: usize) -> (f64, String) {
    values.sort_by(f64::total_cmp);
    let list = values.iter().map(|v| format!("{v:.decimals$}")).collect::<Vec<_>>().join(", ");
    (values[values.len() / 2], list)
}

fn main() -> Result<()> {
    let Args { short, long, scale, runs, .. } = *ARGS;
    let db = tempfile::tempdir()?;
    let _ = s3();
    let _ = farm_tests::amqp::broker();

    let _ = worker_bin(); // built (if needed) before the clock starts
    let first = (farm_contract::ladder::Ladder::default().cuts().start_ms(1) as f64 / 1000.0).to_string();
    let mut baselines = Vec::new();
    // (source seconds, forensic, runs), each forensic job beside the same job unmarked.
    let marks: &[bool] = if ARGS.forensic { &[false, true] } else { &[false] };
    let mut playable: Vec<(u32, bool, Vec<Timings>)> =
        [short, long].into_iter().filter(|s| *s > 0).flat_map(|s| marks.iter().map(move |&m| (s, m, Vec::new()))).collect();
    // Runs interleave the measures, so a slow spell of the machine touches all of them.
    for run in 1..=runs {
        let Some(&(base_seconds, _, _)) = playable.first() else { break };
        let base_src = prores_1080p(base_seconds)?;
        eprintln!("run {run}/{runs}: baseline, one worker, first segment of every rendition ...");
        let out = tempfile::tempdir()?;
        let started = Instant::now();
        farm_tests::worker::worker(&["transcode", base_src.to_str().unwrap(), out.path().to_str().unwrap(), "--end", &first])?.ok()?;
        baselines.push(started.elapsed().as_secs_f64());
        for (seconds, forensic, times) in playable.iter_mut() {
            eprintln!("run {run}/{runs}: time to playable, {seconds} s source{} ...", if *forensic { ", A and B" } else { "" });
            times.push(time_to_playable(*seconds, *forensic, db.path())?);
        }
    }
    // (seconds, SeaweedFS CPU seconds) of each run, one worker and two.
    let mut scaled: [Vec<(f64, Option<f64>)>; 2] = [Vec::new(), Vec::new()];
    for run in 1..=runs {
        if scale == 0 {
            break;
        }
        eprintln!("run {run}/{runs}: scaling, {scale} s source in 12 s chunks, 1 worker on core 0 ...");
        scaled[0].push(scaling(scale, 1, db.path())?);
        eprintln!("run {run}/{runs}: scaling, 2 workers on cores 0 and 1 ...");
        scaled[1].push(scaling(scale, 2, db.path())?);
    }

    println!("farm benchmark: 1080p25 ProRes 422 HQ (grain), default ladder, RabbitMQ + SeaweedFS on loopback, {runs} run(s), medians");
    let (baseline, list) = if baselines.is_empty() { (0.0, String::new()) } else { median(baselines) };
    if !playable.is_empty() {
        println!("  baseline: one worker encodes the first segment of every rendition in {baseline:.2} s (worker transcode --end {first}; runs: {list})");
    }
    let mut medians = Vec::new();
    for (seconds, forensic, times) in &playable {
        let (accepted, _) = median(times.iter().map(|t| t.0).collect());
        let (at, list) = median(times.iter().map(|t| t.1).collect());
        let what = if *forensic { "A and B" } else { "source" };
        println!("  {seconds:>4} s {what}: accepted in {accepted:.2} s, playable {at:.2} s after POST ({:+.2} s over the baseline; target <= +2 s; runs: {list})", at - baseline);
        let (second, second_list) = median(times.iter().map(|t| t.2).collect());
        let which = if *forensic { "B's segment 1 (the first marked)" } else { "segment 1" };
        println!("         every rendition's {which} {second:.2} s after POST (runs: {second_list})");
        if *forensic {
            let unmarked = medians.last().copied().unwrap_or(at);
            let (_, diffs) = median_to(times.iter().zip(&playable.iter().find(|p| p.0 == *seconds && !p.1).expect("measured beside").2).map(|(m, u)| m.1 - u.1).collect(), 2);
            println!("         A and B - unmarked: {:+.2} s by the medians (target within 0.3 s; run by run: {diffs})", at - unmarked);

        } else {
            medians.push(at);
        }
    }
    if let [a, b] = medians.as_slice() {
        println!("  long / short time to playable: {:.3} (target within 10 %)", b / a);
    }
    if !scaled[0].is_empty() {
        let [one, two] = &scaled;
        let (one_median, one_list) = median(one.iter().map(|r| r.0).collect());
        let (two_median, two_list) = median(two.iter().map(|r| r.0).collect());
        let (ratio, ratios) = median_to(one.iter().zip(two).map(|(a, b)| b.0 / a.0).collect(), 3);
        println!(
            "  scaling {scale} s in 12 s chunks: 1 worker {one_median:.1} s, 2 workers {two_median:.1} s, ratio of medians {:.3} (target <= 0.55)",
            two_median / one_median
        );
        println!("    runs: 1 worker {one_list} s; 2 workers {two_list} s; ratios of the runs {ratios} (median {ratio:.3})");
        let weed = |runs: &[(f64, Option<f64>)]| runs.iter().filter_map(|r| r.1).map(|c| format!("{c:.1}")).collect::<Vec<_>>().join(", ");
        println!("    SeaweedFS CPU seconds per run: 1 worker {}; 2 workers {}", weed(one), weed(two));
    }
    let review = if ARGS.review { " --review" } else { "" };
    if !review.is_empty() {
        println!("  jobs with every review option: LUT, burn-ins, watermark (the baseline has none)");
    }
    let encrypted = if ARGS.encrypted { " --encrypted" } else { "" };
    if !encrypted.is_empty() || ARGS.forensic {
        println!("  jobs encrypted: every segment sealed AES-128, content keys made and wrapped at acceptance");
    }
    let forensic = if ARGS.forensic { " --forensic" } else { "" };
    if !forensic.is_empty() {
        println!("  A and B: the same job with forensic_watermark; a share plays A before the first marked position, so playable is the master in S3 for both");
    }
    println!("  reproduce: cargo run --release -p farm-benches --bin farm-bench -- --short {short} --long {long} --scale {scale} --runs {runs}{review}{encrypted}{forensic}");
    Ok(())
}
