//! S3-compatible object storage (AWS S3, Ceph, SeaweedFS, OpenStack Swift's S3 API...):
//! the client settings, the flags both binaries take, and the retry policy. Credentials, region and endpoint come from the usual AWS
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`) or from [`StorageSettings`]. Sources are read with
//! ranged GETs through [`crate::ObjectReader`], so a worker never holds a whole original; output
//! is written object by object through [`crate::ObjectSink`]. The pipeline's threads are plain
//! threads: they wait on the async client through a runtime `Handle`.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

use crate::location::LocationError;
use crate::settings::StorageSettings;

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

pub fn s3_store(bucket: &str, settings: &StorageSettings) -> Result<Arc<dyn ObjectStore>, LocationError> {
    Ok(s3_client(bucket, settings)? as Arc<dyn ObjectStore>)
}

/// The S3 client of `bucket`: an object store that also signs URLs.
pub fn s3_client(bucket: &str, settings: &StorageSettings) -> Result<Arc<object_store::aws::AmazonS3>, LocationError> {
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
        .map(Arc::new)
        .map_err(|e| LocationError::Client { bucket: bucket.into(), message: e.to_string() })
}

