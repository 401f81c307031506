//! Probing a job's source: untrusted media, parsed in a child process with limits.
//!
//! Takes a source location the allow-list already passed; hands on the [`SourceInfo`]
//! that decides how the job is split. FFmpeg's demuxers parse whatever the ingest pipeline
//! was given, so the parsing never happens in the coordinator's own process (which holds
//! the database, broker and API credentials): the coordinator runs itself as
//! `coordinator probe-source LOCATION` with an empty environment except the storage
//! settings, an address-space, CPU-time and open-file limit, a wall-clock deadline and a
//! bound on how many probes run at once. A crash, a hang or a memory bomb costs that one
//! probe, and the job is refused with a message. A child probes one source at a time (a
//! line in on stdin, a report line out) and is reused for the next, up to
//! [`PROBES_PER_PROCESS`]; one that fails or runs past the deadline is killed. Starting a
//! process of this binary costs 0.07-0.09 s of CPU, which a fresh process per source made
//! every job pay (10 jobs/s accepted in the load test instead of 174).

use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use farm_contract::ladder::per_title::Complexity;
use farm_contract::ladder::Ladder;
use farm_media::source::SourceInfo;
use farm_storage::StorageSettings;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// Address space a probe may use: FFmpeg's probing decodes a frame or two of at most 8K.
const PROBE_ADDRESS_SPACE: u64 = 4 << 30;

/// What the child prints on stdout: the facts, or why it could not get them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
#[allow(clippy::large_enum_variant, reason = "one report per probe, printed by the child and read once: boxing would save nothing")]
pub enum ProbeReport {
    /// With the complexity (per-title ladders) when it was asked for.
    Probed {
        info: SourceInfo,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        complexity: Option<Complexity>,
    },
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

/// Probes a child has run before it is retired: a hostile file that got past FFmpeg's
/// parsers without crashing cannot linger in a process for long.
const PROBES_PER_PROCESS: u32 = 64;

/// What the coordinator asks a probe process, one line of JSON: a source, and with a
/// per-title ladder, its complexity too (measured with that ladder's settings).
#[derive(Debug, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complexity_for: Option<Ladder>,
}

/// A probe process: one location in on stdin, one report out on stdout, a line each.
struct ProbeProcess {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
    used: u32,
}

/// Runs probes in child processes, a few at a time; each process runs one probe at a
/// time, is killed on a deadline or any failure, and is retired after
/// [`PROBES_PER_PROCESS`] probes.
pub struct Prober {
    slots: Semaphore,
    deadline: Duration,
    s3: StorageSettings,
    idle: Mutex<Vec<ProbeProcess>>,
}

impl Prober {
    /// Must be called inside the runtime: one process is started at once, so the first
    /// job does not wait for a process to start.
    pub fn new(concurrency: usize, deadline: Duration, s3: StorageSettings) -> Self {
        let prober = Self { slots: Semaphore::new(concurrency.max(1)), deadline, s3, idle: Mutex::new(Vec::new()) };
        match prober.spawn() {
            Ok(process) => prober.idle.lock().expect("probe pool lock").push(process),
            Err(e) => tracing::warn!(error = %e, "cannot start a probe process"),
        }
        prober
    }

    fn spawn(&self) -> std::io::Result<ProbeProcess> {
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .arg("probe-source")
            .env_clear()
            .envs(storage_env(&self.s3, self.deadline))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        limit(&mut command, self.deadline * PROBES_PER_PROCESS);
        let mut child = command.spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(ProbeProcess { child, stdin, stdout, used: 0 })
    }

    /// The source's facts and, for a per-title `ladder`, its complexity.
    pub async fn probe(&self, request: &ProbeRequest) -> Result<(SourceInfo, Option<Complexity>), ProbeError> {
        let _slot = self.slots.acquire().await.map_err(|e| ProbeError::Crashed(e.to_string()))?;
        let idle = self.idle.lock().expect("probe pool lock").pop();
        let mut process = match idle {
            Some(p) => p,
            None => self.spawn().map_err(|e| ProbeError::Crashed(e.to_string()))?,
        };
        let report = tokio::time::timeout(self.deadline, ask(&mut process, request))
            .await
            .map_err(|_| ProbeError::Timeout(self.deadline.as_secs()))?;
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                let status = process.child.try_wait().ok().flatten();
                tracing::warn!(error = %e, status = ?status, "probe process failed");
                return Err(ProbeError::Crashed(e.to_string()));
            }
        };
        process.used += 1;
        if process.used < PROBES_PER_PROCESS {
            self.idle.lock().expect("probe pool lock").push(process);
        }
        match report {
            ProbeReport::Probed { info, complexity } => Ok((info, complexity)),
            ProbeReport::Refused { message } => Err(ProbeError::Refused(message)),
            ProbeReport::Unavailable { message } => Err(ProbeError::Unavailable(message)),
        }
    }
}

/// One probe through a process: the request out, one report line back.
async fn ask(process: &mut ProbeProcess, request: &ProbeRequest) -> std::io::Result<ProbeReport> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let line = serde_json::to_string(request).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))? + "\n";
    process.stdin.write_all(line.as_bytes()).await?;
    process.stdin.flush().await?;
    let mut line = String::new();
    if process.stdout.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the probe process ended without a report"));
    }
    serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The storage settings a probe needs, and nothing else of the coordinator's environment.
fn storage_env(s3: &StorageSettings, deadline: Duration) -> Vec<(String, String)> {
    const PASSED: [&str; 8] = [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
        "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ];
    let mut env: Vec<(String, String)> =
        PASSED.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
    env.extend(s3.endpoint.clone().map(|v| ("FARM_S3_ENDPOINT".into(), v)));
    env.extend(s3.region.clone().map(|v| ("FARM_S3_REGION".into(), v)));
    env.extend(s3.swift.iter().flat_map(|c| c.to_env()).map(|(k, v)| (k.to_string(), v)));
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

/// The child's side: probes `location`, or every request line of stdin in turn (one
/// report line each, flushed), until stdin ends.
pub fn run_child(location: Option<&str>, s3: &StorageSettings) {
    use std::io::{BufRead, Write};
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return print_report(&ProbeReport::Unavailable { message: e.to_string() }),
    };
    if let Some(location) = location {
        return print_report(&probe_one(&ProbeRequest { location: location.into(), complexity_for: None }, s3, &rt));
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return };
        let report = match serde_json::from_str::<ProbeRequest>(&line) {
            Ok(request) => probe_one(&request, s3, &rt),
            Err(e) => ProbeReport::Refused { message: format!("invalid probe request: {e}") },
        };
        print_report(&report);
        if std::io::stdout().flush().is_err() {
            return;
        }
    }
}

fn print_report(report: &ProbeReport) {
    println!("{}", serde_json::to_string(report).expect("reports serialise"));
}

fn probe_one(request: &ProbeRequest, s3: &StorageSettings, rt: &tokio::runtime::Runtime) -> ProbeReport {
    use farm_media::TranscodeError as E;
    let location = match farm_storage::open_source(&request.location, s3, rt.handle()) {
        Ok(l) => l,
        Err(e) => return ProbeReport::Refused { message: e.to_string() },
    };
    let probed = farm_media::source::open(&location).and_then(|mut source| {
        let complexity = match &request.complexity_for {
            Some(ladder) => Some(farm_media::complexity::measure(&mut source, ladder)?),
            None => None,
        };
        Ok((source.info, complexity))
    });
    match probed {
        Ok((info, complexity)) => ProbeReport::Probed { info, complexity },
        Err(e @ E::SourceIo { .. }) => {
            let kind = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map(farm_storage::error::kind_of);
            match kind {
                Some(k) if k.is_transient() => ProbeReport::Unavailable { message: farm_service::report::with_causes(&e) },
                _ => ProbeReport::Refused { message: farm_service::report::with_causes(&e) },
            }
        }
        Err(e) => ProbeReport::Refused { message: e.to_string() },
    }
}
