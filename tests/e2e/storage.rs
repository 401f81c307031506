//! Sources read from and ladders written to a real S3 server (SeaweedFS).

use farm_tests::fixtures::{small_ladder_file, Kind};
use farm_tests::hls::check_ladder;
use farm_tests::s3::{s3, unique_prefix, BUCKET};
use farm_tests::worker::worker_with_env;

#[test]
fn transcodes_from_s3_to_s3() {
    let s3 = s3();
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
    assert!(keys.iter().any(|k| k.ends_with("/out/360p/seg_00000.ts")), "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains(".tmp")), "no temporary objects: {keys:?}");
    let local = tempfile::tempdir().unwrap();
    s3.download(&format!("{prefix}/out"), local.path()).unwrap();
    let frames = farm_tests::probe::video_frame_count(&source).unwrap();
    let check = check_ladder(local.path(), frames, 24000.0 / 1001.0, true).unwrap();
    assert_eq!(check.renditions.len(), 3);
}

#[test]
fn a_missing_source_object_is_a_clear_permanent_error() {
    let s3 = s3();
    let prefix = unique_prefix("missing");
    let out = tempfile::tempdir().unwrap();
    let url = format!("s3://{BUCKET}/{prefix}/no-such-clip.mov");
    let run = worker_with_env(&["transcode", &url, out.path().to_str().unwrap()], &s3.env()).unwrap();
    assert!(!run.output.status.success());
    let err = run.stderr();
    assert!(err.contains(&format!("source {url} does not exist")), "{err}");
}

#[test]
fn wrong_credentials_are_refused() {
    let s3 = s3();
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
