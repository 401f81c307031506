//! Fault injection against the real services: real coordinator and worker processes,
//! RabbitMQ, SeaweedFS and PostgreSQL. Kills are real signals; broker and storage outages
//! stop and start the real server processes. Every test asserts the job's final state,
//! checks the output with ffprobe, and that no playlist names a segment that is missing.
//!
//! These tests stop shared servers, so they run one at a time ([`serial`]) in a test binary
//! of their own (cargo runs test binaries one after another).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use farm_queue::Topology;
use farm_tests::amqp::broker;
use farm_tests::farm::{plain, Extra, Farm, Proc};
use farm_tests::fixtures::{clip_30s, SMALL_LADDER};
use farm_tests::hls::check_ladder;
use farm_tests::s3::{s3, unique_prefix, BUCKET};
use farm_tests::services;

mod hostile;
mod lost_reports;
mod replicas;
mod stall;
mod submit;
mod swift;

/// The 30 s clip: 750 frames at 25 fps; per rendition three leading 2 s segments of 50
/// frames, then four 6 s segments of 150.
const FRAMES: u64 = 750;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    farm_tests::turn(&SERIAL)
}

/// A farm on PostgreSQL with the 30 s clip uploaded; `name` makes prefixes unique.
struct Case {
    farm: Farm,
    prefix: String,
}

impl Case {
    fn start(name: &str, workers: usize, chunk_seconds: f64, extra: Extra) -> Self {
        let prefix = unique_prefix(name);
        s3().put_file(&format!("{prefix}/in.mov"), &clip_30s()).unwrap();
        let farm = Farm::start_with(farm_tests::farm::POSTGRES, &prefix.replace('/', "-"), workers, chunk_seconds, extra);
        Self { farm, prefix }
    }

    fn submit(&self) -> String {
        let body = serde_json::json!({
            "source": format!("s3://{BUCKET}/{}/in.mov", self.prefix),
            "output": format!("s3://{BUCKET}/{}/out", self.prefix),
            "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
        });
        let (status, job) = self.farm.submit(&body.to_string());
        assert_eq!(status, 201, "{job}\n{}", self.farm.coordinator.log());
        job["id"].as_str().unwrap().to_string()
    }

    fn out(&self) -> String {
        format!("{}/out", self.prefix)
    }

    /// Waits for the job to end, checking on the way that every playlist only names
    /// segments that are fully written.
    fn wait_final(&self, id: &str, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let job = self.farm.job(id);
            if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
                return job;
            }
            playlists_name_only_written_segments(&self.out());
            if start.elapsed() > limit {
                return self.farm.wait_final(id, Duration::from_secs(1)); // fails with the logs
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The job succeeded and its output is whole ([`assert_whole`]).
    fn assert_output_whole(&self) {
        assert_whole(&self.out());
    }

    fn cleanup(&self) {
        broker().delete_farm_queues(&self.farm.prefix);
    }
}

/// The output under `out` is whole: ffprobe checks of every rendition, exact frame counts
/// of the 30 s clip, and exactly the segments the playlists name, no more, no fewer.
fn assert_whole(out: &str) {
    let local = tempfile::tempdir().unwrap();
    s3().download(out, local.path()).unwrap();
    let check = check_ladder(local.path(), FRAMES, 25.0, true).unwrap();
    for r in &check.renditions {
        let frames: Vec<u64> = r.segments.iter().map(|s| s.frames).collect();
        assert_eq!(frames, vec![50, 50, 50, 150, 150, 150, 150], "{}", r.name);
    }
    let named = named_segments(out);
    let stored: BTreeSet<String> = s3().keys(out).unwrap().into_iter().filter(|k| farm_contract::manifest::is_media_key(k)).collect();
    assert_eq!(named, stored, "segments in storage and segments in playlists differ");
}

/// Keys of the segments the media playlists under `out` name.
fn named_segments(out: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let master = format!("{out}/index.m3u8");
    for key in s3().keys(out).unwrap().into_iter().filter(|k| k.ends_with(".m3u8") && *k != master) {
        let Ok(text) = s3().get(&key) else { continue };
        let Ok(media) = m3u8_rs::parse_media_playlist_res(&text) else { continue };
        let dir = key.rsplit_once('/').map_or("", |(d, _)| d);
        for seg in media.segments {
            if let Some(map) = &seg.map {
                named.insert(format!("{dir}/{}", map.uri)); // an fMP4 init segment
            }
            named.insert(format!("{dir}/{}", seg.uri));
        }
    }
    named
}

/// Playlists are read first, then the listing: whatever a playlist names must be there.
fn playlists_name_only_written_segments(out: &str) {
    let named = named_segments(out);
    let stored: BTreeSet<String> = s3().keys(out).unwrap().into_iter().collect();
    let missing: Vec<&String> = named.iter().filter(|k| !stored.contains(*k)).collect();
    assert!(missing.is_empty(), "playlists name segments not written yet: {missing:?}");
}

/// The storage requests the worker with metrics on `port` retried after transport errors,
/// and its whole metrics page (for messages).
fn transport_retries(port: u16) -> (f64, String) {
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")).unwrap().text().unwrap();
    let retried = metrics
        .lines()
        .find(|l| l.starts_with("farm_worker_storage_request_retries_total{kind=\"transport\"}"))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
        .unwrap_or(0.0);
    (retried, metrics)
}

/// Waits until a log line holds every one of `needles`; returns that line.
fn wait_line(proc: &Proc, needles: &[&str], limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let log = plain(&proc.log());
        if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_string();
        }
        assert!(start.elapsed() < limit, "no line with {needles:?} after {limit:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `task_id=` of a log line.
fn task_id(line: &str) -> String {
    line.split_whitespace().find_map(|w| w.strip_prefix("task_id=")).expect("a task id").to_string()
}

#[test]
fn a_worker_killed_mid_task_is_replaced_and_the_job_succeeds() {
    let _serial = serial();
    // One task for the whole clip, two workers: one idles until the other dies.
    let case = Case::start("fault-sigkill", 2, 60.0, Extra::default());
    let id = case.submit();
    // Kill the worker on the video task as soon as it has written its first segments:
    // it dies with part of its output in storage.
    let line = {
        let start = Instant::now();
        loop {
            let hit = case.farm.workers.iter().enumerate().find_map(|(i, w)| {
                plain(&w.log()).lines().find(|l| l.contains("task started") && l.contains("Video")).map(|l| (i, l.to_string()))
            });
            if let Some(hit) = hit {
                break hit;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no video task started");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (victim, line) = line;
    let task = task_id(&line);
    let start = Instant::now();
    while !s3().keys(&case.out()).unwrap().iter().any(|k| k.contains("/360p/seg_")) {
        assert!(start.elapsed() < Duration::from_secs(60), "no segment written");
        std::thread::sleep(Duration::from_millis(20));
    }
    case.farm.workers[victim].signal("KILL");
    let victim_log = plain(&case.farm.workers[victim].log());
    assert!(!victim_log.contains(&format!("task succeeded task_id={task}")), "killed too late:\n{victim_log}");

    let done = case.wait_final(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");
    let survivor_log = plain(&case.farm.workers[1 - victim].log());
    assert!(
        survivor_log.contains(&format!("task succeeded task_id={task}")),
        "the killed worker's task {task} was not finished by the other worker:\n{survivor_log}"
    );
    case.assert_output_whole();
    case.cleanup();
}

#[test]
fn sigterm_hands_the_task_back_when_the_drain_time_runs_out_and_a_second_signal_exits_at_once() {
    let _serial = serial();
    // One worker that may drain for 1 s only; one video task of the whole clip.
    let extra = Extra { worker: vec![("FARM_DRAIN_SECONDS", "1".into())], ..Default::default() };
    let mut case = Case::start("fault-sigterm", 1, 60.0, extra);
    let id = case.submit();
    let line = wait_line(&case.farm.workers[0], &["task started", "Video"], Duration::from_secs(60));
    let task = task_id(&line);
    std::thread::sleep(Duration::from_millis(500));
    case.farm.workers[0].signal("TERM");
    let (status, took) = case.farm.workers[0].wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "drain of 1 s took {took:?}");
    let log = plain(&case.farm.workers[0].log());
    assert!(log.contains("task handed back for another try"), "{log}");
    // No partial result: the stopped chunk wrote no part manifest.
    let parts: Vec<String> = s3().keys(&format!("{}/parts", case.out())).unwrap();
    assert!(parts.iter().all(|k| !k.contains("/parts/video") && !k.contains("/parts/audio")), "a stopped task published its part: {parts:?}");

    // A second worker takes the task back; two signals make it exit at once.
    let second = case.farm.add_worker(&[]);
    wait_line(&case.farm.workers[second], &["task started", &task], Duration::from_secs(60));
    case.farm.workers[second].signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    case.farm.workers[second].signal("TERM");
    let (status, took) = case.farm.workers[second].wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "a second signal exits with a failure status: {status:?}");
    assert!(took < Duration::from_secs(3), "the second signal took {took:?}");

    // A third finishes the job.
    case.farm.add_worker(&[]);
    let done = case.wait_final(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");
    case.assert_output_whole();
    case.cleanup();
}

#[test]
fn the_farm_rides_out_a_broker_restart() {
    let _serial = serial();
    let case = Case::start("fault-broker", 2, 6.0, Extra::default());
    let id = case.submit();
    wait_line(&case.farm.workers[0], &["task started"], Duration::from_secs(60));
    services::stop_rabbitmq();
    // While the broker is away the API says so and accepts nothing.
    let body = serde_json::json!({
        "source": format!("s3://{BUCKET}/{}/in.mov", case.prefix),
        "output": format!("s3://{BUCKET}/{}/other", case.prefix),
    });
    let (status, reply) = case.farm.submit(&body.to_string());
    assert_eq!(status, 503, "{reply}");
    assert!(reply["error"].as_str().unwrap_or("").contains("broker"), "{reply}");
    let ready = case.farm.http.get(format!("{}/readyz", case.farm.base)).send().unwrap();
    assert_eq!(ready.status(), 503);
    std::thread::sleep(Duration::from_secs(2));
    services::start_rabbitmq();

    let done = case.wait_final(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}\n{}", case.farm.coordinator.log());
    case.assert_output_whole();
    for w in &case.farm.workers {
        assert!(plain(&w.log()).contains("broker connection lost"), "{}", w.log());
    }
    // The job refused during the outage left nothing behind.
    assert!(s3().keys(&format!("{}/other", case.prefix)).unwrap().is_empty());
    case.cleanup();
}

#[test]
fn a_storage_outage_is_ridden_out_with_retries() {
    let _serial = serial();
    // One worker, with its metrics endpoint: the outage falls inside its task.
    let mut case = Case::start("fault-storage", 0, 6.0, Extra::default());
    let port = farm_tests::farm::free_port();
    case.farm.add_worker(&[("FARM_WORKER_LISTEN", format!("127.0.0.1:{port}"))]);
    let id = case.submit();
    wait_line(&case.farm.workers[0], &["task started"], Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    services::stop_s3();
    std::thread::sleep(Duration::from_secs(8));
    services::start_s3();
    let done = case.wait_final(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");
    case.assert_output_whole();
    let (retried, metrics) = transport_retries(port);
    assert!(retried >= 1.0, "the S3 client's retries are not counted:\n{metrics}");
    case.cleanup();
}

#[test]
fn a_storage_outage_longer_than_the_retry_bound_fails_the_job_as_retryable_after_three_attempts() {
    let _serial = serial();
    let bound = vec![("FARM_STORAGE_RETRY_SECONDS", "2".to_string())];
    let port = farm_tests::farm::free_port();
    let mut worker = bound.clone();
    worker.push(("FARM_WORKER_LISTEN", format!("127.0.0.1:{port}")));
    let extra = Extra { worker, coordinator: bound };
    let case = Case::start("fault-storage-long", 1, 60.0, extra);
    let id = case.submit();
    wait_line(&case.farm.workers[0], &["task started"], Duration::from_secs(60));
    services::stop_s3();
    let started = Instant::now();
    // Each attempt gives up after about 2 s of retries; three attempts, then the job fails.
    let done = case.farm.wait_final(&id, Duration::from_secs(120));
    let took = started.elapsed();
    services::start_s3();
    assert_eq!(done["state"], "failed", "{done}");
    let error = done["error"].as_str().unwrap_or("");
    assert!(error.contains("gave up after 3 attempts"), "{done}");
    assert!(error.contains("127.0.0.1:8333") || error.contains("connect"), "the reason names the storage trouble: {done}");
    assert!(took < Duration::from_secs(90), "bounded: {took:?}");
    let log = plain(&case.farm.workers[0].log());
    assert_eq!(log.matches("task handed back for another try").count(), 2, "{log}");
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")).unwrap().text().unwrap();
    assert!(metrics.contains("farm_worker_task_retries_total{kind=\"storage\"} 2"), "{metrics}");
    case.cleanup();
}

#[test]
fn a_coordinator_down_while_the_tasks_finish_completes_the_job_on_restart() {
    let _serial = serial();
    let mut case = Case::start("fault-coordinator", 2, 6.0, Extra::default());
    let id = case.submit();
    wait_line(&case.farm.workers[0], &["task started"], Duration::from_secs(60));
    case.farm.stop_coordinator();
    // Every task (5 chunks) ends while the coordinator is away.
    let start = Instant::now();
    while case.farm.workers.iter().map(|w| plain(&w.log()).matches("task succeeded").count()).sum::<usize>() < 5 {
        assert!(start.elapsed() < Duration::from_secs(300), "tasks did not finish");
        std::thread::sleep(Duration::from_millis(250));
    }
    case.farm.start_coordinator();
    let done = case.wait_final(&id, Duration::from_secs(60));
    assert_eq!(done["state"], "succeeded", "{done}");
    case.assert_output_whole();
    case.cleanup();
}

#[test]
fn a_frozen_worker_s_task_is_reclaimed_after_the_stall_time() {
    let _serial = serial();
    let extra = Extra { coordinator: vec![("FARM_TASK_STALL_SECONDS", "5".into())], ..Default::default() };
    let mut case = Case::start("fault-frozen", 1, 60.0, extra);
    let id = case.submit();
    wait_line(&case.farm.workers[0], &["task started", "Video"], Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    case.farm.workers[0].signal("STOP");
    case.farm.add_worker(&[]);
    let done = case.wait_final(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");
    let log = plain(&case.farm.coordinator.log());
    assert!(log.contains("stalled task handed out again"), "{log}");
    case.assert_output_whole();
    // The frozen worker, resumed, writes at most once more in each rendition: the later
    // attempt's claim refuses its next write. The once is the fence's window
    // (docs/faults.md): an encoder thread frozen between checking its claim and the write
    // the check allowed makes that write when it is thawed (it happened in CI, frozen just
    // before an init segment; and in another run two renditions' encoders at once, each
    // before its segment 1). Without the fence it would write the rest of its minute of
    // segments. Its encode would write the same bytes (e2e `repeatable`), so the job's
    // segments are removed first: any late write shows as a segment back in storage.
    let media = |out: &str| s3().keys(out).unwrap().into_iter().filter(|k| farm_contract::manifest::is_media_key(k)).collect::<Vec<_>>();
    let published = media(&case.out());
    assert!(!published.is_empty());
    for key in &published {
        s3().delete(key).unwrap();
    }
    case.farm.workers[0].signal("CONT");
    let ended = ["task superseded", "task succeeded", "task handed back", "task failed for good", "broker connection lost"];
    let start = Instant::now();
    let log = loop {
        let log = plain(&case.farm.workers[0].log());
        let after_thaw = log.lines().skip_while(|l| !(l.contains("task started") && l.contains("Video")));
        if after_thaw.clone().any(|l| ended.iter().any(|e| l.contains(e))) {
            break log;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the resumed worker's task did not end:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let rewritten = media(&case.out());
    let renditions: std::collections::HashSet<&str> = rewritten.iter().map(|key| key.rsplit('/').nth(1).unwrap_or_default()).collect();
    assert!(renditions.len() == rewritten.len(), "the resumed worker wrote {} segments after its task was handed out again: {rewritten:?}\n{log}", rewritten.len());
    assert!(log.contains("task superseded"), "{log}");
    case.cleanup();
}

#[test]
fn a_task_past_its_deadline_fails_its_job_after_the_last_attempt_and_is_dead_lettered() {
    let _serial = serial();
    let extra = Extra { worker: vec![("FARM_TASK_DEADLINE_SECONDS", "1".into())], ..Default::default() };
    let case = Case::start("fault-deadline", 1, 60.0, extra);
    let id = case.submit();
    let done = case.farm.wait_final(&id, Duration::from_secs(120));
    assert_eq!(done["state"], "failed", "{done}");
    let error = done["error"].as_str().unwrap_or("");
    assert!(error.contains("gave up after 3 attempts") && error.contains("1 s deadline"), "{done}");
    let b = broker();
    let dead = Topology::new(&case.farm.prefix).dead_queue();
    let (body, headers) = b.take(&dead).unwrap().expect("a dead letter");
    assert!(headers.contains("x-farm-error=gave up after 3 attempts"), "{headers}");
    assert!(headers.contains(&format!("x-farm-job={id}")), "{headers}");
    assert!(String::from_utf8_lossy(&body).contains(&id));
    // The failed job is never presented as complete: no playlist is closed with ENDLIST
    // (the live EVENT playlists name only segments fully written).
    playlists_name_only_written_segments(&case.out());
    for key in s3().keys(&case.out()).unwrap().iter().filter(|k| k.ends_with(".m3u8")) {
        let text = String::from_utf8(s3().get(key).unwrap()).unwrap();
        assert!(!text.contains("#EXT-X-ENDLIST"), "{key} of a failed job is closed:\n{text}");
    }
    case.cleanup();
}

#[test]
fn a_task_whose_worker_dies_every_time_is_dead_lettered_and_fails_its_job() {
    let _serial = serial();
    let mut case = Case::start("fault-crashloop", 0, 60.0, Extra::default());
    let id = case.submit();
    // Four workers in turn, each killed a moment into the video task: the broker's
    // delivery limit dead-letters it and the coordinator fails the job.
    let mut kills = 0;
    let start = Instant::now();
    while case.farm.job(&id)["state"] != "failed" {
        assert!(start.elapsed() < Duration::from_secs(240), "job not failed after {kills} kills: {}", case.farm.job(&id));
        let w = case.farm.add_worker(&[]);
        let waited = Instant::now();
        let started = loop {
            if plain(&case.farm.workers[w].log()).lines().any(|l| l.contains("task started") && l.contains("Video")) {
                break true;
            }
            if case.farm.job(&id)["state"] == "failed" || waited.elapsed() > Duration::from_secs(30) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if started {
            std::thread::sleep(Duration::from_millis(300));
            let _ = case.farm.workers[w].child.kill();
            let _ = case.farm.workers[w].child.wait();
            kills += 1;
        }
    }
    let done = case.farm.job(&id);
    assert!(
        done["error"].as_str().unwrap_or("").contains("delivered too many times"),
        "{done}\n{}",
        case.farm.coordinator.log()
    );
    assert!(kills >= 3, "{kills} kills");
    case.cleanup();
}
