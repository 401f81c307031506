//! Probing a job's source: untrusted media, parsed in a child process with limits.
//!
//! Takes a source location the allow-list already passed; hands on the [`SourceInfo`]
//! that decides how the job is split. FFmpeg's demuxers parse whatever the ingest pipeline
//! was given, so the parsing never happens in the coordinator's own process (which holds
//! the database, broker and API credentials): the coordinator runs itself as
//! `coordinator probe-source LOCATION` with an empty environment except the storage
//! settings, an address-space, CPU-time and open-file limit, a wall-clock deadline and a
//! bound on how many probes run at once. A crash, a hang or a memory bomb costs that one
//! probe, and the job is refused with a message. Each child probes one source and exits;
//! a few are started ahead and wait for their location on stdin, so a request does not
//! pay the process start-up (about 0.08 s for this binary).

use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use farm_media::source::SourceInfo;
use farm_storage::S3Settings;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// Address space a probe may use: FFmpeg's probing decodes a frame or two of at most 8K.
const PROBE_ADDRESS_SPACE: u64 = 4 << 30;

/// What the child prints on stdout: the facts, or why it could not get them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ProbeReport {
    Probed { info: SourceInfo },
    /// The source is missing, not media, unsupported or damaged: the job is refused.
    Refused { message: String },
    /// Storage could not be reached: the job may be submitted again later.
    Unavailable { message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Refused(String),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("probing the source took longer than {0} s")]
    Timeout(u64),
    #[error("the probe process failed: {0}")]
    Crashed(String),
}

/// Runs probes in child processes, a few at a time.
pub struct Prober {
    slots: Semaphore,
    deadline: Duration,
    s3: S3Settings,
    /// Children started ahead, each waiting for one location on stdin.
    ready: Mutex<Vec<tokio::process::Child>>,
    spares: usize,
}

impl Prober {
    /// Must be called inside the runtime: it starts the first children.
    pub fn new(concurrency: usize, deadline: Duration, s3: S3Settings) -> Self {
        // Two waiting children cover a burst of two jobs; more would only cost memory.
        let spares = concurrency.clamp(1, 2);
        let prober = Self { slots: Semaphore::new(concurrency.max(1)), deadline, s3, ready: Mutex::new(Vec::new()), spares };
        prober.refill();
        prober
    }

    /// Starts children until `spares` wait (a failure to start is reported at the next probe).
    fn refill(&self) {
        let mut ready = self.ready.lock().expect("probe pool lock");
        while ready.len() < self.spares {
            match self.spawn() {
                Ok(child) => ready.push(child),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a probe process ahead");
                    break;
                }
            }
        }
    }

    fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .arg("probe-source")
            .env_clear()
            .envs(storage_env(&self.s3, self.deadline))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        limit(&mut command, self.deadline);
        command.spawn()
    }

    /// A child waiting for its location (one started ahead, else a new one).
    fn take(&self) -> std::io::Result<tokio::process::Child> {
        let waiting = self.ready.lock().expect("probe pool lock").pop();
        match waiting {
            Some(child) => Ok(child),
            None => self.spawn(),
        }
    }

    pub async fn probe(&self, location: &str) -> Result<SourceInfo, ProbeError> {
        use tokio::io::AsyncWriteExt;
        let _slot = self.slots.acquire().await.map_err(|e| ProbeError::Crashed(e.to_string()))?;
        let crashed = |e: std::io::Error| ProbeError::Crashed(e.to_string());
        let mut child = self.take().map_err(crashed)?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let written = stdin.write_all(format!("{location}\n").as_bytes()).await;
        drop(stdin);
        self.refill();
        written.map_err(crashed)?;
        let output = tokio::time::timeout(self.deadline, child.wait_with_output())
            .await
            .map_err(|_| ProbeError::Timeout(self.deadline.as_secs()))?
            .map_err(|e| ProbeError::Crashed(e.to_string()))?;
        match serde_json::from_slice::<ProbeReport>(&output.stdout) {
            Ok(ProbeReport::Probed { info }) => Ok(info),
            Ok(ProbeReport::Refused { message }) => Err(ProbeError::Refused(message)),
            Ok(ProbeReport::Unavailable { message }) => Err(ProbeError::Unavailable(message)),
            Err(_) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.lines().last().unwrap_or("").chars().take(300).collect::<String>();
                tracing::warn!(status = %output.status, stderr = %last, "probe process failed");
                Err(ProbeError::Crashed(format!("{} ({})", output.status, last)))
            }
        }
    }
}

/// The storage settings a probe needs, and nothing else of the coordinator's environment.
fn storage_env(s3: &S3Settings, deadline: Duration) -> Vec<(String, String)> {
    const PASSED: [&str; 8] = [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
        "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ];
    let mut env: Vec<(String, String)> =
        PASSED.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
    env.extend(s3.endpoint.clone().map(|v| ("FARM_S3_ENDPOINT".into(), v)));
    env.extend(s3.region.clone().map(|v| ("FARM_S3_REGION".into(), v)));
    // Storage trouble is retried for part of the deadline, so an outage answers 503 in time.
    let retry = s3.retry_for.unwrap_or(deadline).min(deadline / 2);
    env.push(("FARM_STORAGE_RETRY_SECONDS".into(), retry.as_secs().max(1).to_string()));
    env.push(("RUST_LOG".into(), "warn".into()));
    env
}

/// Resource limits of the child, set between fork and exec.
fn limit(command: &mut tokio::process::Command, deadline: Duration) {
    let cpu = deadline.as_secs() + 5;
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
    // which is async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(move || {
            let set = |resource, value: u64| {
                let lim = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
                if libc::setrlimit(resource, &lim) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
            };
            set(libc::RLIMIT_AS, PROBE_ADDRESS_SPACE)?;
            set(libc::RLIMIT_CPU, cpu)?;
            set(libc::RLIMIT_CORE, 0)?;
            set(libc::RLIMIT_NOFILE, 256)
        });
    }
}

/// The child's side: probes `location` (given, or the first line of stdin, read once the
/// child is ready) and prints a [`ProbeReport`].
pub fn run_child(location: Option<&str>, s3: &S3Settings) -> ProbeReport {
    use farm_media::TranscodeError as E;
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return ProbeReport::Unavailable { message: e.to_string() },
    };
    let mut line = String::new();
    let location = match location {
        Some(l) => l,
        None => match std::io::stdin().read_line(&mut line) {
            Ok(n) if n > 0 => line.trim_end_matches(['\r', '\n']),
            _ => return ProbeReport::Refused { message: "no location given".into() },
        },
    };
    let location = match farm_storage::open_source(location, s3, rt.handle()) {
        Ok(l) => l,
        Err(e) => return ProbeReport::Refused { message: e.to_string() },
    };
    match farm_media::source::open(&location) {
        Ok(source) => ProbeReport::Probed { info: source.info },
        Err(e @ E::SourceIo { .. }) => {
            let kind = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map(farm_storage::error::kind_of);
            match kind {
                Some(k) if k.is_transient() => ProbeReport::Unavailable { message: format!("{e}: {}", chain(&e)) },
                _ => ProbeReport::Refused { message: format!("{e}: {}", chain(&e)) },
            }
        }
        Err(e) => ProbeReport::Refused { message: e.to_string() },
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}
