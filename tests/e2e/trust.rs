//! The trust boundaries of issue 14, each against the real services, each a defect that
//! the code before the fix let through (the test names say which).

use std::path::Path;
use std::time::{Duration, Instant};

use farm_contract::task::{Priority, TaskPart};
use farm_queue::Topology;
use farm_tests::amqp::broker;
use farm_tests::farm::{free_port, plain, sqlite_url, Extra, Farm, Proc};
use farm_tests::fixtures::{make, SMALL_LADDER};
use farm_tests::keys::{task_key, task_key_env};
use farm_tests::s3::{s3, unique_prefix, BUCKET};
use farm_tests::worker::{coordinator_bin, worker_bin};

/// A 3 s H.264 clip with sound, quick to probe and to encode.
fn short_clip() -> std::path::PathBuf {
    make(
        "trust-3s.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=3",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
        ],
    )
    .unwrap()
}

fn job(source: &str, output: &str) -> String {
    serde_json::json!({"source": source, "output": output, "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap()}).to_string()
}

/// Defect 1: `/x/ingest/../other/clip.mov` with `FARM_ALLOWED_SOURCES=/x/ingest/` was
/// accepted, and its ladder written to `/x/review/../../anywhere`; symlinks and string
/// prefixes (`s3://farm-test` allowing `s3://farm-test-finance`) passed too.
#[test]
fn paths_that_leave_the_allowed_locations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    for sub in ["ingest", "other", "review"] {
        std::fs::create_dir_all(x.join(sub)).unwrap();
    }
    std::fs::copy(short_clip(), x.join("ingest/clip.mov")).unwrap();
    std::fs::copy(short_clip(), x.join("other/clip.mov")).unwrap();
    std::os::unix::fs::symlink(x.join("other"), x.join("ingest/link")).unwrap();
    std::os::unix::fs::symlink(x.join("other"), x.join("review/link")).unwrap();
    let (ingest, review) = (x.join("ingest"), x.join("review"));
    let farm = Farm::embedded_with(
        &dir.path().join("data"),
        1,
        60.0,
        &[
            ("FARM_ALLOWED_SOURCES", format!("{}/,s3://{BUCKET}/", ingest.display())),
            ("FARM_ALLOWED_OUTPUTS", format!("{}/", review.display())),
        ],
    );
    let p = |path: &Path| path.display().to_string();
    let cases = [
        (job(&format!("{}/../other/clip.mov", p(&ingest)), &format!("{}/../../anywhere", p(&review))), 400, "'..'"),
        (job(&p(&ingest.join("clip.mov")), &format!("{}/../../anywhere", p(&review))), 400, "'..'"),
        (job(&p(&ingest.join("link/clip.mov")), &p(&review.join("out"))), 403, "not inside an allowed location"),
        (job(&p(&ingest.join("clip.mov")), &p(&review.join("link/out"))), 403, "not inside an allowed location"),
        (job(&format!("s3://{BUCKET}-finance/clip.mov"), &p(&review.join("out"))), 403, "not inside an allowed location"),
        (job(&format!("{}-other/clip.mov", p(&ingest)), &p(&review.join("out"))), 403, "not inside an allowed location"),
    ];
    for (body, status, says) in cases {
        let (got, answer) = farm.submit(&body);
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap_or("").contains(says), "{body}: {answer}");
    }
    // A path outside answers the same whether it exists or not.
    let (_, a) = farm.submit(&job(&p(&ingest.join("link/clip.mov")), &p(&review.join("out"))));
    let (_, b) = farm.submit(&job(&p(&ingest.join("link/none.mov")), &p(&review.join("out"))));
    assert_eq!(a["error"].as_str().unwrap().replace("clip", "none"), b["error"].as_str().unwrap());
    assert!(!dir.path().join("anywhere").exists() && !x.join("anywhere").exists(), "nothing written outside");
    assert!(!x.join("other/out").exists());
    // Inside, the same farm takes the job.
    let (got, answer) = farm.submit(&job(&p(&ingest.join("clip.mov")), &p(&review.join("out"))));
    assert_eq!(got, 201, "{answer}");
    let done = farm.wait_final(answer["id"].as_str().unwrap(), Duration::from_secs(120));
    assert_eq!(done["state"], "succeeded", "{done}");
}

/// Defect 2: a job submitted to the output of a cancelled job stayed `running` at 0 % (the
/// old cancel marker dropped its tasks); two live jobs could share an output.
#[test]
fn an_output_belongs_to_one_live_job_and_can_be_used_again() {
    let prefix = unique_prefix("reuse");
    s3().put_file(&format!("{prefix}/in.mov"), &short_clip()).unwrap();
    let db = tempfile::tempdir().unwrap();
    // No workers yet: the first job stays queued until cancelled.
    let mut farm = Farm::start(&sqlite_url(db.path()), &prefix.replace('/', "-"), 0, 60.0);
    let (source, output) = (format!("s3://{BUCKET}/{prefix}/in.mov"), format!("s3://{BUCKET}/{prefix}/out"));
    let (status, first) = farm.submit(&job(&source, &output));
    assert_eq!(status, 201, "{first}");
    let first = first["id"].as_str().unwrap().to_string();
    let (status, answer) = farm.submit(&job(&source, &output));
    assert_eq!(status, 409, "a second live job on the same output: {answer}");
    assert!(answer["error"].as_str().unwrap().contains(&first), "{answer}");
    assert_eq!(farm.cancel(&first), 200);
    let (status, second) = farm.submit(&job(&source, &output));
    assert_eq!(status, 201, "the output of a cancelled job is free again: {second}");
    let second = second["id"].as_str().unwrap().to_string();
    farm.add_worker(&[]);
    let done = farm.wait_final(&second, Duration::from_secs(120));
    assert_eq!(done["state"], "succeeded", "{done}");
    let keys = s3().keys(&format!("{prefix}/out")).unwrap();
    assert!(keys.iter().any(|k| k.ends_with("out/index.m3u8")), "{keys:?}");
    assert_eq!(farm.job(&first)["state"], "cancelled");
}

/// Defect 2, continued: a job taking an ended job's output must not be mixed with what that
/// job left (its live playlists list the segments they find), and must not touch anything
/// else under the prefix, another job's output in a sub-folder included.
#[test]
fn a_reused_output_is_replaced_and_nothing_else_is_touched() {
    let prefix = unique_prefix("replace");
    let long = make(
        "trust-8s.mov",
        &["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=8", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    )
    .unwrap();
    s3().put_file(&format!("{prefix}/long.mov"), &long).unwrap();
    s3().put_file(&format!("{prefix}/short.mov"), &short_clip()).unwrap();
    let db = tempfile::tempdir().unwrap();
    let farm = Farm::start(&sqlite_url(db.path()), &prefix.replace('/', "-"), 1, 60.0);
    let output = format!("s3://{BUCKET}/{prefix}/out");
    let run = |source: &str| {
        let (status, job) = farm.submit(&job(&format!("s3://{BUCKET}/{prefix}/{source}"), &output));
        assert_eq!(status, 201, "{job}");
        let done = farm.wait_final(job["id"].as_str().unwrap(), Duration::from_secs(120));
        assert_eq!(done["state"], "succeeded", "{done}");
    };
    run("long.mov");
    let segments = |keys: &[String]| keys.iter().filter(|k| farm_contract::manifest::is_media_key(k)).count();
    let before = s3().keys(&format!("{prefix}/out")).unwrap();
    for (key, data) in [("out/notes.txt", "the editor's notes"), ("out/A001/index.m3u8", "#EXTM3U\n")] {
        s3().put_file(&format!("{prefix}/{key}"), &write_temp(data)).unwrap();
    }
    run("short.mov");
    let after = s3().keys(&format!("{prefix}/out")).unwrap();
    assert!(segments(&after) < segments(&before), "the long job's extra segments are gone: {} then {}", segments(&before), segments(&after));
    let master = String::from_utf8(s3().get(&format!("{prefix}/out/index.m3u8")).unwrap()).unwrap();
    let first = master.lines().find(|l| l.ends_with("/index.m3u8") && !l.starts_with('#')).unwrap();
    let media = String::from_utf8(s3().get(&format!("{prefix}/out/{first}")).unwrap()).unwrap();
    let listed = media.matches("#EXTINF").count();
    let folder = first.split('/').next().unwrap();
    let stored = after.iter().filter(|k| k.contains(&format!("/out/{folder}/seg_"))).count();
    assert_eq!(listed, stored, "every stored segment is the short job's: {media}");
    for key in ["out/notes.txt", "out/A001/index.m3u8"] {
        assert!(after.contains(&format!("{prefix}/{key}")), "{key} was removed: {after:?}");
    }
}

fn write_temp(data: &str) -> std::path::PathBuf {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), data).unwrap();
    file.into_temp_path().keep().unwrap()
}

fn task(job: &str, source: &str, output: &str) -> Vec<u8> {
    farm_tests::fixtures::task_message(job, 0, source, output, TaskPart::Whole)
}

/// Defect 3: whoever could publish to the broker could make a worker read any object and
/// write anywhere: workers ran unsigned tasks and checked no location.
#[test]
fn unsigned_altered_or_misdirected_tasks_are_dead_lettered_with_the_reason() {
    let (b, s3) = (broker(), s3());
    let prefix = unique_prefix("untrusted");
    s3.put_file(&format!("{prefix}/in/clip.mov"), &short_clip()).unwrap();
    let topology = Topology::new(&prefix.replace('/', "-"));
    let mut env: Vec<(&str, String)> = s3.env().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    env.extend([
        ("AMQP_URL", farm_tests::amqp::URL.to_string()),
        ("FARM_QUEUE_PREFIX", topology.prefix.clone()),
        task_key_env(),
        ("FARM_ALLOWED_SOURCES", format!("s3://{BUCKET}/{prefix}/in")),
        ("FARM_ALLOWED_OUTPUTS", format!("s3://{BUCKET}/{prefix}/review")),
    ]);
    let served = Proc::spawn(worker_bin(), &["serve"], &env);
    assert!(b.wait_for(Duration::from_secs(20), || b.depth(&topology.queue(Priority::Normal)).is_ok()), "{}", served.log());
    let source = format!("s3://{BUCKET}/{prefix}/in/clip.mov");
    let exchange = topology.tasks_exchange();
    let unsigned = task("unsigned", &source, &format!("s3://{BUCKET}/{prefix}/review/a"));
    b.publish_when_routed(&exchange, "normal", &unsigned, None).unwrap();
    let original = task("altered", &source, &format!("s3://{BUCKET}/{prefix}/review/b"));
    let signature = task_key().sign(&original);
    let altered = task("altered", &source, &format!("s3://{BUCKET}/{prefix}/stolen/b"));
    b.publish_with_signature(&exchange, "normal", &altered, Some(&signature)).unwrap();
    b.publish(&exchange, "normal", &task("outside", &source, &format!("s3://{BUCKET}/{prefix}/stolen/c"))).unwrap();
    assert!(
        b.wait_for(Duration::from_secs(30), || b.depth(&topology.dead_queue()).unwrap() == 3),
        "dead letters: {:?}\n{}",
        b.depth(&topology.dead_queue()),
        served.log()
    );
    let reasons = b.take_all_headers(&topology.dead_queue());
    assert!(reasons.iter().any(|h| h.contains("carries no signature")), "{reasons:?}");
    assert!(reasons.iter().any(|h| h.contains("does not match its content")), "{reasons:?}");
    assert!(reasons.iter().any(|h| h.contains("output s3://") && h.contains("not inside an allowed location")), "{reasons:?}");
    // A signed task inside the allow-lists runs.
    b.publish(&exchange, "normal", &task("good", &source, &format!("s3://{BUCKET}/{prefix}/review/d"))).unwrap();
    assert!(
        b.wait_for(Duration::from_secs(60), || !s3.keys(&format!("{prefix}/review/d/parts")).unwrap().is_empty()),
        "{}",
        served.log()
    );
    let written = s3.keys(&prefix).unwrap();
    assert!(!written.iter().any(|k| k.contains("/stolen/") || k.contains("/review/a/") || k.contains("/review/b/")), "{written:?}");
    drop(served);
    b.delete_farm_queues(&topology.prefix);
}

/// Defects 4 and 6: the coordinator probed sources in its own process with no bound on time
/// (a storage server that never answers held the request for minutes), answered 422 to a
/// storage outage, and took any source length, rung count and x264 preset.
#[test]
fn probes_are_bounded_and_requests_over_the_limits_are_refused() {
    let prefix = unique_prefix("limits");
    s3().put_file(&format!("{prefix}/in.mov"), &short_clip()).unwrap();
    let db = tempfile::tempdir().unwrap();
    let farm = Farm::start_with(&sqlite_url(db.path()), &prefix.replace('/', "-"), 0, 60.0, Extra {
        coordinator: vec![("FARM_MAX_SOURCE_SECONDS", "2".into()), ("FARM_MAX_RUNGS", "3".into())],
        ..Default::default()
    });
    let (source, output) = (format!("s3://{BUCKET}/{prefix}/in.mov"), format!("s3://{BUCKET}/{prefix}/out"));
    let (status, answer) = farm.submit(&job(&source, &output));
    assert_eq!(status, 422, "a 3 s source over a 2 s limit: {answer}");
    assert!(answer["error"].as_str().unwrap().contains("FARM_MAX_SOURCE_SECONDS"), "{answer}");
    let mut ladder: serde_json::Value = serde_json::from_str(SMALL_LADDER).unwrap();
    let rung = ladder["video"][0].clone();
    let mut fourth = rung.clone();
    fourth["name"] = "extra".into();
    ladder["video"].as_array_mut().unwrap().push(fourth);
    let body = serde_json::json!({"source": source, "output": output, "ladder": ladder});
    let (status, answer) = farm.submit(&body.to_string());
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("FARM_MAX_RUNGS"), "{answer}");
    let slow = serde_json::json!({"source": source, "output": output, "ladder": {"version": 1, "video": [rung], "x264": {"preset": "placebo"}}});
    let (status, answer) = farm.submit(&slow.to_string());
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("FARM_ALLOWED_PRESETS"), "{answer}");
    let (status, _) = farm.submit_as("text/plain", &job(&source, &output));
    assert_eq!(status, 415, "defect 7: a web page could POST a job as a simple request");

    // Storage that refuses connections: 503 (retry later), not 422 (bad source).
    let closed = free_port();
    let outage = Farm::start_with(&sqlite_url(db.path()), &format!("{}-b", farm.prefix), 0, 60.0, Extra {
        coordinator: vec![("FARM_S3_ENDPOINT", format!("http://127.0.0.1:{closed}")), ("FARM_PROBE_SECONDS", "6".into())],
        ..Default::default()
    });
    let (status, answer) = outage.submit(&job(&source, &format!("{output}-b")));
    assert_eq!(status, 503, "{answer}");
    // Storage that accepts and never answers: the probe is stopped at its deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || silent.incoming().take(4).filter_map(Result::ok).collect::<Vec<_>>());
    let hung = Farm::start_with(&sqlite_url(db.path()), &format!("{}-c", farm.prefix), 0, 60.0, Extra {
        coordinator: vec![("FARM_S3_ENDPOINT", format!("http://127.0.0.1:{silent_port}")), ("FARM_PROBE_SECONDS", "3".into())],
        ..Default::default()
    });
    let started = Instant::now();
    let (status, answer) = hung.submit(&job(&source, &format!("{output}-c")));
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("longer than 3 s"), "{answer}");
    assert_eq!(hung.http.get(format!("{}/healthz", hung.base)).send().unwrap().status(), 200, "the coordinator lives on");
    drop(hung);
    drop(held);
}

/// Defect 7: the embedded farm (no token) answered on every interface.
#[test]
fn the_embedded_farm_without_a_token_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = Proc::spawn(
        coordinator_bin(),
        &[],
        &[("FARM_DATA_DIR", dir.path().display().to_string()), ("FARM_LISTEN", format!("0.0.0.0:{}", free_port()))],
    );
    let (status, _) = coordinator.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    let log = plain(&coordinator.log());
    assert!(log.contains("listens on loopback only"), "{log}");
}

/// A broker that takes the TCP connection and never speaks AMQP (RabbitMQ stalled under
/// hundreds of leftover quorum queues did exactly this): /readyz waited on the connection
/// for ever; it must say 503 within the connect timeout while /healthz says 200.
#[test]
fn readiness_says_503_when_the_broker_takes_connections_and_never_answers() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let broker_url = format!("amqp://guest:guest@{}/%2f", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || silent.incoming().take(2).filter_map(Result::ok).collect::<Vec<_>>());
    let db = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env: Vec<(&str, String)> = s3().env().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    env.extend([
        ("AMQP_URL", broker_url),
        ("FARM_QUEUE_PREFIX", unique_prefix("silent-broker").replace('/', "-")),
        ("DATABASE_URL", sqlite_url(db.path())),
        ("FARM_API_TOKEN", farm_tests::farm::TOKEN.to_string()),
        ("FARM_LISTEN", format!("127.0.0.1:{port}")),
        task_key_env(),
    ]);
    let coordinator = Proc::spawn(coordinator_bin(), &[], &env);
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let up = Instant::now();
    while http.get(format!("{base}/healthz")).send().map_or(true, |r| !r.status().is_success()) {
        assert!(up.elapsed() < Duration::from_secs(20), "no /healthz: {}", coordinator.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let ready = http.get(format!("{base}/readyz")).send().expect("/readyz answers");
    assert_eq!(ready.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(20), "/readyz took {:?}", started.elapsed());
    let body: serde_json::Value = ready.json().unwrap();
    assert_eq!((body["database"].as_bool(), body["broker"].as_bool()), (Some(true), Some(false)), "{body}");
    drop(coordinator);
    drop(held);
}
