//! OpenStack Swift, the real one-node server (`scripts/services.sh swift`, tempauth):
//! a farm job from Swift to Swift with its tokens invalidated mid-task, a source on Swift
//! with its output on S3, wrong credentials refused, and large objects whose segments go
//! with them. Outputs are read back through Swift's S3 API, not the farm's Swift client.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use farm_tests::farm::{plain, sqlite_url, Extra, Farm};
use farm_tests::fixtures::{clip_15s, small_ladder_file, Kind, SMALL_LADDER};
use farm_tests::hls::check_ladder;
use farm_tests::s3::{s3, swift_env, swift_s3, unique_prefix, BUCKET};
use farm_tests::worker::worker_with_env;

/// Swift's tempauth tokens live in one memcached shared by every test here, and several
/// tests flush it: the tests of this file take turns. (A large upload's manifest refused
/// with 401 in a full run was first put down to another test's flush; it happened again with
/// the tests taking turns: the upload kept the token it began with, which expired under it.
/// `a_large_upload_that_outlives_its_token_is_made_again_with_a_new_one` shows it.)
static SWIFT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn swift_turn() -> std::sync::MutexGuard<'static, ()> {
    farm_tests::turn(&SWIFT)
}

/// Every tempauth token is forgotten (they live in memcached): the next request with one
/// is answered 401, as when a token expires.
fn expire_all_swift_tokens() {
    SwiftMemcached::connect().forget_all_tokens();
}

/// A connection to the memcached Swift's tempauth keeps its tokens in.
struct SwiftMemcached {
    stream: std::net::TcpStream,
    answers: BufReader<std::net::TcpStream>,
}

impl SwiftMemcached {
    fn connect() -> Self {
        let stream = std::net::TcpStream::connect("127.0.0.1:11211").expect("Swift's memcached");
        let answers = BufReader::new(stream.try_clone().unwrap());
        SwiftMemcached { stream, answers }
    }

    /// `flush_all`: every token is forgotten.
    fn forget_all_tokens(&mut self) {
        self.stream.write_all(b"flush_all\r\n").unwrap();
        let mut answer = String::new();
        self.answers.read_line(&mut answer).unwrap();
        assert_eq!(answer.trim(), "OK");
    }
}

/// The test Swift's tempauth account.
fn tempauth_credentials() -> farm_storage::swift::Credentials {
    use farm_tests::s3::{SWIFT_AUTH, SWIFT_KEY, SWIFT_USER};
    farm_storage::swift::Credentials::TempAuth { url: SWIFT_AUTH.into(), user: SWIFT_USER.into(), key: SWIFT_KEY.into() }
}

/// This process's sink on the test Swift's container under `prefix`, with tempauth's test
/// user, and the runtime it runs on.
fn tempauth_sink(prefix: &str) -> (Box<dyn farm_storage::Sink>, tokio::runtime::Runtime) {
    let settings = farm_storage::StorageSettings { swift: Some(tempauth_credentials()), ..Default::default() };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = farm_storage::open_sink(&format!("swift://{BUCKET}/{prefix}"), &settings, rt.handle()).unwrap();
    (sink, rt)
}

#[test]
fn a_farm_job_runs_from_swift_to_swift_through_a_token_expiry() {
    let _turn = swift_turn();
    let swift = swift_s3();
    let prefix = unique_prefix("swift-job");
    swift.put_file(&format!("{prefix}/in.mov"), &clip_15s()).unwrap();
    let db = tempfile::tempdir().unwrap();
    let farm = Farm::start_with(&sqlite_url(db.path()), &prefix.replace('/', "-"), 2, 6.0, Extra::swift(&prefix));
    let body = serde_json::json!({
        "source": format!("swift://{BUCKET}/{prefix}/in.mov"),
        "output": format!("swift://{BUCKET}/{prefix}/out/"),
        "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
    });
    let (status, job) = farm.submit(&body.to_string());
    assert_eq!(status, 201, "{job}\n{}", farm.coordinator.log());
    assert_eq!(job["tasks"].as_array().unwrap().len(), 3, "three chunks: {job}");
    // Once a task runs, every token the farm holds stops working.
    let started = farm.workers.iter().any(|w| plain(&w.log()).contains("task started"));
    let wait = std::time::Instant::now();
    let mut running = started;
    while !running && wait.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
        running = farm.workers.iter().any(|w| plain(&w.log()).contains("task started"));
    }
    assert!(running, "no task started: {}", farm.coordinator.log());
    expire_all_swift_tokens();

    let done = farm.wait_final(job["id"].as_str().unwrap(), Duration::from_secs(240));
    assert_eq!(done["state"], "succeeded", "{done}\n{}", farm.coordinator.log());
    let renewed = farm.workers.iter().chain([&farm.coordinator]).any(|p| plain(&p.log()).contains("renewed=true"));
    assert!(renewed, "no process logged in again after its token was refused:\n{}", farm.workers.iter().map(|w| w.log()).collect::<Vec<_>>().join("\n---\n"));
    let out = tempfile::tempdir().unwrap();
    swift.download(&format!("{prefix}/out"), out.path()).unwrap();
    let check = check_ladder(out.path(), 375, 25.0, true).unwrap();
    assert_eq!(check.renditions.len(), 3);
    // The large objects' segments of Swift never show in an output.
    assert!(swift.keys(&format!("{prefix}/out")).unwrap().iter().all(|k| !k.contains(".segments")));
}

#[test]
fn a_source_on_swift_with_its_output_on_s3() {
    let _turn = swift_turn();
    let prefix = unique_prefix("swift-to-s3");
    let source = Kind::DnxhrMxf.make().unwrap();
    swift_s3().put_file(&format!("{prefix}/in.mxf"), &source).unwrap();
    let mut env = s3().env();
    env.extend(swift_env());
    let ladder = small_ladder_file();
    let (src, out) = (format!("swift://{BUCKET}/{prefix}/in.mxf"), format!("s3://{BUCKET}/{prefix}/out/"));
    let run = worker_with_env(&["transcode", &src, &out, "--ladder", ladder.to_str().unwrap()], &env).unwrap().ok().unwrap();
    assert_eq!(run.stdout().trim(), format!("s3://{BUCKET}/{prefix}/out/index.m3u8"));
    let local = tempfile::tempdir().unwrap();
    s3().download(&format!("{prefix}/out"), local.path()).unwrap();
    let frames = farm_tests::probe::video_frame_count(&source).unwrap();
    assert_eq!(check_ladder(local.path(), frames, 24000.0 / 1001.0, true).unwrap().renditions.len(), 3);
}

#[test]
fn wrong_swift_credentials_are_refused() {
    let _turn = swift_turn();
    let prefix = unique_prefix("swift-creds");
    swift_s3().put_file(&format!("{prefix}/clip.mov"), &Kind::ProRes4444Odd.make().unwrap()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let url = format!("swift://{BUCKET}/{prefix}/clip.mov");
    let mut env = swift_env();
    env.retain(|(k, _)| *k != "ST_KEY");
    env.push(("ST_KEY", "not-the-key"));
    let run = worker_with_env(&["transcode", &url, out.path().to_str().unwrap()], &env).unwrap();
    assert!(!run.output.status.success());
    let err = run.stderr();
    assert!(err.contains(&format!("cannot read source {url}")) && err.contains("Swift login refused") && err.contains("HTTP 401"), "{err}");
    assert!(!err.contains("not-the-key"), "the key was printed: {err}");
    assert!(!out.path().join("index.m3u8").exists());
    // Without any credentials, the message says which variables to set.
    let run = worker_with_env(&["transcode", &url, out.path().to_str().unwrap()], &[]).unwrap();
    assert!(!run.output.status.success() && run.stderr().contains("ST_AUTH"), "{}", run.stderr());
}

#[test]
fn a_large_upload_that_outlives_its_token_is_made_again_with_a_new_one() {
    use object_store::{ObjectStoreExt, PutPayload};
    let _turn = swift_turn();
    let prefix = unique_prefix("swift-outlived");
    let credentials = tempauth_credentials();
    let path = object_store::path::Path::from(format!("{prefix}/big.bin"));
    let data: Vec<u8> = (0..6u32 << 20).map(|i| (i % 251) as u8).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = farm_storage::swift::swift_store(BUCKET, Some(&credentials), Duration::from_secs(30)).unwrap();
        let mut upload = store.put_multipart(&path).await.unwrap();
        upload.put_part(PutPayload::from(data[..5 << 20].to_vec())).await.unwrap();
        upload.put_part(PutPayload::from(data[5 << 20..].to_vec())).await.unwrap();
        // The token the upload began with is gone before its manifest is written, as when
        // it expires during a long upload.
        expire_all_swift_tokens();
        upload.complete().await.expect("the upload, made again with a new token");
        let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert!(stored.as_ref() == &data[..], "{} bytes stored of {}", stored.len(), data.len());
    });
}

#[test]
fn a_large_output_is_a_static_large_object_whose_segments_go_with_it_through_token_expiries() {
    let _turn = swift_turn();
    let prefix = unique_prefix("swift-large");
    let (sink, _rt) = tempauth_sink(&prefix);
    let segments = || swift_s3().keys(&format!(".segments/{prefix}")).unwrap_or_default().into_iter().filter(|k| k.contains("big.bin")).collect::<Vec<_>>();
    // Over the sink's 16 MiB: uploaded in parts, a static large object.
    let first: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    sink.put("big.bin", &first).unwrap();
    let before = segments();
    assert!(before.len() >= 2, "no segments: {before:?}");
    let second: Vec<u8> = first.iter().map(|b| b.wrapping_add(1)).collect();
    // Each step with the token the sink holds gone (as when it expires between the last
    // renewal and the request): renewed, and the step tried again.
    expire_all_swift_tokens();
    sink.put("big.bin", &second).unwrap();
    let after = segments();
    assert!(!after.is_empty() && after.iter().all(|k| !before.contains(k)), "the first upload's segments stayed: {before:?} {after:?}");
    expire_all_swift_tokens();
    assert!(sink.get("big.bin").unwrap() == second, "not the second upload's bytes");
    expire_all_swift_tokens();
    assert_eq!(sink.list("").unwrap(), ["big.bin"], "segments are not listed as output");
    expire_all_swift_tokens();
    sink.delete("big.bin").unwrap();
    assert_eq!(segments(), Vec::<String>::new(), "segments left after the delete");
    drop(sink);
}

/// A proxy that cannot look tokens up for a while (here its memcached loses every token,
/// flushed over and over until a new token has been refused too): a read refused on its
/// token is tried again at once on a new one, refused too, and again after a short wait,
/// until it is let through. Before, the one try on a new token was the last, and the read
/// failed (a task handed back, in a farm). The flushing stops on the count of refused
/// logins, not after a set time: a 0.6 s window, under CI's load, once ended before the
/// new token was used (1 refused login). A trial whose new token slipped between two
/// flushes proves nothing and is made again; every read must succeed.
#[test]
fn a_read_refused_on_a_new_token_too_is_tried_again_after_a_wait() {
    let _turn = swift_turn();
    use farm_storage::metrics::SWIFT_LOGINS;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (sink, _rt) = tempauth_sink(&unique_prefix("swift-refused"));
    sink.put("small.bin", b"review copy").unwrap();
    let refused = || SWIFT_LOGINS.with_label_values(&["refused"]).get();
    let mut trials = Vec::new();
    while trials.len() < 5 && !trials.iter().any(|&(logins, _)| logins >= 2) {
        let before = refused();
        let read_done = std::sync::Arc::new(AtomicBool::new(false));
        let (flushing, flushed) = std::sync::mpsc::channel();
        let flusher = std::thread::spawn({
            let read_done = read_done.clone();
            move || {
                let mut memcached = SwiftMemcached::connect();
                let until = std::time::Instant::now() + Duration::from_secs(30);
                let mut flushes = 0u32;
                while !read_done.load(Ordering::SeqCst) && refused() - before < 2 && std::time::Instant::now() < until {
                    memcached.forget_all_tokens();
                    flushes += 1;
                    if flushes == 1 {
                        flushing.send(()).unwrap();
                    }
                }
                flushes
            }
        });
        flushed.recv().unwrap();
        let read = sink.get("small.bin");
        read_done.store(true, Ordering::SeqCst);
        let flushes = flusher.join().unwrap();
        let logins = refused() - before;
        assert_eq!(read.unwrap_or_else(|e| panic!("the read failed after {logins} refused logins ({flushes} flushes): {e}")), b"review copy");
        trials.push((logins, flushes));
    }
    println!("trials (refused logins, flushes): {trials:?}");
    assert!(trials.iter().any(|&(logins, _)| logins >= 2), "no read was refused on a new token too (refused logins, flushes): {trials:?}");
    sink.delete("small.bin").unwrap();
}

#[test]
fn keystone_passwords_and_application_credentials_reach_swift() {
    let _turn = swift_turn();
    use farm_tests::keystone::{keystone, password_env};
    let ks = keystone();
    let prefix = unique_prefix("keystone");
    let source = Kind::DnxhrMxf.make().unwrap();
    ks.put(&format!("{BUCKET}/{prefix}/in.mxf"), std::fs::read(&source).unwrap()).unwrap();
    let frames = farm_tests::probe::video_frame_count(&source).unwrap();
    let ladder = small_ladder_file();
    let transcode = |out: &str, env: &[(&str, &str)]| {
        let src = format!("swift://{BUCKET}/{prefix}/in.mxf");
        worker_with_env(&["transcode", &src, &format!("swift://{BUCKET}/{prefix}/{out}"), "--ladder", ladder.to_str().unwrap()], env).unwrap()
    };
    // A user's password, scoped to the project; the endpoint of the region.
    let run = transcode("by-password", &password_env()).ok().unwrap();
    assert!(run.stderr().contains("Keystone v3 password of ingest for project post"), "{}", run.stderr());
    // An application credential, the auth URL without /v3 as some clouds print it.
    let (id, secret) = ks.application_credential(&format!("farm-{}", prefix.replace('/', "-")));
    let app = [("OS_AUTH_URL", "http://127.0.0.1:5000"), ("OS_APPLICATION_CREDENTIAL_ID", id.as_str()), ("OS_APPLICATION_CREDENTIAL_SECRET", secret.as_str())];
    let run = transcode("by-application-credential", &app).ok().unwrap();
    assert!(!run.stderr().contains(&secret), "the secret was printed");
    for out in ["by-password", "by-application-credential"] {
        let local = tempfile::tempdir().unwrap();
        ks.download(BUCKET, &format!("{prefix}/{out}"), local.path()).unwrap();
        assert_eq!(check_ladder(local.path(), frames, 24000.0 / 1001.0, true).unwrap().renditions.len(), 3, "{out}");
    }
    // A wrong password is refused; a region without Swift says so.
    let mut wrong = password_env();
    wrong.retain(|(k, _)| *k != "OS_PASSWORD");
    wrong.push(("OS_PASSWORD", "not-the-password"));
    let run = transcode("refused", &wrong);
    assert!(!run.output.status.success() && run.stderr().contains("Swift login refused") && run.stderr().contains("HTTP 401"), "{}", run.stderr());
    let mut elsewhere = password_env();
    elsewhere.retain(|(k, _)| *k != "OS_REGION_NAME");
    elsewhere.push(("OS_REGION_NAME", "Elsewhere"));
    let run = transcode("elsewhere", &elsewhere);
    assert!(!run.output.status.success() && run.stderr().contains("in region Elsewhere"), "{}", run.stderr());
}
