//! Review settings through the farm (issue 15): a job with a LUT in S3, burn-ins, a
//! watermark and a start timecode runs on RabbitMQ, S3 and PostgreSQL and leaves
//! `review.json`, `thumbnails.vtt` and `poster.jpg` beside its master; bad settings are
//! refused at submission with the reason, before any task is queued.

use std::time::Duration;

use farm_contract::task::Priority;
use farm_queue::Topology;
use farm_tests::amqp::broker;
use farm_tests::farm::Farm;
use farm_tests::fixtures::{make, SMALL_LADDER};
use farm_tests::picture::write_test_lut;
use farm_tests::s3::{s3, unique_prefix, BUCKET};

use farm_tests::farm::POSTGRES;

fn clip() -> std::path::PathBuf {
    make(
        "review-api-8s.mov",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30000/1001:duration=8",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=8",
            "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000:duration=8",
            "-map", "0:v", "-map", "1:a", "-map", "2:a",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
            "-timecode", "01:00:00;00",
        ],
    )
    .unwrap()
}

#[test]
fn a_review_job_runs_through_the_farm_and_describes_itself() {
    let s3 = s3();
    let prefix = unique_prefix("review-api");
    let queue_prefix = prefix.replace('/', "-");
    s3.put_file(&format!("{prefix}/in.mov"), &clip()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lut = dir.path().join("show.cube");
    write_test_lut(&lut).unwrap();
    s3.put_file(&format!("{prefix}/show.cube"), &lut).unwrap();
    let broken = dir.path().join("broken.cube");
    std::fs::write(&broken, std::fs::read_to_string(&lut).unwrap().replacen("LUT_3D_SIZE 33", "LUT_3D_SIZE 33\nLUT_1D_SIZE 1024", 1)).unwrap();
    s3.put_file(&format!("{prefix}/broken.cube"), &broken).unwrap();

    let farm = Farm::start(POSTGRES, &queue_prefix, 2, 4.0);
    let job = |extra: serde_json::Value| {
        let mut body = serde_json::json!({
            "source": format!("s3://{BUCKET}/{prefix}/in.mov"),
            "output": format!("s3://{BUCKET}/{prefix}/out/"),
            "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body.to_string()
    };
    let refused = [
        (serde_json::json!({"lut": format!("s3://{BUCKET}/{prefix}/broken.cube")}), 422, "line 4: a 1D LUT or 1D shaper"),
        (serde_json::json!({"lut": "s3://elsewhere/show.cube"}), 403, "not inside an allowed location"),
        (serde_json::json!({"lut": format!("s3://{BUCKET}/{prefix}/missing.cube")}), 422, "missing.cube"),
        (serde_json::json!({"start_timecode": "01:00:00:30"}), 422, "frames 0 to 29"),
        (serde_json::json!({"start_timecode": "1:00:00"}), 422, "not HH:MM:SS:FF"),
        (serde_json::json!({"watermark": "two\nlines"}), 422, "control character"),
        (serde_json::json!({"burn_in": ["timecode", "date"]}), 400, "unknown variant"),
        (serde_json::json!({"tone_map": "aces"}), 400, "unknown variant"),
    ];
    for (extra, code, message) in refused {
        let (status, reply) = farm.submit(&job(extra.clone()));
        assert_eq!(status, code, "{extra}: {reply}");
        assert!(reply["error"].as_str().unwrap_or("").contains(message), "{extra}: {reply}");
    }
    let t = Topology::new(&queue_prefix);
    assert_eq!(broker().depth(&t.queue(Priority::Normal)).unwrap(), 0, "nothing queued for refused jobs");

    let (status, created) = farm.submit(&job(serde_json::json!({
        "lut": format!("s3://{BUCKET}/{prefix}/show.cube"),
        "burn_in": ["timecode", "clip_name", "frame_number"],
        "watermark": "CONFIDENTIAL - SHOW - VENDOR",
    })));
    assert_eq!(status, 201, "{created}\n{}", farm.coordinator.log());
    assert!(created["tasks"].as_array().unwrap().len() >= 2, "chunked: {created}");
    let id = created["id"].as_str().unwrap();
    let done = farm.wait_final(id, Duration::from_secs(240));
    assert_eq!(done["state"], "succeeded", "{done}\n{}", farm.coordinator.log());

    let get = |name: &str| s3.get(&format!("{prefix}/out/{name}")).unwrap();
    let review: serde_json::Value = serde_json::from_slice(&get("review.json")).unwrap();
    assert_eq!(review["start_timecode"], "01:00:00;00", "the source's tmcd timecode: {review}");
    assert_eq!((review["timecode_origin"].as_str(), review["drop_frame"].as_bool()), (Some("source"), Some(true)));
    assert_eq!(review["frame_rate"], serde_json::json!({"num": 30000, "den": 1001}));
    assert_eq!(review["frame_count"], 240);
    assert_eq!(review["clip_name"], "in");
    assert_eq!(review["burn_in"], serde_json::json!(["timecode", "clip_name", "frame_number"]));
    assert_eq!(review["lut"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(review["colour"], "LUT");
    assert_eq!(review["audio"].as_array().unwrap().len(), 3, "mix and two tracks: {review}");
    let vtt = String::from_utf8(get("thumbnails.vtt")).unwrap();
    // 240 frames at 29.97 fps last 8.008 s: thumbnails at 0, 2, 4, 6 and 8 s
    assert_eq!(vtt.matches("-->").count(), 5, "{vtt}");
    assert!(vtt.contains("00:00:08.000 --> 00:00:08.008"), "{vtt}");
    assert!(get("poster.jpg").starts_with(&[0xFF, 0xD8]), "a JPEG");
    let master = String::from_utf8(get("index.m3u8")).unwrap();
    assert_eq!(master.matches("#EXT-X-MEDIA:TYPE=AUDIO").count(), 3, "{master}");
}
