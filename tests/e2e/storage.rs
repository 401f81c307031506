//! Sources read from and ladders written to real S3 servers: SeaweedFS, and Swift's S3
//! API (`s3api`) as a second implementation. Each test runs on both.

use farm_tests::fixtures::{small_ladder_file, Kind};
use farm_tests::hls::check_ladder;
use farm_tests::s3::{s3, swift_s3, unique_prefix, S3, BUCKET};
use farm_tests::worker::worker_with_env;

/// `name` as a test on SeaweedFS and a test on Swift's S3 API.
macro_rules! on_both_servers {
    ($name:ident, $seaweed:ident, $swift:ident) => {
        #[test]
        fn $seaweed() {
            $name(s3())
        }
        #[test]
        fn $swift() {
            $name(swift_s3())
        }
    };
}

on_both_servers!(transcodes_from_s3_to_s3, transcodes_from_s3_to_s3_on_seaweedfs, transcodes_from_s3_to_s3_on_swifts_s3_api);
on_both_servers!(a_missing_source_object_is_a_clear_permanent_error, a_missing_source_object_is_a_clear_permanent_error_on_seaweedfs, a_missing_source_object_is_a_clear_permanent_error_on_swifts_s3_api);
on_both_servers!(wrong_credentials_are_refused, wrong_credentials_are_refused_on_seaweedfs, wrong_credentials_are_refused_on_swifts_s3_api);
on_both_servers!(
    an_audio_task_fetches_little_more_than_the_audio_of_an_interleaved_original,
    an_audio_task_fetches_little_more_than_the_audio_of_an_interleaved_original_on_seaweedfs,
    an_audio_task_fetches_little_more_than_the_audio_of_an_interleaved_original_on_swifts_s3_api
);

fn transcodes_from_s3_to_s3(s3: &S3) {
    let prefix = unique_prefix("s3-to-s3");
    let source = Kind::DnxhrMxf.make().unwrap();
    s3.put_file(&format!("{prefix}/in/A001_C002.mxf"), &source).unwrap();

    let src_url = format!("s3://{BUCKET}/{prefix}/in/A001_C002.mxf");
    let out_url = format!("s3://{BUCKET}/{prefix}/out/");
    let ladder = small_ladder_file();
    let run = worker_with_env(
        &["transcode", &src_url, &out_url, "--ladder", ladder.to_str().unwrap()],
        &s3.env(),
    )
    .unwrap()
    .ok()
    .unwrap();
    assert_eq!(run.stdout().trim(), format!("s3://{BUCKET}/{prefix}/out/index.m3u8"));

    let keys = s3.keys(&format!("{prefix}/out")).unwrap();
    assert!(keys.iter().any(|k| k.ends_with("/out/360p/seg_00000.m4s")) && keys.iter().any(|k| k.ends_with("/out/360p/init.mp4")), "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains(".tmp")), "no temporary objects: {keys:?}");
    let local = tempfile::tempdir().unwrap();
    s3.download(&format!("{prefix}/out"), local.path()).unwrap();
    let frames = farm_tests::probe::video_frame_count(&source).unwrap();
    let check = check_ladder(local.path(), frames, 24000.0 / 1001.0, true).unwrap();
    assert_eq!(check.renditions.len(), 3);
}

fn a_missing_source_object_is_a_clear_permanent_error(s3: &S3) {
    let prefix = unique_prefix("missing");
    let out = tempfile::tempdir().unwrap();
    let url = format!("s3://{BUCKET}/{prefix}/no-such-clip.mov");
    let run = worker_with_env(&["transcode", &url, out.path().to_str().unwrap()], &s3.env()).unwrap();
    assert!(!run.output.status.success());
    let err = run.stderr();
    assert!(err.contains(&format!("source {url} does not exist")), "{err}");
}

fn wrong_credentials_are_refused(s3: &S3) {
    let prefix = unique_prefix("creds");
    let source = Kind::ProRes4444Odd.make().unwrap();
    s3.put_file(&format!("{prefix}/clip.mov"), &source).unwrap();
    let out = tempfile::tempdir().unwrap();
    let url = format!("s3://{BUCKET}/{prefix}/clip.mov");
    let mut env = s3.env();
    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret"));
    let run = worker_with_env(&["transcode", &url, out.path().to_str().unwrap()], &env).unwrap();
    assert!(!run.output.status.success());
    let err = run.stderr();
    assert!(err.contains(&format!("cannot read source {url}")), "{err}");
    assert!(!out.path().join("index.m3u8").exists());
}

#[test]
fn other_url_schemes_are_refused() {
    for url in ["http://127.0.0.1:8333/farm-test/clip.mov", "file:///etc/passwd"] {
        let out = tempfile::tempdir().unwrap();
        let run = worker_with_env(&["transcode", url, out.path().to_str().unwrap()], &[]).unwrap();
        assert!(!run.output.status.success());
        assert!(run.stderr().contains("is not a location this farm reads or writes"), "{}", run.stderr());
    }
}

/// A value `name=N` from the worker's log (colour codes removed).
fn logged(log: &str, name: &str) -> u64 {
    let log = farm_tests::farm::plain(log);
    let at = log.rfind(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in\n{log}"));
    log[at + name.len() + 1..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

fn an_audio_task_fetches_little_more_than_the_audio_of_an_interleaved_original(s3: &S3) {
    // Uncompressed 8-bit 4:2:2 ('2vuy') 1080p makes large frames (4.1 MB, as ProRes 4K
    // does) between small PCM chunks: the audio task must not pull the frames through S3.
    // 4 fps keeps the file small.
    let source = farm_tests::fixtures::make(
        "uyvy422-1080p4-pcm-6s.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=4:duration=6",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6",
            "-c:v", "rawvideo", "-pix_fmt", "uyvy422", "-c:a", "pcm_s16le", "-ac", "2",
        ],
    )
    .unwrap();
    let size = std::fs::metadata(&source).unwrap().len();
    let prefix = unique_prefix("sparse-audio");
    s3.put_file(&format!("{prefix}/in.mov"), &source).unwrap();
    let src_url = format!("s3://{BUCKET}/{prefix}/in.mov");
    let ladder = small_ladder_file();
    let ladder = ladder.to_str().unwrap();

    let audio = worker_with_env(
        &["transcode", &src_url, &format!("s3://{BUCKET}/{prefix}/audio/"), "--ladder", ladder, "--audio-only"],
        &s3.env(),
    )
    .unwrap()
    .ok()
    .unwrap();
    let log = audio.stderr();
    assert_eq!(logged(&log, "source_bytes"), size);
    let fetched = logged(&log, "fetched_bytes");
    // PCM is 0.5 % of the file; opening it reads the start and the index as well.
    assert!(fetched * 3 < size, "the audio task fetched {fetched} of {size} bytes:\n{log}");
    let keys = s3.keys(&format!("{prefix}/audio")).unwrap();
    assert!(keys.iter().any(|k| k.ends_with("/audio/seg_00000.m4s")), "{keys:?}");

    // A video range reads in order: few, large GETs, the whole file once.
    let video = worker_with_env(
        &["transcode", &src_url, &format!("s3://{BUCKET}/{prefix}/video/"), "--ladder", ladder, "--start", "0"],
        &s3.env(),
    )
    .unwrap()
    .ok()
    .unwrap();
    let log = video.stderr();
    let (requests, fetched) = (logged(&log, "fetched_requests"), logged(&log, "fetched_bytes"));
    assert!(fetched >= size * 9 / 10 && fetched <= size * 11 / 10, "fetched {fetched} of {size}:\n{log}");
    assert!(requests <= size / (4 << 20) + 12, "{requests} GETs for {size} bytes:\n{log}");
}
