//! The farm end to end: HTTP API -> database -> RabbitMQ -> two worker processes -> S3.

use std::time::Duration;

use farm_contract::task::Priority;
use farm_queue::Topology;
use farm_tests::amqp::broker;
use farm_tests::farm::Farm;
use farm_tests::fixtures::{clip_30s, make, SMALL_LADDER};
use farm_tests::hls::check_ladder;
use farm_tests::s3::{s3, unique_prefix, BUCKET};


fn source_15s() -> std::path::PathBuf {
    make(
        "ranges-h264.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30000/1001:duration=15",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=15",
            "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "48",
            "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-ac", "2",
        ],
    )
    .unwrap()
}

/// Submits `{prefix}/in.mov` with the small ladder; returns the job id.
fn submit_small(farm: &Farm, prefix: &str) -> String {
    let body = serde_json::json!({
        "source": format!("s3://{BUCKET}/{prefix}/in.mov"),
        "output": format!("s3://{BUCKET}/{prefix}/out"),
        "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
    });
    let (status, job) = farm.submit(&body.to_string());
    assert_eq!(status, 201, "{job}");
    job["id"].as_str().unwrap().to_string()
}

/// Submits a 15 s source cut into 6 s chunks (three tasks, each with its audio) to a farm
/// with two workers, and checks the ladder it leaves in S3.
fn job_split_over_two_workers(database_url: &str, name: &str) {
    let s3 = s3();
    let prefix = unique_prefix(name);
    let queue_prefix = prefix.replace('/', "-");
    s3.put_file(&format!("{prefix}/in.mov"), &source_15s()).unwrap();
    let farm = Farm::start(database_url, &queue_prefix, 2, 6.0);
    let body = serde_json::json!({
        "source": format!("s3://{BUCKET}/{prefix}/in.mov"),
        "output": format!("s3://{BUCKET}/{prefix}/out/"),
        "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
        "idempotency_key": format!("{prefix}-key"),
    });
    let (status, job) = farm.submit(&body.to_string());
    assert_eq!(status, 201, "{job}\n{}", farm.coordinator.log());
    let id = job["id"].as_str().unwrap().to_string();
    let tasks = job["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3, "three 6 s chunks: {job}");
    assert!(tasks.iter().all(|t| t["part"]["audio"] == true), "each chunk encodes its audio: {job}");
    // The same idempotency key gives the same job, not a second one.
    let (again, same) = farm.submit(&body.to_string());
    assert_eq!((again, same["id"].as_str()), (200, Some(id.as_str())));

    let done = farm.wait_final(&id, Duration::from_secs(240));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["progress"], 1.0);
    let master = format!("s3://{BUCKET}/{prefix}/out/index.m3u8");
    assert_eq!(done["master_playlist"], master.as_str());
    // Both workers took tasks.
    for (i, w) in farm.workers.iter().enumerate() {
        assert!(w.log().contains("task succeeded"), "worker {i} did no task:\n{}", w.log());
    }
    // The worker that took a later chunk while the first ran on the same CPUs did not start
    // encoding it before the job was playable (it waited, or the job was playable already
    // when it looked: the first chunk of this small job takes about a second).
    let stamp = |line: &str| line.split_whitespace().next().unwrap_or_default().to_string();
    let coordinator = farm_tests::farm::plain(&farm.coordinator.log());
    let playable = coordinator.lines().find(|l| l.contains("job playable")).map(stamp).expect("a job playable line");
    let mut later = 0;
    for w in &farm.workers {
        let log = farm_tests::farm::plain(&w.log());
        let mut lines = log.lines();
        while let Some(line) = lines.next() {
            if line.contains("task started") && !line.contains("start: 0.0,") {
                let opened = lines.find(|l| l.contains("source opened")).map(stamp).expect("the chunk opened its source");
                assert!(opened >= playable, "a later chunk started at {opened}, the job was playable at {playable}:\n{log}");
                later += 1;
            }
        }
    }
    assert_eq!(later, 2, "two later chunks");
    let local = tempfile::tempdir().unwrap();
    s3.download(&format!("{prefix}/out"), local.path()).unwrap();
    let check = check_ladder(local.path(), 450, 30000.0 / 1001.0, true).unwrap();
    let frames: Vec<u64> = check.renditions[0].segments.iter().map(|s| s.frames).collect();
    // three leading 2 s segments (60, 60, 60 frames at 29.97), then 6 s ones
    assert_eq!(frames, vec![60, 60, 60, 180, 90], "segments continuous across chunk joins");
    // The chunks' audio joins at 6 s and 12 s are not heard: no worse than the codec elsewhere.
    let decoded = farm_tests::sound::first_channel(&local.path().join("audio/index.m3u8")).unwrap();
    let original = farm_tests::sound::first_channel(&source_15s()).unwrap();
    farm_tests::sound::join_errors(&decoded, &original, &[6.0, 12.0]).unwrap().check(3.0).unwrap();
    assert!((check.audio_seconds.unwrap() - 15.0).abs() < 0.1, "{:?}", check.audio_seconds);
    broker().delete_farm_queues(&queue_prefix);
}

#[test]
fn a_job_split_over_two_workers_succeeds_with_sqlite() {
    let db = tempfile::tempdir().unwrap();
    let url = farm_tests::farm::sqlite_url(db.path());
    job_split_over_two_workers(&url, "farm-sqlite");
}

#[test]
fn a_job_split_over_two_workers_succeeds_with_postgres() {
    job_split_over_two_workers(farm_tests::farm::POSTGRES, "farm-pg");
}

#[test]
fn bad_requests_get_a_4xx_and_enqueue_nothing() {
    let s3 = s3();
    let prefix = unique_prefix("bad-requests");
    let queue_prefix = prefix.replace('/', "-");
    let db = tempfile::tempdir().unwrap();
    let farm = Farm::start(&farm_tests::farm::sqlite_url(db.path()), &queue_prefix, 0, 60.0);
    s3.put_file(&format!("{prefix}/in.mov"), &source_15s()).unwrap();
    let ok_source = format!("s3://{BUCKET}/{prefix}/in.mov");
    let out = format!("s3://{BUCKET}/{prefix}/out");
    let cases = [
        ("{not json".to_string(), 400, "invalid job request"),
        (serde_json::json!({"source": ok_source, "output": out, "colour": "red"}).to_string(), 400, "unknown field"),
        (serde_json::json!({"source": "s3://elsewhere/clip.mov", "output": out}).to_string(), 403, "not inside an allowed location"),
        (serde_json::json!({"source": ok_source, "output": format!("s3://{BUCKET}/{prefix}/../x")}).to_string(), 400, "'..'"),
        (serde_json::json!({"source": "http://example.com/clip.mov", "output": out}).to_string(), 400, "not a location"),
        (serde_json::json!({"source": format!("s3://{BUCKET}/{prefix}/missing.mov"), "output": out}).to_string(), 422, "does not exist"),
        (serde_json::json!({"source": ok_source, "output": out, "priority": "urgent"}).to_string(), 400, "unknown variant"),
        (serde_json::json!({"source": ok_source, "output": out, "ladder_mode": "clever"}).to_string(), 400, "unknown variant"),
        (serde_json::json!({"source": ok_source, "output": out, "segment_format": "webm"}).to_string(), 400, "unknown variant `webm`, expected `ts` or `fmp4`"),
        (serde_json::json!({"source": ok_source, "output": out, "codecs": ["h264", "hevc"], "segment_format": "ts"}).to_string(), 400, "the HEVC ladder needs \"segment_format\": \"fmp4\""),
    ];
    for (body, code, message) in cases {
        let (status, reply) = farm.submit(&body);
        assert_eq!(status, code, "{body}: {reply}");
        assert!(reply["error"].as_str().unwrap_or("").contains(message), "{body}: {reply}");
    }
    let big = format!(r#"{{"source": "{}", "output": "{}"}}"#, "x".repeat(100_000), out);
    assert_eq!(farm.submit(&big).0, 413);
    let b = broker();
    let t = Topology::new(&queue_prefix);
    assert_eq!(b.depth(&t.queue(Priority::Normal)).unwrap(), 0);
    assert_eq!(b.depth(&t.queue(Priority::High)).unwrap(), 0);
    // health, readiness, metrics, the API description
    let get = |path: &str| farm.http.get(format!("{}{path}", farm.base)).send().unwrap();
    assert_eq!(get("/healthz").status(), 200);
    assert_eq!(get("/readyz").status(), 200);
    let metrics = get("/metrics").text().unwrap();
    assert!(metrics.contains("farm_jobs_rejected_total 10"), "{metrics}");
    let openapi: serde_json::Value = get("/openapi.json").json().unwrap();
    assert!(openapi["paths"]["/v1/jobs/{id}"]["delete"].is_object());
    assert_eq!(get("/v1/jobs/nope").status(), 404);

    // Without the bearer token only health, readiness and metrics answer.
    let anonymous = reqwest::blocking::Client::new();
    let job = serde_json::json!({"source": ok_source, "output": out}).to_string();
    for token in [None, Some("Bearer not-the-token"), Some("Basic Zm9vOmJhcg==")] {
        let mut post = anonymous.post(format!("{}/v1/jobs", farm.base)).body(job.clone());
        let mut list = anonymous.get(format!("{}/v1/jobs", farm.base));
        if let Some(t) = token {
            post = post.header("authorization", t);
            list = list.header("authorization", t);
        }
        for r in [post.send().unwrap(), list.send().unwrap()] {
            assert_eq!(r.status(), 401, "{token:?}");
            assert!(r.text().unwrap().contains("token"), "{token:?}");
        }
    }
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(anonymous.get(format!("{}{open}", farm.base)).send().unwrap().status(), 200, "{open}");
    }
    assert_eq!(b.depth(&t.queue(Priority::Normal)).unwrap(), 0, "an unauthenticated POST enqueued work");
    b.delete_farm_queues(&queue_prefix);
}

#[test]
fn the_master_playlist_is_playable_while_the_job_runs() {
    let s3 = s3();
    let prefix = unique_prefix("live");
    let queue_prefix = prefix.replace('/', "-");
    s3.put_file(&format!("{prefix}/in.mov"), &clip_30s()).unwrap();
    let db = tempfile::tempdir().unwrap();
    // One worker, 6 s chunks: five video tasks one after the other.
    let farm = Farm::start(&farm_tests::farm::sqlite_url(db.path()), &queue_prefix, 1, 6.0);
    let id = submit_small(&farm, &prefix);

    let started = std::time::Instant::now();
    let mut live_seen = None;
    while live_seen.is_none() && started.elapsed() < Duration::from_secs(120) {
        let state = farm.job(&id)["state"].as_str().unwrap().to_string();
        let local = tempfile::tempdir().unwrap();
        if s3.download(&format!("{prefix}/out"), local.path()).is_ok() && local.path().join("index.m3u8").exists() {
            let master = farm_tests::hls::read_master(local.path()).unwrap();
            let mut all_event = !master.variants.is_empty();
            let mut targets = Vec::new();
            for v in &master.variants {
                let media = farm_tests::hls::read_media(&local.path().join(&v.uri)).unwrap();
                all_event &= matches!(media.playlist_type, Some(m3u8_rs::MediaPlaylistType::Event))
                    && !media.end_list
                    && !media.segments.is_empty();
                targets.push((v.uri.clone(), media.target_duration));
            }
            // Only count it if the job was still running after we read the playlists.
            let still_running = farm.job(&id)["state"] == "running" || state == "queued";
            if all_event && still_running {
                live_seen = Some((master.variants.len(), started.elapsed(), targets));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (variants, after, live_targets) =
        live_seen.unwrap_or_else(|| panic!("never saw EVENT playlists while the job ran:\n{}", farm.coordinator.log()));
    assert_eq!(variants, 3);
    let done = farm.wait_final(&id, Duration::from_secs(240));
    assert_eq!(done["state"], "succeeded", "{done}");
    let local = tempfile::tempdir().unwrap();
    s3.download(&format!("{prefix}/out"), local.path()).unwrap();
    check_ladder(local.path(), 750, 25.0, true).unwrap();
    // The EVENT playlists became VOD ones with the same target duration (RFC 8216 6.2.1).
    for (uri, target) in live_targets {
        let vod = farm_tests::hls::read_media(&local.path().join(&uri)).unwrap();
        assert!(vod.end_list, "{uri}");
        assert_eq!(vod.target_duration, target, "{uri}: the target duration changed when the job ended");
    }
    eprintln!("playable {after:?} after submission");
    broker().delete_farm_queues(&queue_prefix);
}

#[test]
fn a_cancelled_job_stops_and_publishes_nothing_more() {
    let s3 = s3();
    let prefix = unique_prefix("cancel");
    let queue_prefix = prefix.replace('/', "-");
    s3.put_file(&format!("{prefix}/in.mov"), &clip_30s()).unwrap();
    let db = tempfile::tempdir().unwrap();
    let farm = Farm::start(&farm_tests::farm::sqlite_url(db.path()), &queue_prefix, 1, 6.0);
    let id = submit_small(&farm, &prefix);
    let b = broker();
    assert!(b.wait_for(Duration::from_secs(60), || farm.job(&id)["state"] == "running"), "{}", farm.coordinator.log());

    let r = farm.http.delete(format!("{}/v1/jobs/{id}", farm.base)).send().unwrap();
    assert_eq!(r.status(), 200);
    let cancelled: serde_json::Value = r.json().unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    // The worker drops the running task and the queued ones: the queue empties quickly.
    let t = Topology::new(&queue_prefix);
    assert!(
        b.wait_for(Duration::from_secs(30), || b.depth(&t.queue(Priority::Normal)).unwrap() == 0),
        "tasks still queued: {}",
        farm.workers[0].log()
    );
    assert!(b.wait_for(Duration::from_secs(10), || farm.workers[0].log().contains("job cancelled: task dropped")));
    let snapshot = |p: &str| -> Vec<String> { s3.keys(&format!("{p}/out")).unwrap() };
    let before = snapshot(&prefix);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(snapshot(&prefix), before, "nothing more is written after cancellation");
    let chunks_done = before.iter().filter(|k| k.contains("/parts/video-")).count();
    assert!(chunks_done < 5, "the job was stopped before its five chunks were done: {before:?}");
    assert_eq!(farm.job(&id)["state"], "cancelled");
    // A second DELETE is a conflict; the job stays cancelled.
    assert_eq!(farm.http.delete(format!("{}/v1/jobs/{id}", farm.base)).send().unwrap().status(), 409);
    b.delete_farm_queues(&queue_prefix);
}

#[test]
fn the_embedded_farm_needs_no_broker_and_no_s3() {
    let data = tempfile::tempdir().unwrap();
    let farm = Farm::embedded(data.path(), 2, 6.0);
    let out = data.path().join("out/clip");
    let body = serde_json::json!({
        "source": source_15s().display().to_string(),
        "output": out.display().to_string(),
        "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
    });
    let (status, job) = farm.submit(&body.to_string());
    assert_eq!(status, 201, "{job}\n{}", farm.coordinator.log());
    let id = job["id"].as_str().unwrap().to_string();
    let done = farm.wait_final(&id, Duration::from_secs(240));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["master_playlist"], out.join("index.m3u8").display().to_string());
    assert!(farm.coordinator.log().contains("running the embedded farm"));
    assert!(data.path().join("farm.db").exists(), "job state in the data folder's SQLite database");
    let check = check_ladder(&out, 450, 30000.0 / 1001.0, true).unwrap();
    let frames: Vec<u64> = check.renditions[0].segments.iter().map(|s| s.frames).collect();
    assert_eq!(frames, vec![60, 60, 60, 180, 90]);
    // Without a master key the job is plain: it is not shared (a share link opens keys).
    let share = farm.http.post(format!("{}/v1/jobs/{id}/shares", farm.base)).json(&serde_json::json!({"viewer": "colourist", "expires_in": 600})).send().unwrap();
    assert_eq!(share.status(), 409);
    assert!(share.text().unwrap().contains("not encrypted"));
}

#[test]
fn the_embedded_farm_finishes_its_jobs_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut farm = Farm::embedded(data.path(), 1, 60.0);
    let out = data.path().join("out/clip");
    let body = serde_json::json!({
        "source": clip_30s().display().to_string(),
        "output": out.display().to_string(),
        "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
    });
    let (status, job) = farm.submit(&body.to_string());
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    // Killed while its in-process queue still holds work: the queue is gone with it.
    std::thread::sleep(Duration::from_millis(300));
    farm.stop_coordinator();
    assert_ne!(farm.job_state_on_disk(&id), "succeeded", "the job finished before the kill; the test proves nothing");
    farm.start_coordinator();
    let done = farm.wait_final(&id, Duration::from_secs(240));
    assert_eq!(done["state"], "succeeded", "{done}\n{}", farm.coordinator.log());
    assert!(farm.coordinator.log().contains("unfinished tasks queued again"), "{}", farm.coordinator.log());
    check_ladder(&out, 750, 25.0, true).unwrap();
}

/// The value of the sample of `name` with all of `labels`, from Prometheus' text format.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        (metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))).then(|| value.parse().ok())?
    })
}

/// The coordinator's `farm_queue_unacknowledged` for `queue` once it reads `want`, or
/// after 30 s: it comes from RabbitMQ's management statistics, which lag by up to 5 s.
fn unacknowledged_settles_at(farm: &Farm, queue: &str, want: f64) -> f64 {
    let started = std::time::Instant::now();
    loop {
        let text = farm.http.get(format!("{}/metrics", farm.base)).send().unwrap().text().unwrap();
        let n = sample(&text, "farm_queue_unacknowledged", &[("queue", queue)]).unwrap_or(-1.0);
        if n == want || started.elapsed() > Duration::from_secs(30) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn coordinator_and_workers_report_metrics_of_a_job() {
    let s3 = s3();
    let prefix = unique_prefix("metrics");
    let queue_prefix = prefix.replace('/', "-");
    s3.put_file(&format!("{prefix}/in.mov"), &source_15s()).unwrap();
    let db = tempfile::tempdir().unwrap();
    let url = farm_tests::farm::sqlite_url(db.path());
    let mut farm = Farm::start_with(&url, &queue_prefix, 0, 6.0, farm_tests::farm::Extra::rabbitmq_management());
    let port = farm_tests::farm::free_port();
    farm.add_worker(&[("FARM_WORKER_LISTEN", format!("127.0.0.1:{port}"))]);
    let id = submit_small(&farm, &prefix);
    let normal = format!("{queue_prefix}.tasks.normal");
    let done = farm.wait_final(&id, Duration::from_secs(240));
    assert_eq!(done["state"], "succeeded", "{done}");

    let worker: String = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")).unwrap().text().unwrap();
    let w = |name: &str, labels: &[(&str, &str)]| sample(&worker, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in\n{worker}"));
    assert_eq!(w("farm_worker_tasks_total", &[("part", "video"), ("outcome", "succeeded")]), 3.0);
    assert_eq!(w("farm_worker_frames_encoded_total", &[("rendition", "360p")]), 450.0);
    assert!((w("farm_worker_media_encoded_seconds_total", &[("rendition", "audio")]) - 15.0).abs() < 0.1);
    assert!(w("farm_worker_storage_bytes_total", &[("direction", "written")]) > 100_000.0);
    assert!(w("farm_worker_storage_bytes_total", &[("direction", "read")]) > 100_000.0);
    assert!(w("farm_worker_source_requests_total", &[]) >= 3.0, "at least one GET per task");
    assert_eq!(w("farm_worker_busy", &[]), 0.0);
    assert_eq!(w("farm_worker_segment_seconds_count", &[("kind", "video")]), 15.0, "five segments (three leading 2 s ones) of three renditions");
    assert_eq!(w("farm_worker_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert_eq!(reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")).unwrap().status(), 200);

    let coordinator = farm.http.get(format!("{}/metrics", farm.base)).send().unwrap().text().unwrap();
    let c = |name: &str, labels: &[(&str, &str)]| sample(&coordinator, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in\n{coordinator}"));
    assert_eq!(c("farm_jobs", &[("state", "succeeded")]), 1.0);
    assert_eq!(c("farm_jobs", &[("state", "running")]), 0.0);
    assert_eq!(c("farm_jobs_finished_total", &[("outcome", "succeeded")]), 1.0);
    assert_eq!(c("farm_job_duration_seconds_count", &[("outcome", "succeeded")]), 1.0);
    assert_eq!(c("farm_job_time_to_playable_seconds_count", &[]), 1.0);
    assert_eq!(c("farm_http_requests_total", &[("route", "/v1/jobs"), ("method", "POST"), ("status", "201")]), 1.0);
    assert!(c("farm_http_requests_total", &[("route", "/v1/jobs/{id}"), ("method", "GET"), ("status", "200")]) >= 1.0);
    assert_eq!(c("farm_queue_messages", &[("queue", &format!("{queue_prefix}.tasks.normal"))]), 0.0);
    assert_eq!(c("farm_queue_messages", &[("queue", &format!("{queue_prefix}.tasks.dead"))]), 0.0);
    assert_eq!(unacknowledged_settles_at(&farm, &normal, 0.0), 0.0, "a task left unacknowledged");
    assert!(!coordinator.contains(&id), "a job id in a label");

    // A task held unacknowledged (as a worker holds the one it runs) shows in the metrics
    // once RabbitMQ's statistics catch up (every 5 s by default).
    for w in &mut farm.workers {
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
    let b = broker();
    b.publish(&format!("{queue_prefix}.tasks"), "normal", b"held by the test").unwrap();
    let held = b.rt.block_on(b.channel.basic_get(normal.as_str().into(), lapin::options::BasicGetOptions { no_ack: false })).unwrap();
    assert!(held.is_some());
    assert_eq!(unacknowledged_settles_at(&farm, &normal, 1.0), 1.0, "the held task is not counted as unacknowledged");
    b.delete_farm_queues(&queue_prefix);
}
