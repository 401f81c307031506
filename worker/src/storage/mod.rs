//! Object storage: where sources are read from and where output goes.
//!
//! A location is a local path or an `s3://bucket/key` URL (AWS S3, Ceph, SeaweedFS,
//! OpenStack Swift's S3 API...). Credentials, region and endpoint come from the usual AWS
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`) or from [`S3Settings`]. Sources are read with
//! ranged GETs through [`ObjectReader`], so a worker never holds a whole original; output
//! is written object by object through [`ObjectSink`]. The pipeline's threads are plain
//! threads: they wait on the async client through a runtime [`Handle`].

use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::runtime::Handle;

mod reader;
pub use reader::{ObjectReader, ReadStats, ReaderHandle};

use crate::sink::{LocalDir, Sink};
use crate::source::SourceLocation;

/// Objects above this are uploaded in parts.
const MULTIPART_ABOVE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("{0:?} is not a location this farm reads or writes: use a local path or s3://bucket/key")]
    Scheme(String),
    #[error("{0:?} names no bucket")]
    NoBucket(String),
    #[error("{0:?} contains '..' or an empty path segment")]
    Traversal(String),
    #[error("cannot set up S3 access for bucket {bucket}: {message}")]
    Client { bucket: String, message: String },
}

/// Where a source or an output prefix lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl Location {
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LocationError::NoBucket(text.into()));
            }
            let key = key.trim_end_matches('/');
            if !key.is_empty() && key.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
                return Err(LocationError::Traversal(text.into()));
            }
            return Ok(Self::S3 { bucket: bucket.into(), key: key.into() });
        }
        // Anything else with a scheme (http:, file:, ftp:, concat:...) is refused: FFmpeg
        // would happily open it, we never let it.
        let has_scheme = text.split_once(':').is_some_and(|(s, _)| {
            s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if has_scheme {
            return Err(LocationError::Scheme(text.into()));
        }
        Ok(Self::Local(PathBuf::from(text)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// S3 settings on top of the AWS environment variables.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// How long one request is retried through storage trouble (default [`STORAGE_RETRY_FOR`]).
    pub retry_for: Option<std::time::Duration>,
}

/// Storage trouble (connection refused or reset, 5xx, 429, timeouts) is retried with
/// exponential backoff and full jitter (0.2 s growing to at most 20 s) for up to
/// [`STORAGE_RETRY_FOR`] per request; after that the request fails and the task fails as
/// retryable (requeued, up to the attempt limit). A request that hangs is cut off after
/// [`STORAGE_REQUEST_TIMEOUT`] and retried. `FARM_STORAGE_RETRY_SECONDS` sets the bound.
pub const STORAGE_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(120);
pub const STORAGE_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn retry_policy(retry_for: std::time::Duration) -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(200),
            max_backoff: std::time::Duration::from_secs(20),
            base: 2.0,
        },
        max_retries: 15,
        retry_timeout: retry_for,
    }
}

/// The S3 flags both binaries take (each with an environment variable).
#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// S3 endpoint for s3:// locations (default: AWS_ENDPOINT_URL, else AWS)
    #[arg(long, env = "FARM_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default: AWS_REGION)
    #[arg(long, env = "FARM_S3_REGION")]
    pub s3_region: Option<String>,
    /// Seconds one storage request is retried through errors (backoff with jitter) before
    /// it fails (a task then fails as retryable)
    #[arg(long, env = "FARM_STORAGE_RETRY_SECONDS", default_value_t = STORAGE_RETRY_FOR.as_secs())]
    pub storage_retry_seconds: u64,
}

impl S3Args {
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            retry_for: Some(std::time::Duration::from_secs(self.storage_retry_seconds)),
        }
    }
}

pub fn s3_store(bucket: &str, settings: &S3Settings) -> Result<Arc<dyn ObjectStore>, LocationError> {
    use object_store::aws::AmazonS3ConfigKey;
    use object_store::ClientConfigKey;
    // Set as keys, not by replacing the client options `from_env` filled (AWS_ALLOW_HTTP...).
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry_policy(settings.retry_for.unwrap_or(STORAGE_RETRY_FOR)))
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), format!("{}s", STORAGE_REQUEST_TIMEOUT.as_secs()))
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s");
    if let Some(endpoint) = &settings.endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    builder
        .build()
        .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        .map_err(|e| LocationError::Client { bucket: bucket.into(), message: e.to_string() })
}

/// Keeps "not found" recognisable (a missing source is a permanent failure).
fn to_io(e: object_store::Error) -> std::io::Error {
    std::io::Error::from(e)
}

/// Where a task's source is: a local path or an object.
pub fn open_source(text: &str, s3: &S3Settings, rt: &Handle) -> Result<SourceLocation, LocationError> {
    Ok(match Location::parse(text)? {
        Location::Local(path) => SourceLocation::Local(path),
        Location::S3 { bucket, key } => SourceLocation::Object {
            url: text.to_string(),
            store: s3_store(&bucket, s3)?,
            key,
            rt: rt.clone(),
        },
    })
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("cannot create the output folder")]
    Io(#[source] std::io::Error),
}

/// Where a task's output goes: a local folder (created) or a bucket prefix.
pub fn open_sink(text: &str, s3: &S3Settings, rt: &Handle) -> Result<Box<dyn Sink>, OpenError> {
    Ok(match Location::parse(text)? {
        Location::Local(path) => Box::new(LocalDir::new(&path).map_err(OpenError::Io)?),
        Location::S3 { bucket, key } => {
            Box::new(ObjectSink::new(s3_store(&bucket, s3)?, &bucket, &key, rt.clone()))
        }
    })
}

/// Output under a prefix of a bucket.
pub struct ObjectSink {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    rt: Handle,
}

impl ObjectSink {
    pub fn new(store: Arc<dyn ObjectStore>, bucket: &str, prefix: &str, rt: Handle) -> Self {
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Self { store, bucket: bucket.into(), prefix, rt }
    }

    fn path(&self, key: &str) -> std::io::Result<ObjectPath> {
        crate::sink::check_key(key)?;
        Ok(ObjectPath::from(format!("{}{key}", self.prefix)))
    }
}

impl Sink for ObjectSink {
    fn put(&self, key: &str, data: &[u8]) -> std::io::Result<()> {
        let path = self.path(key)?;
        let _timer = crate::metrics::PUT_SECONDS.start_timer();
        crate::metrics::STORAGE_BYTES.with_label_values(&["written"]).inc_by(data.len() as u64);
        self.rt.block_on(async {
            if data.len() <= MULTIPART_ABOVE {
                self.store.put(&path, PutPayload::from(data.to_vec())).await.map(|_| ())
            } else {
                let upload = self.store.put_multipart(&path).await?;
                let mut writer = WriteMultipart::new(upload);
                writer.write(data);
                writer.finish().await.map(|_| ())
            }
        })
        .map_err(to_io)
    }

    fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        let path = self.path(key)?;
        self.rt
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(to_io)
    }

    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let base = ObjectPath::from(self.prefix.trim_end_matches('/'));
        let metas: Vec<_> = self
            .rt
            .block_on(self.store.list(Some(&base)).try_collect::<Vec<_>>())
            .map_err(to_io)?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&self.prefix).map(str::to_owned))
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn locate(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_local_paths_or_s3_urls_only() {
        assert_eq!(Location::parse("clip.mov").unwrap(), Location::Local("clip.mov".into()));
        assert_eq!(Location::parse("/mnt/a b/clip.mov").unwrap(), Location::Local("/mnt/a b/clip.mov".into()));
        assert_eq!(
            Location::parse("s3://rushes/day1/A001.mov").unwrap(),
            Location::S3 { bucket: "rushes".into(), key: "day1/A001.mov".into() }
        );
        assert_eq!(
            Location::parse("s3://review/job-1/").unwrap(),
            Location::S3 { bucket: "review".into(), key: "job-1".into() }
        );
        for bad in ["http://example.com/a.mov", "file:///etc/passwd", "concat:a|b", "ftp://x/y"] {
            assert!(matches!(Location::parse(bad), Err(LocationError::Scheme(_))), "{bad}");
        }
        assert!(matches!(Location::parse("s3:///key"), Err(LocationError::NoBucket(_))));
        assert!(matches!(Location::parse("s3://b/a/../c"), Err(LocationError::Traversal(_))));
        assert!(matches!(Location::parse("s3://b/a//c"), Err(LocationError::Traversal(_))));
    }
}
