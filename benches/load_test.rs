//! Load test: many short jobs submitted at once through the API to a farm of two workers,
//! with the real RabbitMQ, PostgreSQL and SeaweedFS. Every job must reach `succeeded`,
//! none may be created or run twice.
//!
//! Reproduce with (from the repository root; starts the services if needed):
//!     cargo run --release -p farm-benches --bin load-test -- [--jobs 500] [--clients 16]
//!
//! Prints: accepted jobs per second, p50/p99 submit latency, time until every job is done.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use farm_tests::farm::Farm;
use farm_tests::fixtures::make;
use farm_tests::s3::{s3, unique_prefix, BUCKET};

const LADDER: &str = r#"{"version": 1, "video": [
  {"name": "180p", "width": 320, "height": 180, "bitrate_kbps": 400},
  {"name": "90p", "width": 160, "height": 90, "bitrate_kbps": 150}]}"#;

/// The test's options.
#[derive(clap::Parser)]
#[command(about = "Many short jobs submitted at once through the API to a farm of two workers")]
struct Args {
    /// Jobs submitted.
    #[arg(long, default_value_t = 500)]
    jobs: usize,
    /// Clients submitting at once.
    #[arg(long, default_value_t = 16, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    clients: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let Args { jobs, clients } = clap::Parser::parse();
    let source = make(
        "load-2s.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-ac", "2",
        ],
    )?;
    let prefix = unique_prefix("load");
    s3().put_file(&format!("{prefix}/in.mov"), &source)?;
    let _ = farm_tests::amqp::broker();
    let db = farm_tests::farm::POSTGRES;
    let farm = Farm::start(db, &prefix.replace('/', "-"), 2, 60.0);
    let ladder: serde_json::Value = serde_json::from_str(LADDER)?;

    eprintln!("submitting {jobs} jobs from {clients} clients ...");
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= jobs {
                    return;
                }
                let body = serde_json::json!({
                    "source": format!("s3://{BUCKET}/{prefix}/in.mov"),
                    "output": format!("s3://{BUCKET}/{prefix}/out/{i:04}"),
                    "ladder": ladder,
                    "idempotency_key": format!("{prefix}-{i}"),
                });
                let t = Instant::now();
                let (status, job) = farm.submit(&body.to_string());
                let latency = t.elapsed().as_secs_f64();
                match job["id"].as_str() {
                    Some(id) if status == 201 => results.lock().unwrap().push((id.to_string(), latency)),
                    _ => errors.lock().unwrap().push(format!("job {i}: {status} {job}")),
                }
            });
        }
    });
    let submitted = started.elapsed().as_secs_f64();
    let errors = errors.into_inner().unwrap();
    ensure!(errors.is_empty(), "{} submissions failed: {:?}", errors.len(), &errors[..errors.len().min(5)]);
    let results = results.into_inner().unwrap();
    let ids: BTreeSet<&String> = results.iter().map(|(id, _)| id).collect();
    ensure!(ids.len() == jobs, "{} distinct job ids for {jobs} submissions", ids.len());

    eprintln!("waiting for every job ...");
    let mut pending: Vec<&String> = ids.iter().copied().collect();
    while !pending.is_empty() {
        ensure!(started.elapsed() < Duration::from_secs(3600), "{} jobs not done after an hour", pending.len());
        let mut still = Vec::new();
        for id in pending {
            let job = farm.job(id);
            match job["state"].as_str() {
                Some("succeeded") => {}
                Some("failed") | Some("cancelled") => anyhow::bail!("job {id} ended {job}"),
                _ => still.push(id),
            }
        }
        pending = still;
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    let completed = started.elapsed().as_secs_f64();

    // None twice: the API lists exactly these jobs, and each task ran to success once.
    let mut listed = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let url = format!("{}/v1/jobs?limit=200&cursor={cursor}", farm.base);
        let page: serde_json::Value = farm.http.get(url).send()?.json()?;
        let items = page["jobs"].as_array().cloned().unwrap_or_default();
        for j in &items {
            listed.insert(j["id"].as_str().unwrap_or_default().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) if !items.is_empty() => cursor = c.to_string(),
            _ => break,
        }
    }
    let mine: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
    ensure!(mine.is_subset(&listed), "some jobs are not listed");
    let runs: usize = farm.workers.iter().map(|w| w.log().matches("task succeeded").count()).sum();
    ensure!(runs == jobs, "{runs} task runs for {jobs} tasks");

    let mut latencies: Vec<f64> = results.iter().map(|(_, l)| *l).collect();
    latencies.sort_by(f64::total_cmp);
    println!("load test: {jobs} jobs (2 s 320x180 clip, 2 renditions + audio, one task each), {clients} clients, 2 workers, RabbitMQ + PostgreSQL + SeaweedFS on loopback");
    println!("  accepted: {:.1} jobs/s ({jobs} in {submitted:.1} s)", jobs as f64 / submitted);
    println!("  submit latency: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms", percentile(&latencies, 0.5) * 1e3, percentile(&latencies, 0.99) * 1e3, latencies.last().unwrap() * 1e3);
    println!("  every job succeeded {completed:.1} s after the first POST; {runs} task runs for {jobs} tasks (none twice)");
    println!("  reproduce: cargo run --release -p farm-benches --bin load-test -- --jobs {jobs} --clients {clients}");
    farm_tests::amqp::broker().delete_farm_queues(&farm.prefix);
    Ok(())
}
