//! The real S3 server of the tests: SeaweedFS on 127.0.0.1:8333, started by
//! `scripts/services.sh` when it is not running.

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

pub struct S3 {
    pub store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
}

/// The test S3 server, started if needed (once per test binary).
pub fn s3() -> &'static S3 {
    static S3: OnceLock<S3> = OnceLock::new();
    S3.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
        let status = Command::new(root.join("scripts/services.sh")).arg("s3").status().expect("run services.sh");
        assert!(status.success(), "could not start SeaweedFS (scripts/services.sh s3)");
        let store = AmazonS3Builder::new()
            .with_endpoint(ENDPOINT)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .expect("S3 client");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        S3 { store: Arc::new(store), rt }
    })
}

impl S3 {
    /// Environment for a worker process talking to the test server.
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
            ("FARM_S3_ENDPOINT", ENDPOINT),
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
