//! The coordinator's configuration: flags, each with an environment variable.

use std::net::SocketAddr;

use farm_storage::{AllowList, StorageArgs, StorageSettings};

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "coordinator", version, about = "Coordinator of the HLS review farm")]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub log: farm_service::logging::LogArgs,
    /// Address of the HTTP API
    #[arg(long, env = "FARM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data folder of the embedded farm (its SQLite database; outputs may go here too)
    #[arg(long, env = "FARM_DATA_DIR", default_value = "farm-data")]
    pub data_dir: std::path::PathBuf,
    /// Job database: sqlite://PATH or postgres://... (default: SQLite in the data folder)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// RabbitMQ URL; without one the coordinator runs the embedded farm: an in-process
    /// queue and `--workers` in-process workers
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// Also take job requests published to `{prefix}.jobs` with routing key `submit`
    /// (with AMQP_URL; the message's `user_id` names its principal)
    #[arg(long, env = "FARM_AMQP_SUBMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub amqp_submit: bool,
    /// In-process workers of the embedded farm
    #[arg(long, env = "FARM_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Prefix of the farm's exchanges and queues
    #[arg(long, env = "FARM_QUEUE_PREFIX", default_value = "farm")]
    pub queue_prefix: String,
    /// Seconds of source per video chunk task (snapped to segment boundaries)
    #[arg(long, env = "FARM_CHUNK_SECONDS", default_value_t = 60.0)]
    pub chunk_seconds: f64,
    /// Comma-separated locations a job's source must lie inside (s3://bucket/prefix or
    /// /path), compared component by component with symlinks resolved; empty: any
    #[arg(long, env = "FARM_ALLOWED_SOURCES", default_value = "", value_delimiter = ',')]
    pub allowed_sources: Vec<String>,
    /// Comma-separated locations a job's output must lie inside; empty: any
    #[arg(long, env = "FARM_ALLOWED_OUTPUTS", default_value = "", value_delimiter = ',')]
    pub allowed_outputs: Vec<String>,
    #[command(flatten)]
    pub limits: Limits,
    /// File holding the key task messages are signed with (at least 32 bytes; the workers
    /// have the same). Required with AMQP_URL
    #[arg(long, env = "FARM_TASK_KEY_FILE")]
    pub task_key_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// RabbitMQ management API with credentials and vhost, e.g.
    /// http://user:pass@rabbitmq:15672/%2f: adds unacknowledged (in-flight) tasks per queue
    /// to the metrics
    #[arg(long, env = "FARM_RABBITMQ_MANAGEMENT_URL", hide_env_values = true)]
    pub rabbitmq_management_url: Option<String>,
    /// Seconds without a report from the worker running a task after which the task is
    /// handed out again (workers report every 2 s while they work)
    #[arg(long, env = "FARM_TASK_STALL_SECONDS", default_value_t = 300)]
    pub task_stall_seconds: u64,
    /// Seconds a lease of a replica lasts without renewal (live playlists and finishing jobs,
    /// the reclaim of stalled tasks, the dead-letter follower run where it is held): a
    /// replica that dies hands them over within this time. Renewed every fifth of it.
    #[arg(long, env = "FARM_LEASE_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub lease_seconds: u64,
    /// Bearer token every API request but /healthz, /readyz and /metrics must carry
    /// (`Authorization: Bearer TOKEN`). Required with AMQP_URL; the embedded farm runs
    /// without one, with a warning.
    #[arg(long, env = "FARM_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// JSON file of the API's principals: `[{"name", "role": "ingest"|"producer"|"admin",
    /// "token_sha256"}]` (`coordinator token NAME ROLE` makes a token and its entry). With
    /// FARM_API_TOKEN too, that token is one more principal, `api-token`, an admin
    #[arg(long, env = "FARM_PRINCIPALS_FILE")]
    pub principals_file: Option<std::path::PathBuf>,
    /// File with the master key content keys are wrapped with in the database: 64 hex
    /// digits (`openssl rand -hex 32`) or 32 bytes. With it, every new job gets a random
    /// AES-128 content key per key period
    #[arg(long, env = "FARM_MASTER_KEY_FILE")]
    pub master_key_file: Option<std::path::PathBuf>,
    /// Seconds of media per content key (keys rotate every this many seconds of a job)
    #[arg(long, env = "FARM_KEY_PERIOD_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u32).range(2..=86400))]
    pub key_period_seconds: u32,
    /// Base URL of the coordinator as viewers reach it, for share links (default: the
    /// listen address over http)
    #[arg(long, env = "FARM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Longest life of a share link, in seconds (default 30 days)
    #[arg(long, env = "FARM_SHARE_MAX_SECONDS", default_value_t = 2_592_000, value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub share_max_seconds: u64,
    /// Life of the signed object-storage URLs a share's playlists hold, in seconds (never
    /// past the share's own expiry)
    #[arg(long, env = "FARM_SHARE_URL_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(10..=604_800))]
    pub share_url_seconds: u64,
}

/// What the binary does besides serving (which it does with no command).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Internal: probe one source and print what was found as JSON (the coordinator runs
    /// this as a child process with limits, never on its own media)
    #[command(hide = true)]
    ProbeSource {
        /// The source; without it, the first line of stdin
        location: Option<String>,
    },
    /// The audit trail
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print a new random API token for a principal, and its entry for the principals file
    Token {
        /// The principal's name (letters, digits, -_.@)
        name: String,
        /// ingest, producer or admin
        #[arg(value_enum)]
        role: crate::principals::Role,
    },
    /// Trace a leaked copy of a watermarked job to its shares: prints the verdict as JSON
    /// (`{"verdict": "match" | "no_match" | "collusion", "shares": [...], "confidence": ...}`)
    /// and exits 0; 1 when the trace cannot be made (no such job, not watermarked, the leak
    /// or the review copy unreadable). Needs DATABASE_URL, FARM_MASTER_KEY_FILE and the
    /// output storage's settings, as the coordinator that ran the job
    Trace {
        /// The leaked video file
        leak: std::path::PathBuf,
        /// The job the leak is a copy of
        #[arg(long)]
        job: String,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the whole trail (DATABASE_URL) and check every row's number, link and hash:
    /// exit 0 and print the head, or exit 1 naming the first bad row
    Verify,
}


impl Config {
    /// Settings that cannot work together, as a message for the operator.
    pub fn check(&self) -> Result<(), String> {
        let token = self.api_token.as_deref().map(str::trim).unwrap_or("");
        let open = token.is_empty() && self.principals_file.is_none();
        if self.amqp_url.is_none() && open && !self.listen.ip().is_loopback() {
            return Err(format!(
                "the embedded farm without FARM_API_TOKEN listens on loopback only (FARM_LISTEN is {}): set a token or listen on 127.0.0.1",
                self.listen
            ));
        }
        self.allowed().map_err(|e| e.to_string())?;
        if self.amqp_url.is_some() {
            self.task_key()?;
        }
        self.limits.check()?;
        if self.amqp_url.is_some() && open {
            return Err("FARM_PRINCIPALS_FILE (--principals-file) or FARM_API_TOKEN (--api-token) is required when AMQP_URL is set: the distributed farm's API never runs unauthenticated".into());
        }
        self.principals().map_err(|e| e.to_string())?;
        self.master_key().map_err(|e| e.to_string())?;
        if let Some(url) = &self.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(['?', '#']) {
                return Err(format!("FARM_PUBLIC_URL must be an http(s) URL without query or fragment, not {url:?}"));
            }
        }
        if self.api_token.is_some() && token.len() < 16 {
            return Err("FARM_API_TOKEN must be at least 16 characters".into());
        }
        Ok(())
    }

    /// Everyone who may call the API (empty: the embedded farm, open on loopback).
    pub fn principals(&self) -> Result<crate::principals::Principals, crate::principals::PrincipalsError> {
        crate::principals::Principals::load(self.principals_file.as_deref(), self.api_token.as_deref())
    }

    /// The master key, when one is configured.
    pub fn master_key(&self) -> Result<Option<crate::keys::MasterKey>, crate::keys::KeyError> {
        self.master_key_file.as_deref().map(crate::keys::MasterKey::load).transpose()
    }

    /// Base URL of share links, without a trailing `/`.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/farm.db?mode=rwc", self.data_dir.display()))
    }

    pub fn s3(&self) -> StorageSettings {
        self.storage.settings()
    }

    /// The key tasks are signed with (the distributed farm only).
    pub fn task_key(&self) -> Result<farm_contract::signature::TaskKey, String> {
        let path = self.task_key_file.as_deref().ok_or("FARM_TASK_KEY_FILE (--task-key-file) is required when AMQP_URL is set: workers run only signed tasks")?;
        farm_contract::signature::TaskKey::from_file(path)
    }

    /// The source and output allow-lists, parsed.
    pub fn allowed(&self) -> Result<Allowed, farm_storage::AllowError> {
        Ok(Allowed { sources: AllowList::parse(&self.allowed_sources)?, outputs: AllowList::parse(&self.allowed_outputs)? })
    }
}

/// Where jobs may read and write.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    pub sources: AllowList,
    pub outputs: AllowList,
}

/// Bounds on the work one request may ask for.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Longest source a job may have, in seconds
    #[arg(long, env = "FARM_MAX_SOURCE_SECONDS", default_value_t = 4.0 * 3600.0)]
    pub max_source_seconds: f64,
    /// Most tasks one job may be split into (the chunk length grows to stay under it)
    #[arg(long, env = "FARM_MAX_TASKS_PER_JOB", default_value_t = 400)]
    pub max_tasks_per_job: usize,
    /// Most video renditions a job's ladder may have
    #[arg(long, env = "FARM_MAX_RUNGS", default_value_t = 8)]
    pub max_rungs: usize,
    /// x264 presets a job's ladder may name (slower ones cost many times the CPU)
    #[arg(long, env = "FARM_ALLOWED_PRESETS", value_delimiter = ',',
          default_value = "ultrafast,superfast,veryfast,faster,fast,medium")]
    pub allowed_presets: Vec<String>,
    /// Sources probed at once (each in its own process)
    #[arg(long, env = "FARM_PROBE_CONCURRENCY", default_value_t = 4)]
    pub probe_concurrency: usize,
    /// Seconds a probe may take before it is stopped and the job refused
    #[arg(long, env = "FARM_PROBE_SECONDS", default_value_t = 30)]
    pub probe_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_source_seconds: 4.0 * 3600.0,
            max_tasks_per_job: 400,
            max_rungs: 8,
            allowed_presets: ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"].map(String::from).to_vec(),
            probe_concurrency: 4,
            probe_seconds: 30,
        }
    }
}

impl Limits {
    fn check(&self) -> Result<(), String> {
        // Written so that NaN is refused too.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        let seconds_not_positive = !(self.max_source_seconds > 0.0);
        if seconds_not_positive || self.max_tasks_per_job == 0 || self.max_rungs == 0 {
            return Err("FARM_MAX_SOURCE_SECONDS, FARM_MAX_TASKS_PER_JOB and FARM_MAX_RUNGS must be positive".into());
        }
        if self.probe_concurrency == 0 || self.probe_seconds == 0 {
            return Err("FARM_PROBE_CONCURRENCY and FARM_PROBE_SECONDS must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("coordinator").chain(args.iter().copied())).unwrap()
    }

    /// Issue 14, defect 7: the embedded farm answered on every interface with no token.
    #[test]
    fn the_embedded_farm_without_a_token_stays_on_loopback() {
        assert!(config(&["--listen", "127.0.0.1:8080"]).check().is_ok());
        let open = config(&["--listen", "0.0.0.0:8080"]).check().unwrap_err();
        assert!(open.contains("loopback"), "{open}");
        assert!(config(&["--listen", "0.0.0.0:8080", "--api-token", "0123456789abcdef"]).check().is_ok());
    }

    #[test]
    fn allow_lists_are_parsed_once_and_bad_entries_refused() {
        assert!(config(&["--allowed-sources", "s3://rushes/,/mnt/ingest"]).check().is_ok());
        assert!(config(&["--allowed-sources", "http://x/"]).check().is_err());
        assert!(config(&["--allowed-outputs", "/x/../y"]).check().is_err());
    }
}
