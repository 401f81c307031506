//! Segment encryption (issue 16) checked by an independent implementation: FFmpeg's own
//! AES-128 reader (the `crypto:` protocol HLS players in FFmpeg use). A segment sealed by
//! `farm_hls::encryption` does not decode as it is, decodes with its key and IV, and does
//! not decode with another key.

use std::process::Command;

use farm_hls::encryption::{encrypt, ContentKey, Iv};
use farm_tests::probe::ts_frames;

#[test]
fn an_encrypted_segment_decodes_only_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("seg.ts");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts"])
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ts_frames(&plain, None, "v"), 50, "the plain segment decodes");

    let key = ContentKey(*b"farm-test-key-16");
    let iv = Iv::derive(&key, "360p", 12);
    let sealed = dir.path().join("sealed.ts");
    std::fs::write(&sealed, encrypt(&key, &iv, &std::fs::read(&plain).unwrap())).unwrap();
    let (key_hex, iv_hex) = (hex::encode(key.0), hex::encode(iv.0));

    assert_eq!(ts_frames(&sealed, None, "v"), 0, "without the key nothing decodes");
    assert_eq!(ts_frames(&sealed, Some((&key_hex, &iv_hex)), "v"), 50, "with its key and IV it does");
    let other = hex::encode([0x5a; 16]);
    assert_eq!(ts_frames(&sealed, Some((&other, &iv_hex)), "v"), 0, "another key decodes nothing");
}
