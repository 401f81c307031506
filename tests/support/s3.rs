//! The real S3 servers of the tests, started by `scripts/services.sh` when they are not
//! running: SeaweedFS on 127.0.0.1:8333 ([`s3`]), and Swift's `s3api` middleware on the
//! one-node Swift of 127.0.0.1:8089 ([`swift_s3`]: the same containers the Swift tests
//! write natively, so it also reads what they wrote, independently of the farm's client).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use anyhow::{ensure, Context, Result};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub const ENDPOINT: &str = "http://127.0.0.1:8333";
pub const BUCKET: &str = "farm-test";
pub const ACCESS_KEY: &str = "farm-test";
pub const SECRET_KEY: &str = "farm-test-secret";

/// The one-node Swift: its tempauth, and the same account through `s3api`.
pub const SWIFT_AUTH: &str = "http://127.0.0.1:8089/auth/v1.0";
pub const SWIFT_USER: &str = "test:tester";
pub const SWIFT_KEY: &str = "testing";
pub const SWIFT_S3_ENDPOINT: &str = "http://127.0.0.1:8089";

pub struct S3 {
    pub store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
    endpoint: &'static str,
    access_key: &'static str,
    secret_key: &'static str,
}

/// The test S3 server (SeaweedFS), started if needed (once per test binary).
pub fn s3() -> &'static S3 {
    static S3: OnceLock<S3> = OnceLock::new();
    S3.get_or_init(|| S3::start("s3", ENDPOINT, ACCESS_KEY, SECRET_KEY))
}

/// Swift's S3 API on the test Swift, started if needed (once per test binary).
pub fn swift_s3() -> &'static S3 {
    static SWIFT: OnceLock<S3> = OnceLock::new();
    SWIFT.get_or_init(|| S3::start("swift", SWIFT_S3_ENDPOINT, SWIFT_USER, SWIFT_KEY))
}

/// Environment for a farm process reading and writing the test Swift natively
/// (`swift://farm-test/...`), with tempauth as python-swiftclient takes it.
pub fn swift_env() -> Vec<(&'static str, &'static str)> {
    vec![("ST_AUTH", SWIFT_AUTH), ("ST_USER", SWIFT_USER), ("ST_KEY", SWIFT_KEY)]
}

impl S3 {
    fn start(service: &str, endpoint: &'static str, access_key: &'static str, secret_key: &'static str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
        let status = Command::new(root.join("scripts/services.sh")).arg(service).status().expect("run services.sh");
        assert!(status.success(), "could not start the {service} server (scripts/services.sh {service})");
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id(access_key)
            .with_secret_access_key(secret_key)
            .build()
            .expect("S3 client");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        S3 { store: Arc::new(store), rt, endpoint, access_key, secret_key }
    }

    /// Environment for a worker process talking to this server.
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key),
            ("AWS_REGION", "us-east-1"),
            ("FARM_S3_ENDPOINT", self.endpoint),
        ]
    }

    pub fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        const PART: usize = 16 * 1024 * 1024;
        if std::fs::metadata(file)?.len() <= PART as u64 {
            let data = std::fs::read(file)?;
            self.rt.block_on(self.store.put(&ObjectPath::from(key), PutPayload::from(data)))?;
            return Ok(());
        }
        // Large sources (benchmarks) go up in parts, never whole in memory.
        use std::io::Read;
        let mut reader = std::fs::File::open(file)?;
        self.rt.block_on(async {
            let upload = self.store.put_multipart(&ObjectPath::from(key)).await?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
            let mut buf = vec![0u8; PART];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                writer.wait_for_capacity(4).await?;
                writer.write(&buf[..n]);
            }
            writer.finish().await?;
            anyhow::Ok(())
        })
    }

    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let data = self.rt.block_on(async { self.store.get(&ObjectPath::from(key)).await?.bytes().await })?;
        Ok(data.to_vec())
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        self.rt.block_on(self.store.delete(&ObjectPath::from(key)))?;
        Ok(())
    }

    pub fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        use futures::TryStreamExt;
        let list: Vec<_> = self.rt.block_on(self.store.list(Some(&ObjectPath::from(prefix))).try_collect())?;
        let mut keys: Vec<String> = list.into_iter().map(|m| m.location.to_string()).collect();
        keys.sort();
        Ok(keys)
    }

    /// Copies every object under `prefix` into a local folder (keys relative to `prefix`).
    pub fn download(&self, prefix: &str, dir: &Path) -> Result<Vec<PathBuf>> {
        let prefix = prefix.trim_end_matches('/');
        let mut files = Vec::new();
        for key in self.keys(prefix)? {
            let data = self.rt.block_on(async { self.store.get(&ObjectPath::from(key.as_str())).await?.bytes().await })?;
            let rel = key.strip_prefix(&format!("{prefix}/")).context("key outside the prefix")?;
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent"))?;
            std::fs::write(&path, &data)?;
            files.push(path);
        }
        ensure!(!files.is_empty(), "nothing under s3://{BUCKET}/{prefix}");
        Ok(files)
    }
}

/// A prefix no other test uses.
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("tests/{name}-{}-{nanos}", std::process::id())
}
