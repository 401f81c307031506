//! Hostile sources through the real farm: every source of the hostile corpus fails its job
//! with the reason (API jobs and tasks published straight to the broker alike), the worker's
//! memory stays bounded, and it goes on to the next good job.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use farm_queue::Topology;
use farm_tests::amqp::broker;
use farm_tests::farm::Extra;
use farm_tests::fixtures::SMALL_LADDER;
use farm_tests::s3::{s3, BUCKET};

use super::{serial, Case};

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

#[test]
fn every_hostile_source_fails_its_job_and_the_worker_goes_on_to_the_next_good_job() {
    let _serial = serial();
    let mut case = Case::start("fault-hostile", 1, 60.0, Extra::default());
    // A good job first: the worker's memory reaches its working size.
    let good = case.submit();
    assert_eq!(case.wait_final(&good, Duration::from_secs(300))["state"], "succeeded");
    let worker_pid = case.farm.workers[0].child.id();
    let rss_before = rss_mib(worker_pid);

    let corpus = farm_tests::corpus::corpus();
    let mut failures = Vec::new();
    let keys: Vec<String> = (0..corpus.len()).map(|i| format!("{}/hostile/{i:02}.mov", case.prefix)).collect();
    for (h, key) in corpus.iter().zip(&keys) {
        s3().put_file(key, &h.path).unwrap();
    }
    // Through the API: refused with a 4xx naming the problem, or accepted and failed so.
    for (i, (h, key)) in corpus.iter().zip(&keys).enumerate() {
        let body = serde_json::json!({
            "source": format!("s3://{BUCKET}/{key}"),
            "output": format!("s3://{BUCKET}/{}/hostile-out/{i:02}", case.prefix),
            "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
        });
        let started = Instant::now();
        let (status, reply) = case.farm.submit(&body.to_string());
        let (outcome, message) = if status == 201 {
            let done = case.farm.wait_final(reply["id"].as_str().unwrap(), Duration::from_secs(90));
            (done["state"].as_str().unwrap_or("").to_string(), done["error"].as_str().unwrap_or("").to_string())
        } else {
            (status.to_string(), reply["error"].as_str().unwrap_or("").to_string())
        };
        let refused = outcome == "failed" || (outcome.starts_with('4') && outcome.len() == 3);
        if !refused || !message.contains(h.expected) || started.elapsed() > Duration::from_secs(90) {
            failures.push(format!("API, {}: {outcome} after {:?}: {message:?}", h.name, started.elapsed()));
        }
    }
    // Straight to the worker, past the coordinator's probe: every task is dead-lettered at
    // once (one attempt) with the problem in its headers.
    let ladder: farm_contract::ladder::Ladder = serde_json::from_str(SMALL_LADDER).unwrap();
    let b = broker();
    let topology = Topology::new(&case.farm.prefix);
    let dead = topology.dead_queue();
    while b.take(&dead).unwrap().is_some() {} // the API jobs' dead letters
    for (i, key) in keys.iter().enumerate() {
        let task = farm_contract::task::TaskMessage {
            schema: farm_contract::task::TASK_SCHEMA,
            job_id: format!("hostile-{i:02}"),
            task_id: format!("hostile-{i:02}-v"),
            source: format!("s3://{BUCKET}/{key}"),
            output: format!("s3://{BUCKET}/{}/direct-out/{i:02}", case.prefix),
            ladder: ladder.clone(),
            part: farm_contract::task::TaskPart::Video { start: 0.0, end: None, audio: true },
            review: None,
            keys: None,
            forensic_seed: None,
        };
        b.publish(&topology.tasks_exchange(), "normal", &serde_json::to_vec(&task).unwrap()).unwrap();
    }
    b.wait_for(Duration::from_secs(120), || b.depth(&dead).unwrap_or(0) as usize >= corpus.len());
    let mut seen = BTreeSet::new();
    while let Some((body, headers)) = b.take(&dead).unwrap() {
        let task: farm_contract::task::TaskMessage = serde_json::from_slice(&body).unwrap();
        let i: usize = task.job_id.trim_start_matches("hostile-").parse().unwrap();
        seen.insert(i);
        if !headers.contains(corpus[i].expected) || headers.contains("gave up after") {
            failures.push(format!("worker, {}: {headers}", corpus[i].name));
        }
    }
    for (i, h) in corpus.iter().enumerate().filter(|(i, _)| !seen.contains(i)) {
        failures.push(format!("worker, {} (task hostile-{i:02}): not dead-lettered within 120 s", h.name));
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));

    // The same worker process, alive, with its memory where it was, does the next job.
    assert!(case.farm.workers[0].child.try_wait().unwrap().is_none(), "the worker exited");
    let rss_after = rss_mib(worker_pid);
    assert!(rss_after < rss_before + 100.0, "worker memory grew from {rss_before:.0} to {rss_after:.0} MiB");
    let body = serde_json::json!({
        "source": format!("s3://{BUCKET}/{}/in.mov", case.prefix),
        "output": format!("s3://{BUCKET}/{}/after", case.prefix),
        "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
    });
    let (status, job) = case.farm.submit(&body.to_string());
    assert_eq!(status, 201, "{job}");
    let done = case.farm.wait_final(job["id"].as_str().unwrap(), Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(case.farm.workers[0].child.id(), worker_pid);
    case.cleanup();
}
