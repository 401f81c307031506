//! Workers serving tasks from the real RabbitMQ, reading and writing the real S3 server.

use std::time::Duration;

use farm_contract::task::{Priority, TaskPart};
use farm_queue::Topology;
use farm_tests::amqp::{broker, is_bound, Broker, URL};
use farm_tests::farm::{plain, Proc};
use farm_tests::fixtures::Kind;
use farm_tests::hls::check_ladder;
use farm_tests::s3::{s3, unique_prefix, BUCKET};
use farm_tests::worker::worker_bin;

/// A `worker serve` process on the test broker and S3, killed when dropped.
fn serve(prefix: &str) -> Proc {
    serve_with(prefix, &[])
}

/// `worker serve` on the test services, with `extra` settings.
fn serve_with(prefix: &str, extra: &[(&'static str, String)]) -> Proc {
    let mut env: Vec<(&str, String)> = s3().env().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    env.push(("AMQP_URL", URL.to_string()));
    env.push(("FARM_QUEUE_PREFIX", prefix.to_string()));
    env.push(farm_tests::keys::task_key_env());
    env.extend(extra.iter().cloned());
    Proc::spawn(worker_bin(), &["serve"], &env)
}

fn task(job: &str, n: usize, source: &str, output: &str, part: TaskPart) -> Vec<u8> {
    farm_tests::fixtures::task_message(job, n, source, output, part)
}

/// Part manifests written under an output prefix.
fn part_count(prefix: &str) -> usize {
    s3().keys(&format!("{prefix}/parts")).unwrap().iter().filter(|k| k.ends_with(".json")).count()
}

fn publish_playlists(out: &str) {
    let run = farm_tests::worker::worker_with_env(&["playlists", out], &s3().env()).unwrap().ok().unwrap();
    assert!(run.stdout().trim().ends_with("/index.m3u8"), "{}", run.stdout());
}


/// Waits until the worker has declared the topology.
fn wait_declared(b: &Broker, t: &Topology, served: &Proc) {
    assert!(
        // The normal queue, declared and bound, is the last of the worker's topology.
        b.wait_for(Duration::from_secs(20), || is_bound(&t.queue(Priority::Normal), &t.tasks_exchange())),
        "the worker declared no queue: {}",
        served.log()
    );
}

/// A worker serving queues of its own, and the 8 s ProRes source uploaded for its tasks.
struct ServedProRes {
    prefix: String,
    topology: Topology,
    served: Proc,
    /// The source's and an output's locations for task messages.
    src: String,
    out: String,
}

fn serve_prores(b: &Broker, name: &str) -> ServedProRes {
    let prefix = unique_prefix(name);
    let topology = Topology::new(&prefix.replace('/', "-"));
    s3().put_file(&format!("{prefix}/in.mov"), &Kind::ProRes422.make().unwrap()).unwrap();
    let served = serve(&topology.prefix);
    wait_declared(b, &topology, &served);
    let (src, out) = (format!("s3://{BUCKET}/{prefix}/in.mov"), format!("s3://{BUCKET}/{prefix}/out"));
    ServedProRes { prefix, topology, served, src, out }
}

#[test]
fn chunk_tasks_from_the_queue_make_a_ladder_in_s3() {
    let (b, s3) = (broker(), s3());
    let prefix = unique_prefix("queue");
    let topology = Topology::new(&prefix.replace('/', "-"));
    let source = Kind::ProRes422.make().unwrap();
    s3.put_file(&format!("{prefix}/in.mov"), &source).unwrap();
    let served = serve(&topology.prefix);
    wait_declared(&b, &topology, &served);

    let src = format!("s3://{BUCKET}/{prefix}/in.mov");
    // Two chunks, each with the audio of its range; and the same job as a coordinator
    // before task schema 3 split it (video-only chunks and an audio task over the whole
    // source, in schema 2 messages), as jobs in flight during an upgrade are.
    let chunks = [TaskPart::Video { start: 0.0, end: Some(6.0), audio: true }, TaskPart::Video { start: 6.0, end: None, audio: true }];
    let out = format!("s3://{BUCKET}/{prefix}/out");
    for (n, part) in chunks.into_iter().enumerate() {
        b.publish(&topology.tasks_exchange(), "normal", &task("job-a", n, &src, &out, part)).unwrap();
    }
    let old = format!("s3://{BUCKET}/{prefix}/old");
    for (n, part) in [r#"{"kind":"video","start":0.0,"end":6.0}"#, r#"{"kind":"video","start":6.0,"end":null}"#, r#"{"kind":"audio"}"#].iter().enumerate() {
        let mut message: serde_json::Value = serde_json::from_slice(&task("job-old", n, &src, &old, TaskPart::Whole)).unwrap();
        message["schema"] = 2.into();
        message["part"] = serde_json::from_str(part).unwrap();
        b.publish(&topology.tasks_exchange(), "normal", &serde_json::to_vec(&message).unwrap()).unwrap();
    }
    // In the farm the coordinator writes playlists; here `worker playlists` does, from the parts.
    for (output, parts) in [("out", 4), ("old", 3)] {
        assert!(
            b.wait_for(Duration::from_secs(180), || part_count(&format!("{prefix}/{output}")) == parts),
            "parts: {:?}\n{}",
            s3.keys(&format!("{prefix}/{output}/parts")),
            served.log()
        );
    }
    assert!(!s3.keys(&prefix).unwrap().iter().any(|k| k.ends_with(".m3u8")), "serving workers write no playlist");
    // every task acknowledged, none dead
    assert!(b.wait_for(Duration::from_secs(10), || b.depth(&topology.queue(Priority::Normal)).unwrap() == 0));
    assert_eq!(b.depth(&topology.dead_queue()).unwrap(), 0, "{}", served.log());
    for output in [&out, &old] {
        publish_playlists(output);
        let local = tempfile::tempdir().unwrap();
        s3.download(output.trim_start_matches(&format!("s3://{BUCKET}/")), local.path()).unwrap();
        let check = check_ladder(local.path(), 200, 25.0, true).unwrap();
        let frames: Vec<u64> = check.renditions[0].segments.iter().map(|s| s.frames).collect();
        // three leading 2 s segments, then what is left of the first 6 s one
        assert_eq!(frames, vec![50, 50, 50, 50], "{output}");
        assert!((check.audio_seconds.unwrap() - 8.0).abs() < 0.1, "{output}: {:?}", check.audio_seconds);
    }
    drop(served);
    b.delete_farm_queues(&topology.prefix);
}

#[test]
fn permanent_failures_are_dead_lettered_with_the_reason_and_the_worker_goes_on() {
    let (b, s3) = (broker(), s3());
    let prefix = unique_prefix("poison");
    let topology = Topology::new(&prefix.replace('/', "-"));
    let served = serve(&topology.prefix);
    wait_declared(&b, &topology, &served);

    b.publish(&topology.tasks_exchange(), "normal", b"{not json").unwrap();
    let missing = format!("s3://{BUCKET}/{prefix}/missing.mov");
    let out = format!("s3://{BUCKET}/{prefix}/out");
    b.publish(&topology.tasks_exchange(), "high", &task("job-b", 0, &missing, &out, TaskPart::Whole)).unwrap();
    assert!(
        b.wait_for(Duration::from_secs(30), || b.depth(&topology.dead_queue()).unwrap() == 2),
        "dead letters: {:?}; worker: {}",
        b.depth(&topology.dead_queue()),
        served.log()
    );
    let reasons = b.take_all_headers(&topology.dead_queue());
    assert_eq!(reasons.len(), 2);
    assert!(reasons.iter().any(|h| h.contains("invalid task message")), "{reasons:?}");
    assert!(reasons.iter().any(|h| h.contains(&format!("source {missing} does not exist")) && h.contains("job-b")), "{reasons:?}");

    // the same worker then does good work
    let source = Kind::ProRes4444Odd.make().unwrap();
    s3.put_file(&format!("{prefix}/good.mov"), &source).unwrap();
    let good = format!("s3://{BUCKET}/{prefix}/good.mov");
    b.publish(&topology.tasks_exchange(), "normal", &task("job-c", 0, &good, &out, TaskPart::Whole)).unwrap();
    assert!(b.wait_for(Duration::from_secs(60), || part_count(&format!("{prefix}/out")) == 1), "{}", served.log());
    publish_playlists(&out);
    assert!(s3.keys(&format!("{prefix}/out")).unwrap().contains(&format!("{prefix}/out/index.m3u8")));
    assert_eq!(b.depth(&topology.dead_queue()).unwrap(), 0);
    drop(served);
    b.delete_farm_queues(&topology.prefix);
}

#[test]
fn an_idle_worker_stops_at_once_on_sigterm() {
    let b = broker();
    let topology = Topology::new(&unique_prefix("sigterm").replace('/', "-"));
    let mut served = serve(&topology.prefix);
    wait_declared(&b, &topology, &served);
    served.signal("TERM");
    let (code, _) = served.wait_exit(Duration::from_secs(10));
    assert!(code.success(), "{code:?}: {}", served.log());
    drop(served);
    b.delete_farm_queues(&topology.prefix);
}

#[test]
fn get_drain_starts_the_drain_like_a_first_sigterm() {
    let b = broker();
    let topology = Topology::new(&unique_prefix("drain-http").replace('/', "-"));
    let port = farm_tests::farm::free_port();
    let mut served = serve_with(&topology.prefix, &[("FARM_WORKER_LISTEN", format!("127.0.0.1:{port}"))]);
    wait_declared(&b, &topology, &served);
    let health = reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")).unwrap();
    assert_eq!(health.status(), 200);
    let reply = reqwest::blocking::get(format!("http://127.0.0.1:{port}/drain")).unwrap().text().unwrap();
    assert_eq!(reply.trim(), "draining");
    let (code, _) = served.wait_exit(Duration::from_secs(10));
    assert!(code.success(), "an idle worker asked to drain exits cleanly: {code:?}\n{}", served.log());
    drop(served);
    b.delete_farm_queues(&topology.prefix);
}

/// Issue 19: a task that carries a mark seed, from the real RabbitMQ to a serving worker,
/// is encoded as A (where unmarked segments would be) and, from the first marked position
/// on, B (under `{rendition}/b/`), each
/// rendition's B listed in the part manifest, and `worker playlists` writes B's playlists
/// beside A's, out of the master.
#[test]
fn a_task_with_a_mark_seed_writes_every_marked_video_segment_as_a_and_b() {
    let (b, s3) = (broker(), s3());
    let ServedProRes { prefix, topology, served, src, out } = serve_prores(&b, "forensic");
    let mut message: serde_json::Value = serde_json::from_slice(&task("job-f", 0, &src, &out, TaskPart::Whole)).unwrap();
    message["forensic_seed"] = "5a".repeat(32).into();
    b.publish(&topology.tasks_exchange(), "normal", &serde_json::to_vec(&message).unwrap()).unwrap();
    assert!(b.wait_for(Duration::from_secs(180), || part_count(&format!("{prefix}/out")) == 2), "{}", served.log());
    assert_eq!(b.depth(&topology.dead_queue()).unwrap(), 0, "{}", served.log());
    publish_playlists(&out);

    let local = tempfile::tempdir().unwrap();
    s3.download(&format!("{prefix}/out"), local.path()).unwrap();
    let part_file = std::fs::read_dir(local.path().join("parts")).unwrap().flatten().map(|e| e.path()).find(|p| p.to_string_lossy().contains("video-")).unwrap();
    let part: farm_contract::manifest::PartManifest = serde_json::from_slice(&std::fs::read(part_file).unwrap()).unwrap();
    assert_eq!(part.variant_b.len(), part.renditions.len());
    for (a, b) in part.renditions.iter().zip(&part.variant_b) {
        // B from the first marked position on; before it A alone.
        let first = farm_contract::manifest::FIRST_MARKED_SEGMENT as usize;
        assert_eq!((a.name.as_str(), a.segments.len() - first), (b.name.as_str(), b.segments.len()));
        for (sa, sb) in a.segments.iter().skip(first).zip(&b.segments) {
            assert_eq!(sb.uri, sa.uri.replacen(&format!("{}/", a.name), &format!("{}/b/", a.name), 1));
            let (bytes_a, bytes_b) = (std::fs::read(local.path().join(&sa.uri)).unwrap(), std::fs::read(local.path().join(&sb.uri)).unwrap());
            assert_ne!(bytes_a, bytes_b, "{} and {} are the same bytes", sa.uri, sb.uri);
        }
        let b_playlist = std::fs::read_to_string(local.path().join(&a.name).join("b/index.m3u8")).unwrap();
        assert_eq!(b_playlist.lines().filter(|l| !l.starts_with('#')).count(), b.segments.len(), "{b_playlist}");
    }
    // A plays as a ladder of its own; B is nobody's variant in the master.
    let check = check_ladder(local.path(), 200, 25.0, true).unwrap();
    assert_eq!(check.renditions.len(), part.renditions.len());
    assert!(!std::fs::read_to_string(local.path().join("index.m3u8")).unwrap().contains("/b/"));
    drop(served);
    b.delete_farm_queues(&topology.prefix);
}

#[test]
fn a_task_delivered_again_after_it_succeeded_is_not_run_again() {
    let (b, s3) = (broker(), s3());
    let ServedProRes { prefix, topology, served, src, out } = serve_prores(&b, "queue-again");
    let message = task("job-g", 0, &src, &out, TaskPart::Whole);
    let succeeded = || plain(&served.log()).matches("task succeeded").count();
    b.publish(&topology.tasks_exchange(), "normal", &message).unwrap();
    assert!(b.wait_for(Duration::from_secs(180), || succeeded() == 1), "{}", served.log());
    // The same task again, as a redelivery after a lost acknowledgement or a copy handed
    // out again after lost reports brings it. Its encode would write the same bytes, so
    // the segments are removed first: a run would put them back.
    let media = || s3.keys(&format!("{prefix}/out")).unwrap().into_iter().filter(|k| farm_contract::manifest::is_media_key(k)).collect::<Vec<_>>();
    let written = media();
    assert!(!written.is_empty());
    for key in &written {
        s3.delete(key).unwrap();
    }
    b.publish(&topology.tasks_exchange(), "normal", &message).unwrap();
    assert!(b.wait_for(Duration::from_secs(180), || succeeded() == 2), "{}", served.log());
    let log = plain(&served.log());
    assert!(media().is_empty(), "the task ran again and wrote {:?}\n{log}", media());
    assert!(log.contains("task already done by an earlier attempt"), "{log}");
    assert_eq!(b.depth(&topology.dead_queue()).unwrap(), 0, "{log}");
    drop(served);
    b.delete_farm_queues(&topology.prefix);
}
