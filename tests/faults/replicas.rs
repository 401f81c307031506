//! Two coordinator replicas on one PostgreSQL: the one holding the playlists lease is
//! killed with SIGKILL while jobs run and are submitted to both, then restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use farm_tests::farm::{free_port, plain, psql, Extra, Proc, POSTGRES, TOKEN};
use farm_tests::fixtures::SMALL_LADDER;
use farm_tests::s3::{s3, BUCKET};

use super::{assert_whole, serial, Case};

const LEASE_SECONDS: u64 = 5;

/// The test's API client: each request goes to the replicas in turn until one answers (as
/// a client behind the Service would be retried onto another pod).
struct Client {
    bases: Vec<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    fn new(bases: Vec<String>) -> Self {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { bases, http }
    }

    /// `f` against each replica from `first` on; the first answer, or every error.
    fn send(&self, first: usize, f: impl Fn(&reqwest::blocking::Client, &str) -> reqwest::blocking::RequestBuilder) -> Result<reqwest::blocking::Response, String> {
        let mut errors = Vec::new();
        for i in 0..self.bases.len() {
            let base = &self.bases[(first + i) % self.bases.len()];
            match f(&self.http, base).bearer_auth(TOKEN).send() {
                Ok(r) => return Ok(r),
                Err(e) => errors.push(format!("{base}: {e}")),
            }
        }
        Err(errors.join("; "))
    }

    /// Submits with an idempotency key in the body: a request retried on the other replica
    /// after the first died mid-answer finds the job it made (200).
    fn submit(&self, first: usize, body: &serde_json::Value) -> String {
        let r = self.send(first, |http, base| http.post(format!("{base}/v1/jobs")).json(body)).expect("no replica took the job");
        assert!([200, 201].contains(&r.status().as_u16()), "{}", r.status());
        r.json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_string()
    }

    fn state(&self, id: &str) -> String {
        let r = self.send(0, |http, base| http.get(format!("{base}/v1/jobs/{id}"))).expect("no replica answered");
        r.json::<serde_json::Value>().unwrap()["state"].as_str().unwrap_or("").to_string()
    }
}

/// The process id in a lease holder's name (`HOST-PID-RANDOM`).
fn holder_pid(prefix: &str) -> Option<u32> {
    let now = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
    let holder = psql(POSTGRES, &format!("SELECT holder FROM leases WHERE name = '{prefix}.playlists' AND expires_ms > {now}"));
    holder.rsplit('-').nth(1).and_then(|pid| pid.parse().ok())
}

fn wait_holder(prefix: &str, not: Option<u32>, limit: Duration) -> (u32, Duration) {
    let start = Instant::now();
    loop {
        if let Some(pid) = holder_pid(prefix).filter(|p| Some(*p) != not) {
            return (pid, start.elapsed());
        }
        assert!(start.elapsed() < limit, "no replica took the playlists lease within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads every media playlist under `outs` until stopped; records any that got shorter.
fn watch_playlists(outs: Vec<String>, stop: Arc<AtomicBool>, shrunk: Arc<Mutex<Vec<String>>>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut longest: BTreeMap<String, usize> = BTreeMap::new();
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            for out in &outs {
                let master = format!("{out}/index.m3u8");
                for key in s3().keys(out).unwrap_or_default().into_iter().filter(|k| k.ends_with(".m3u8") && *k != master) {
                    let Ok(text) = s3().get(&key) else { continue };
                    let Ok(media) = m3u8_rs::parse_media_playlist_res(&text) else { continue };
                    reads += 1;
                    let before = longest.entry(key.clone()).or_default();
                    if media.segments.len() < *before {
                        shrunk.lock().unwrap().push(format!("{key}: {} segments after {}", media.segments.len(), before));
                    }
                    *before = (*before).max(media.segments.len());
                }
            }
        }
        reads
    })
}

/// Probes the API every 100 ms through the failover client; counts requests no replica
/// answered.
fn watch_api(client: Arc<Client>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut asked, mut unanswered) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            asked += 1;
            match client.send(asked, |http, base| http.get(format!("{base}/v1/jobs?limit=5"))) {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => unanswered.push(format!("status {}", r.status())),
                Err(e) => unanswered.push(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (asked, unanswered)
    })
}

#[test]
fn two_replicas_lose_nothing_when_the_one_publishing_is_killed() {
    let _serial = serial();
    let extra = Extra { coordinator: vec![("FARM_LEASE_SECONDS", LEASE_SECONDS.to_string())], ..Default::default() };
    let mut case = Case::start("fault-replicas", 2, 6.0, extra);
    let prefix = case.farm.prefix.clone();
    let port_b = free_port();
    let b = case.farm.spawn_replica(port_b);
    let mut replicas: Vec<Proc> = vec![b];
    let bases = vec![case.farm.base.clone(), format!("http://127.0.0.1:{port_b}")];
    let client = Arc::new(Client::new(bases.clone()));
    let files = case.prefix.clone();
    let job = |i: usize| {
        serde_json::json!({
            "source": format!("s3://{BUCKET}/{files}/in.mov"),
            "output": format!("s3://{BUCKET}/{files}/out-{i}"),
            "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
            "idempotency_key": format!("{files}-{i}"),
        })
    };
    let outs: Vec<String> = (0..4).map(|i| format!("{}/out-{i}", case.prefix)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let shrunk = Arc::new(Mutex::new(Vec::new()));
    let playlists = watch_playlists(outs.clone(), stop.clone(), shrunk.clone());
    let api = watch_api(client.clone(), stop.clone());

    // One job to each replica; the publisher is killed once the first is playable.
    let mut ids = vec![client.submit(0, &job(0)), client.submit(1, &job(1))];
    let (holder, _) = wait_holder(&prefix, None, Duration::from_secs(30));
    let start = Instant::now();
    let master = format!("{}/index.m3u8", outs[0]);
    while !s3().keys(&outs[0]).unwrap().contains(&master) {
        assert!(start.elapsed() < Duration::from_secs(120), "job 0 never became playable");
        std::thread::sleep(Duration::from_millis(100));
    }
    let a_is_holder = case.farm.coordinator.child.id() == holder;
    assert!(a_is_holder || replicas[0].child.id() == holder, "the holder {holder} is neither replica");
    let victim = if a_is_holder { 0 } else { 1 };
    let victim_proc = if a_is_holder { &case.farm.coordinator } else { &replicas[0] };
    victim_proc.signal("KILL");
    let killed_log = plain(&victim_proc.log());
    // A job submitted while the victim is down: the client falls over to the survivor.
    ids.push(client.submit(victim, &job(2)));
    let (_, handover) = wait_holder(&prefix, Some(holder), Duration::from_secs(30));
    assert!(handover < Duration::from_secs(LEASE_SECONDS + 3), "the lease took {handover:?} to pass over");

    // The victim comes back and takes a job of its own.
    if a_is_holder {
        case.farm.start_coordinator();
    } else {
        replicas[0] = case.farm.spawn_replica(port_b);
    }
    ids.push(client.submit(victim, &job(3)));

    for (id, out) in ids.iter().zip(&outs) {
        let start = Instant::now();
        while !["succeeded", "failed", "cancelled"].contains(&client.state(id).as_str()) {
            assert!(start.elapsed() < Duration::from_secs(300), "job {id} not done:\n{}", case.farm.coordinator.log());
            std::thread::sleep(Duration::from_millis(300));
        }
        assert_eq!(client.state(id), "succeeded", "{id}");
        assert_whole(out);
    }
    stop.store(true, Ordering::Relaxed);
    let reads = playlists.join().unwrap();
    let (asked, unanswered) = api.join().unwrap();
    assert!(reads > 50, "the live playlists were read {reads} times only");
    assert!(shrunk.lock().unwrap().is_empty(), "playlists went backwards: {:?}", shrunk.lock().unwrap());
    assert!(unanswered.is_empty(), "{} of {asked} API requests found no replica: {unanswered:?}", unanswered.len());
    println!("playlists lease passed over in {handover:?} after the SIGKILL; {reads} live playlist reads, {asked} API requests, all answered");

    // Each job finished (VOD playlists written) once, by one replica.
    let logs = [killed_log, plain(&case.farm.coordinator.log()), plain(&replicas[0].log())].join("\n");
    for id in &ids {
        let finished = logs.lines().filter(|l| l.contains("VOD playlists written") && l.contains(&format!("job_id=\"{id}\""))).count();
        assert_eq!(finished, 1, "job {id} finished {finished} times:\n{logs}");
    }
    // No task ran twice without a recorded reason (a retry's error, a reclaim).
    let workers = case.farm.workers.iter().map(|w| plain(&w.log())).collect::<Vec<_>>().join("\n");
    let mut starts: BTreeMap<String, usize> = BTreeMap::new();
    for line in workers.lines().filter(|l| l.contains("task started")) {
        *starts.entry(super::task_id(line)).or_default() += 1;
    }
    let ids_sql = ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    let tasks = psql(POSTGRES, &format!("SELECT id FROM tasks WHERE job_id IN ({ids_sql})"));
    let tasks: BTreeSet<&str> = tasks.lines().collect();
    assert_eq!(starts.keys().filter(|t| tasks.contains(t.as_str())).count(), tasks.len(), "every task ran: {starts:?}");
    for (task, n) in starts.iter().filter(|(t, n)| **n > 1 && tasks.contains(t.as_str())) {
        let reason = psql(POSTGRES, &format!("SELECT COALESCE(reclaims, 0) > 0 OR error IS NOT NULL FROM tasks WHERE id = '{task}'"));
        assert_eq!(reason, "t", "task {task} ran {n} times without a recorded reason");
    }
    case.cleanup();
}
