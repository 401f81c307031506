//! The coordinator's configuration: flags, each with an environment variable.

use std::net::SocketAddr;

use farm_storage::{S3Args, S3Settings};

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "coordinator", version, about = "Coordinator of the HLS review farm")]
pub struct Config {
    /// Address of the HTTP API
    #[arg(long, env = "FARM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data folder of the embedded farm (its SQLite database; outputs may go here too)
    #[arg(long, env = "FARM_DATA_DIR", default_value = "farm-data")]
    pub data_dir: std::path::PathBuf,
    /// Job database: sqlite://PATH or postgres://... (default: SQLite in the data folder)
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// RabbitMQ URL; without one the coordinator runs the embedded farm: an in-process
    /// queue and `--workers` in-process workers
    #[arg(long, env = "AMQP_URL")]
    pub amqp_url: Option<String>,
    /// In-process workers of the embedded farm
    #[arg(long, env = "FARM_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Prefix of the farm's exchanges and queues
    #[arg(long, env = "FARM_QUEUE_PREFIX", default_value = "farm")]
    pub queue_prefix: String,
    /// Seconds of source per video chunk task (snapped to segment boundaries)
    #[arg(long, env = "FARM_CHUNK_SECONDS", default_value_t = 60.0)]
    pub chunk_seconds: f64,
    /// Comma-separated prefixes a job's source must start with (s3://bucket/ or /path/); empty: any
    #[arg(long, env = "FARM_ALLOWED_SOURCES", default_value = "", value_delimiter = ',')]
    pub allowed_sources: Vec<String>,
    /// Comma-separated prefixes a job's output must start with; empty: any
    #[arg(long, env = "FARM_ALLOWED_OUTPUTS", default_value = "", value_delimiter = ',')]
    pub allowed_outputs: Vec<String>,
    #[command(flatten)]
    pub storage: S3Args,
    /// RabbitMQ management API with credentials and vhost, e.g.
    /// http://user:pass@rabbitmq:15672/%2f: adds unacknowledged (in-flight) tasks per queue
    /// to the metrics
    #[arg(long, env = "FARM_RABBITMQ_MANAGEMENT_URL", hide_env_values = true)]
    pub rabbitmq_management_url: Option<String>,
    /// Seconds without a report from the worker running a task after which the task is
    /// handed out again (workers report every 2 s while they work)
    #[arg(long, env = "FARM_TASK_STALL_SECONDS", default_value_t = 300)]
    pub task_stall_seconds: u64,
    /// Bearer token every API request but /healthz, /readyz and /metrics must carry
    /// (`Authorization: Bearer TOKEN`). Required with AMQP_URL; the embedded farm runs
    /// without one, with a warning.
    #[arg(long, env = "FARM_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

impl Config {
    /// Settings that cannot work together, as a message for the operator.
    pub fn check(&self) -> Result<(), String> {
        let token = self.api_token.as_deref().map(str::trim).unwrap_or("");
        if self.amqp_url.is_some() && token.is_empty() {
            return Err("FARM_API_TOKEN (--api-token) is required when AMQP_URL is set: the distributed farm's API never runs unauthenticated".into());
        }
        if self.api_token.is_some() && token.len() < 16 {
            return Err("FARM_API_TOKEN must be at least 16 characters".into());
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/farm.db?mode=rwc", self.data_dir.display()))
    }

    pub fn s3(&self) -> S3Settings {
        self.storage.settings()
    }
}

/// Whether `location` starts with one of `allowed` (an empty list allows everything).
pub fn allowed(location: &str, allowed: &[String]) -> bool {
    let allowed: Vec<&String> = allowed.iter().filter(|a| !a.trim().is_empty()).collect();
    allowed.is_empty() || allowed.iter().any(|a| location.starts_with(a.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_must_start_with_an_allowed_prefix() {
        let list = vec!["s3://rushes/".to_string(), "/mnt/ingest/".to_string()];
        assert!(allowed("s3://rushes/day1/A001.mov", &list));
        assert!(allowed("/mnt/ingest/A001.mov", &list));
        assert!(!allowed("s3://rushes-other/A001.mov", &list));
        assert!(!allowed("s3://finance/report.mov", &list));
        assert!(allowed("anything", &[]));
        assert!(allowed("anything", &["".to_string()]));
    }
}
