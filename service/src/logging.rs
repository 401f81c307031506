//! Logging: `FARM_LOG_FORMAT=text` (default) or `json`, level from `RUST_LOG` (`info`).
//!
//! Text logs carry colour codes only when stderr is a terminal, so log files and
//! `kubectl logs` stay plain; JSON puts one event per line with its fields, for log
//! collectors. The S3 client's retries are counted as metrics from its log events.

use std::io::IsTerminal;

use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The flag every binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format: text (colour only on a terminal) or json (one object per line)
    #[arg(long, env = "FARM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Installs the process's subscriber (once, at start).
pub fn init(format: LogFormat) {
    let filter = || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let retries = tracing_subscriber::filter::Targets::new().with_target("object_store::client::retry", tracing::Level::INFO);
    let counter = farm_storage::metrics::StorageRetryCounter.with_filter(retries);
    let registry = tracing_subscriber::registry().with(counter);
    match format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal();
            let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_filter(filter());
            registry.with(layer).init();
        }
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr).with_filter(filter());
            registry.with(layer).init();
        }
    }
}
