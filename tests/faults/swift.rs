//! Issue 18, against the real Swift: an outage of Swift's proxy in the middle of a task
//! from Swift to Swift, longer than the test server's tokens live, is ridden out inside
//! the task (requests and the token's renewal retried), as an S3 outage is, and the job's
//! output is whole; and a write that begins in an outage waits for Swift.

use std::time::{Duration, Instant};

use farm_storage::metrics::STORAGE_RETRIES;
use farm_storage::swift::{swift_store, Credentials};
use farm_tests::farm::{plain, sqlite_url, Extra, Farm};
use farm_tests::fixtures::{clip_30s, SMALL_LADDER};
use farm_tests::hls::check_ladder;
use farm_tests::s3::{swift_s3, unique_prefix, BUCKET, SWIFT_AUTH, SWIFT_KEY, SWIFT_USER};
use object_store::{path::Path, ObjectStoreExt, PutPayload};
use farm_tests::services;

use super::{serial, transport_retries, wait_line, FRAMES};

#[test]
fn a_swift_outage_is_ridden_out_with_retries() {
    let _serial = serial();
    let swift = swift_s3();
    let prefix = unique_prefix("fault-swift");
    swift.put_file(&format!("{prefix}/in.mov"), &clip_30s()).unwrap();
    let db = tempfile::tempdir().unwrap();
    // One worker, with its metrics endpoint: the outage falls inside its task.
    let mut farm = Farm::start_with(&sqlite_url(db.path()), &prefix.replace('/', "-"), 0, 6.0, Extra::swift(&prefix));
    let port = farm_tests::farm::free_port();
    farm.add_worker(&[("FARM_WORKER_LISTEN", format!("127.0.0.1:{port}"))]);
    let body = serde_json::json!({
        "source": format!("swift://{BUCKET}/{prefix}/in.mov"),
        "output": format!("swift://{BUCKET}/{prefix}/out"),
        "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
    });
    let (status, job) = farm.submit(&body.to_string());
    assert_eq!(status, 201, "{job}\n{}", farm.coordinator.log());
    wait_line(&farm.workers[0], &["task started"], Duration::from_secs(60));
    // The worker holds a token before the outage: its renewal, due within 4.5 s of any
    // moment, falls in the 8 s outage.
    wait_line(&farm.workers[0], &["Swift token obtained"], Duration::from_secs(60));
    let outage = services::stop_swift();
    // The outage lasts a while: several requests of the task meet it.
    std::thread::sleep(Duration::from_secs(8));
    drop(outage);

    let done = farm.wait_final(job["id"].as_str().unwrap(), Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}\n{}", farm.workers[0].log());
    // Ridden out inside the task: no task was handed back. The test Swift's tokens live 6 s,
    // less than the outage, so the worker's renewal before expiry met the outage: the login
    // was tried again until Swift came back, then the token renewed as due, not refused.
    let log = plain(&farm.workers[0].log());
    assert!(!log.contains("task handed back"), "{log}");
    let login_retried = log.lines().position(|l| l.contains("Swift login failed; trying again")).unwrap_or_else(|| panic!("no login in the outage:\n{log}"));
    let after: Vec<&str> = log.lines().skip(login_retried).filter(|l| l.contains("Swift token obtained")).collect();
    assert!(after.first().is_some_and(|l| l.contains("reason=\"due\"") || l.contains("reason=due")), "{after:?}\n{log}");
    let out = tempfile::tempdir().unwrap();
    swift.download(&format!("{prefix}/out"), out.path()).unwrap();
    let check = check_ladder(out.path(), FRAMES, 25.0, true).unwrap();
    for r in &check.renditions {
        let frames: Vec<u64> = r.segments.iter().map(|s| s.frames).collect();
        assert_eq!(frames, vec![50, 50, 50, 150, 150, 150, 150], "{}", r.name);
    }
    let (retried, metrics) = transport_retries(port);
    assert!(retried >= 1.0, "the Swift client's retries are not counted:\n{metrics}");
    farm_tests::amqp::broker().delete_farm_queues(&farm.prefix);
}

/// A write that begins while Swift's proxy is down waits for it, as one under way does: the
/// look for a large object to clear, made before every write outside OpenDAL, is tried
/// again too. Found by CI: a task's first write, its claim, began as the proxy went down,
/// failed at once, and the task was handed back.
#[test]
fn a_write_begun_in_a_swift_outage_waits_for_swift() {
    let _serial = serial();
    let prefix = unique_prefix("fault-swift-write");
    let credentials = Credentials::TempAuth { url: SWIFT_AUTH.into(), user: SWIFT_USER.into(), key: SWIFT_KEY.into() };
    let store = swift_store(BUCKET, Some(&credentials), Duration::from_secs(120)).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (first, second) = (Path::from(format!("{prefix}/first")), Path::from(format!("{prefix}/second")));
    // Logged in: the token (5 s) is not due for renewal when the second write starts.
    runtime.block_on(store.put(&first, PutPayload::from_static(b"before"))).unwrap();
    let retries = || STORAGE_RETRIES.with_label_values(&["transport"]).get();
    let before = retries();
    let outage = services::stop_swift();
    let write = runtime.spawn({
        let (store, second) = (store.clone(), second.clone());
        async move { store.put(&second, PutPayload::from_static(b"in the outage")).await }
    });
    // Swift comes back once the write has met the outage and is being tried again.
    let start = Instant::now();
    while retries() == before {
        if write.is_finished() {
            panic!("the write ended in the outage instead of waiting for Swift: {:?}", runtime.block_on(write).unwrap());
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the write was not tried again in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(outage);
    runtime.block_on(write).unwrap().expect("the write, once Swift was back");
    let got = runtime.block_on(async { store.get(&second).await?.bytes().await }).unwrap();
    assert_eq!(&got[..], b"in the outage");
    for key in [&first, &second] {
        runtime.block_on(store.delete(key)).unwrap();
    }
}
