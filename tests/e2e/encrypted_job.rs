//! An encrypted job through the farm (issue 16): RabbitMQ, S3, PostgreSQL, two workers,
//! keys rotating every 10 s of media. Every segment of every rendition, audio included,
//! is sealed AES-128 and announced by a key tag with an explicit IV, in the EVENT
//! playlists while the job runs (the coordinator derives the IVs) and in the VOD ones at
//! the end (the workers recorded them): both agree. A segment does not decode without its
//! key, decodes with the key the coordinator hands a producer, and not with another; the
//! I-frame playlist's own sealed resources decode too. Key requests are authorised by role
//! and audited; no key is ever written to object storage, and no output object is
//! readable without credentials.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use farm_tests::farm::{new_token, Extra, Farm};
use farm_tests::probe::ts_frames;
use farm_tests::fixtures::{clip_30s, SMALL_LADDER};
use farm_tests::s3::{s3, unique_prefix, BUCKET};

use farm_tests::farm::POSTGRES;

/// (key URI, IV without 0x, segment URI) of every segment of a media playlist; panics on a
/// segment without a key tag before it.
fn keyed_segments(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut key: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            assert!(attrs.starts_with("METHOD=AES-128,"), "{line}");
            let uri = attrs.split("URI=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
            let iv = attrs.split("IV=0x").nth(1).expect("an explicit IV on every key tag").chars().take(32).collect::<String>();
            assert_eq!(iv.len(), 32, "{line}");
            key = Some((uri, iv));
        } else if !line.starts_with('#') && !line.is_empty() {
            let (uri, iv) = key.take().unwrap_or_else(|| panic!("segment {line} has no key tag of its own:\n{text}"));
            out.push((uri, iv, line.to_string()));
        }
    }
    out
}

#[test]
fn an_encrypted_job_is_sealed_everywhere_and_plays_only_with_its_keys() {
    let s3 = s3();
    let prefix = unique_prefix("encrypted");
    s3.put_file(&format!("{prefix}/in.mov"), &clip_30s()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (producer, ingest) = (new_token("eve", "producer"), new_token("pipeline", "ingest"));
    let principals = dir.path().join("principals.json");
    std::fs::write(&principals, format!("[{},{}]", producer.1, ingest.1)).unwrap();
    let master = dir.path().join("master.key");
    std::fs::write(&master, "c0".repeat(32)).unwrap();
    let extra = Extra {
        coordinator: vec![
            ("FARM_PRINCIPALS_FILE", principals.display().to_string()),
            ("FARM_MASTER_KEY_FILE", master.display().to_string()),
            ("FARM_KEY_PERIOD_SECONDS", "10".into()),
        ],
        ..Default::default()
    };
    let farm = Farm::start_with(POSTGRES, &prefix.replace('/', "-"), 2, 6.0, extra);
    let body = serde_json::json!({
        "source": format!("s3://{BUCKET}/{prefix}/in.mov"),
        "output": format!("s3://{BUCKET}/{prefix}/out/"),
        "ladder": serde_json::from_str::<serde_json::Value>(SMALL_LADDER).unwrap(),
        // MPEG-TS: each sealed segment decodes alone with its key (the review page's test
        // plays an encrypted fMP4 ladder).
        "segment_format": "ts",
    });
    let (code, job) = farm.submit(&body.to_string());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();

    // The EVENT playlist of the top rung while the job runs.
    let live_key = format!("{prefix}/out/360p/index.m3u8");
    let started = Instant::now();
    let mut live = None;
    while live.is_none() && farm.job(&id)["state"] != "succeeded" && started.elapsed() < Duration::from_secs(240) {
        live = s3.get(&live_key).ok().map(|d| String::from_utf8(d).unwrap()).filter(|t| t.contains("#EXT-X-PLAYLIST-TYPE:EVENT"));
    }
    let done = farm.wait_final(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");
    let out = dir.path().join("out");
    s3.download(&format!("{prefix}/out"), &out).unwrap();

    let mut ivs = BTreeMap::new();
    let mut periods = std::collections::BTreeSet::new();
    for rendition in ["360p", "240p", "144p", "audio"] {
        let text = std::fs::read_to_string(out.join(rendition).join("index.m3u8")).unwrap();
        let segments = keyed_segments(&text);
        assert!(segments.len() >= 5, "{rendition}: {text}");
        for (uri, iv, segment) in &segments {
            assert!(uri.starts_with(&format!("/v1/jobs/{id}/keys/")), "{uri}");
            periods.insert(uri.rsplit('/').next().unwrap().to_string());
            ivs.insert(format!("{rendition}/{segment}"), (uri.clone(), iv.clone()));
        }
    }
    assert_eq!(periods.into_iter().collect::<Vec<_>>(), ["0", "1", "2"], "keys rotate every 10 s of the 30 s clip");
    let live = live.expect("an EVENT playlist was seen while the job ran");
    for (uri, iv, segment) in keyed_segments(&live) {
        assert_eq!(ivs[&format!("360p/{segment}")], (uri, iv), "the live playlist's key tag for {segment} is the final one's");
    }

    // Keys: a producer gets them, an ingest principal and nobody else do not.
    let http = reqwest::blocking::Client::new();
    let fetch = |token: Option<&str>, period: &str| {
        let mut r = http.get(format!("{}/v1/jobs/{id}/keys/{period}", farm.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    };
    let mut keys = BTreeMap::new();
    for period in ["0", "1", "2"] {
        let (code, key) = fetch(Some(&producer.0), period);
        assert_eq!((code, key.len()), (200, 16), "period {period}");
        keys.insert(format!("/v1/jobs/{id}/keys/{period}"), hex::encode(key));
    }
    assert_eq!(fetch(Some(&ingest.0), "0").0, 403);
    assert_eq!(fetch(None, "0").0, 401);
    assert_eq!(fetch(Some(&producer.0), "7").0, 404);

    // Segments: sealed, open with their key and IV, not with another key.
    let other = hex::encode([0x42u8; 16]);
    for (name, stream) in [("360p/seg_00000.ts", "v"), ("240p/seg_00004.ts", "v"), ("audio/seg_00003.ts", "a")] {
        let (uri, iv) = &ivs[name];
        let path = out.join(name);
        assert_eq!(ts_frames(&path, None, stream), 0, "{name} decodes without its key");
        assert!(ts_frames(&path, Some((&keys[uri], iv)), stream) > 0, "{name} does not decode with its key");
        assert_eq!(ts_frames(&path, Some((&other, iv)), stream), 0, "{name} decodes with another key");
    }
    let iframes = std::fs::read_to_string(out.join("360p/iframes.m3u8")).unwrap();
    assert!(!iframes.contains("BYTERANGE"), "{iframes}");
    let sealed_iframes = keyed_segments(&iframes);
    assert!(sealed_iframes.len() >= 10, "{iframes}");
    for (uri, iv, resource) in [&sealed_iframes[0], sealed_iframes.last().unwrap()] {
        let path = out.join("360p").join(resource);
        assert_eq!(ts_frames(&path, Some((&keys[uri], iv)), "v"), 1, "{resource} is one I-frame");
    }

    // The bucket stays private: no output object is readable without credentials.
    let anonymous = reqwest::blocking::Client::new();
    let objects = s3.keys(&format!("{prefix}/out")).unwrap();
    assert!(objects.len() > 20, "{objects:?}");
    for key in &objects {
        let status = anonymous.get(format!("{}/{BUCKET}/{key}", farm_tests::s3::ENDPOINT)).send().unwrap().status().as_u16();
        assert_eq!(status, 403, "s3://{BUCKET}/{key} answered {status} to an anonymous GET");
    }

    // Nothing under the output holds a key.
    let all_keys: Vec<Vec<u8>> = keys.values().map(|k| hex::decode(k).unwrap()).collect();
    for entry in walk(&out) {
        let data = std::fs::read(&entry).unwrap();
        for k in &all_keys {
            assert!(!data.windows(16).any(|w| w == k.as_slice()), "{} holds a content key", entry.display());
            assert!(!String::from_utf8_lossy(&data).contains(&hex::encode(k)), "{} holds a content key in hex", entry.display());
        }
    }
    let audit = farm.http.get(format!("{}/v1/audit?job={id}", farm.base)).send().unwrap().json::<serde_json::Value>().unwrap();
    let fetched: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "key.fetched")
        .map(|r| (r["principal"].as_str().unwrap(), r["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(fetched, [("eve", "period 0"), ("eve", "period 1"), ("eve", "period 2")]);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
