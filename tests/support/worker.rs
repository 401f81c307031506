//! Running the real `worker` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fixtures::target_dir;

/// Path of the `worker` binary, built (once per test run) if needed.
pub fn worker_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bin("farm-worker", "worker")).clone()
}

/// Path of the `coordinator` binary, built (once per test run) if needed.
pub fn coordinator_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bin("farm-coordinator", "coordinator")).clone()
}

fn build_bin(package: &str, bin: &str) -> PathBuf {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", package, "--bin", bin]);
    if profile == "release" {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build of {bin} failed");
    target_dir().join(profile).join(bin)
}

pub struct Run {
    pub output: Output,
    pub elapsed: Duration,
}

impl Run {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn ok(self) -> Result<Self> {
        if !self.output.status.success() {
            bail!("worker failed ({}): {}", self.output.status, self.stderr());
        }
        Ok(self)
    }
}

/// Runs `worker ARGS` and waits for it.
pub fn worker(args: &[&str]) -> Result<Run> {
    worker_with_env(args, &[])
}

/// Runs `worker ARGS` with extra environment variables.
pub fn worker_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Run> {
    let started = Instant::now();
    let output = Command::new(worker_bin())
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .context("running worker")?;
    Ok(Run { output, elapsed: started.elapsed() })
}

/// `worker transcode SOURCE OUT --ladder LADDER EXTRA...`
pub fn transcode(source: &Path, out: &Path, ladder: &Path, extra: &[&str]) -> Result<Run> {
    let mut args = vec![
        "transcode",
        source.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
        "--ladder",
        ladder.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    worker(&args)
}
