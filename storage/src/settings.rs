//! The storage settings both binaries take, from flags and environment: S3's endpoint and
//! region (on top of the AWS environment variables), Swift's credentials (OpenStack's and
//! python-swiftclient's variables, see [`crate::swift`]), and how long one request is
//! retried through storage trouble.

use crate::s3::STORAGE_RETRY_FOR;
use crate::swift::{Credentials, SwiftArgs};

/// Settings of object storage, S3 and Swift.
#[derive(Debug, Clone, Default)]
pub struct StorageSettings {
    /// S3 endpoint (default: AWS_ENDPOINT_URL, else AWS).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// How long one request is retried through storage trouble (default [`STORAGE_RETRY_FOR`]).
    pub retry_for: Option<std::time::Duration>,
    /// How to log in to Swift, for `swift://` locations.
    pub swift: Option<Credentials>,
}

impl StorageSettings {
    pub fn retry_for(&self) -> std::time::Duration {
        self.retry_for.unwrap_or(STORAGE_RETRY_FOR)
    }
}

/// The storage flags both binaries take (each with an environment variable).
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
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
    #[command(flatten)]
    pub swift: SwiftArgs,
}

impl StorageArgs {
    pub fn settings(&self) -> StorageSettings {
        StorageSettings {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            retry_for: Some(std::time::Duration::from_secs(self.storage_retry_seconds)),
            swift: self.swift.credentials(),
        }
    }
}
