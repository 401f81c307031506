//! Real coordinator and worker processes for end-to-end runs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::amqp::URL;
use crate::s3::{s3, BUCKET};
use crate::worker::{coordinator_bin, worker_bin};

/// Strips terminal colour codes from a log.
pub fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A child process, killed when dropped, its stderr kept in a file.
pub struct Proc {
    pub child: Child,
    log: tempfile::NamedTempFile,
}

impl Proc {
    pub fn spawn(bin: PathBuf, args: &[&str], env: &[(&str, String)]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends `sig` (`TERM`, `KILL`, `STOP`, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{sig}");
    }

    /// Waits for the process to exit; returns its status and how long that took.
    pub fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(start.elapsed() < limit, "still running after {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Farm {
    /// Stops the processes, then removes the farm's queues and exchanges from the shared
    /// broker, also when the test failed.
    fn drop(&mut self) {
        for p in std::iter::once(&mut self.coordinator).chain(self.workers.iter_mut()) {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if !self.prefix.is_empty() {
            crate::amqp::delete_topology(&self.prefix);
        }
    }
}

/// A new SQLite job database in `dir`, as a `DATABASE_URL`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}/farm.db?mode=rwc", dir.display())
}

/// The test PostgreSQL server (trust authentication on loopback), and its default database.
pub const POSTGRES_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Runs `sql` on the PostgreSQL database at `url` with psql; its output, unaligned.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]).output().expect("psql");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The API token of farms started by [`Farm::start`].
pub const TOKEN: &str = "farm-test-token-0123456789";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A coordinator and `workers` workers on one queue prefix, with the test S3 server.
pub struct Farm {
    pub base: String,
    pub prefix: String,
    pub coordinator: Proc,
    pub workers: Vec<Proc>,
    pub http: reqwest::blocking::Client,
    coordinator_env: Vec<(&'static str, String)>,
    worker_env: Vec<(&'static str, String)>,
}

/// Settings on top of [`Farm::start`]'s, for fault tests.
#[derive(Default)]
pub struct Extra {
    pub coordinator: Vec<(&'static str, String)>,
    pub worker: Vec<(&'static str, String)>,
}

fn auth_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {TOKEN}").parse().unwrap());
    headers
}

impl Extra {
    /// A farm that reads and writes the test Swift natively: tempauth credentials for
    /// coordinator and workers, and the coordinator's allow-lists opened to
    /// `swift://farm-test/PREFIX/`.
    pub fn swift(prefix: &str) -> Self {
        let env = || crate::s3::swift_env().into_iter().map(|(k, v)| (k, v.to_string())).collect::<Vec<_>>();
        let mut coordinator = env();
        coordinator.push(("FARM_ALLOWED_SOURCES", format!("swift://{BUCKET}/{prefix}/")));
        coordinator.push(("FARM_ALLOWED_OUTPUTS", format!("swift://{BUCKET}/{prefix}/")));
        Self { coordinator, worker: env() }
    }

    /// The coordinator reads in-flight counts from the test RabbitMQ's management API.
    pub fn rabbitmq_management() -> Self {
        Self {
            coordinator: vec![("FARM_RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672/%2f".into())],
            ..Default::default()
        }
    }
}

impl Farm {
    pub fn start(database_url: &str, prefix: &str, workers: usize, chunk_seconds: f64) -> Self {
        Self::start_with(database_url, prefix, workers, chunk_seconds, Extra::default())
    }

    pub fn start_with(database_url: &str, prefix: &str, workers: usize, chunk_seconds: f64, extra: Extra) -> Self {
        crate::amqp::sweep_leftovers();
        let mut env: Vec<(&'static str, String)> = s3().env().into_iter().map(|(k, v)| (k, v.to_string())).collect();
        env.push(("AMQP_URL", URL.to_string()));
        env.push(("FARM_QUEUE_PREFIX", prefix.to_string()));
        env.push(crate::keys::task_key_env());
        let mut cenv = env.clone();
        env.extend(extra.worker);
        cenv.push(("DATABASE_URL", database_url.to_string()));
        cenv.push(("FARM_CHUNK_SECONDS", chunk_seconds.to_string()));
        cenv.push(("FARM_ALLOWED_SOURCES", format!("s3://{BUCKET}/")));
        cenv.push(("FARM_ALLOWED_OUTPUTS", format!("s3://{BUCKET}/")));
        cenv.push(("FARM_API_TOKEN", TOKEN.to_string()));
        // Last, so that a test's settings win.
        cenv.extend(extra.coordinator);
        let workers = (0..workers).map(|_| Proc::spawn(worker_bin(), &["serve"], &env)).collect();
        Self::with_coordinator(cenv, env, workers)
    }

    /// One more worker process (the farm's worker settings plus `extra`); returns its index.
    pub fn add_worker(&mut self, extra: &[(&'static str, String)]) -> usize {
        let mut env = self.worker_env.clone();
        env.extend(extra.iter().cloned());
        self.workers.push(Proc::spawn(worker_bin(), &["serve"], &env));
        self.workers.len() - 1
    }

    /// Kills the coordinator (SIGKILL).
    pub fn stop_coordinator(&mut self) {
        let _ = self.coordinator.child.kill();
        let _ = self.coordinator.child.wait();
    }

    /// Starts a coordinator with the same settings (database, port) as the first.
    pub fn start_coordinator(&mut self) {
        self.coordinator = Proc::spawn(coordinator_bin(), &[], &self.coordinator_env);
        self.wait_ready();
    }

    /// A job's state read from the embedded farm's SQLite file (the coordinator may be down).
    pub fn job_state_on_disk(&self, id: &str) -> String {
        let dir = self.coordinator_env.iter().find(|(k, _)| *k == "FARM_DATA_DIR").map(|(_, v)| v.clone()).expect("an embedded farm");
        let out = std::process::Command::new("python3")
            .args(["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select state from jobs where id=?', (sys.argv[2],)).fetchone()[0])"])
            .arg(format!("{dir}/farm.db"))
            .arg(id)
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn wait_ready(&self) {
        self.wait_ready_at(&self.base, &self.coordinator);
    }

    /// Waits until the coordinator `proc` answers `/readyz` at `base`.
    fn wait_ready_at(&self, base: &str, proc: &Proc) {
        let start = Instant::now();
        while self.http.get(format!("{base}/readyz")).send().map_or(true, |r| !r.status().is_success()) {
            assert!(start.elapsed() < Duration::from_secs(30), "coordinator not ready: {}", proc.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Another coordinator replica of this farm (same database, broker and settings)
    /// listening on `port`, once it is ready; its base URL is `http://127.0.0.1:PORT`.
    pub fn spawn_replica(&self, port: u16) -> Proc {
        let mut env = self.coordinator_env.clone();
        env.push(("FARM_LISTEN", format!("127.0.0.1:{port}")));
        let replica = Proc::spawn(coordinator_bin(), &[], &env);
        self.wait_ready_at(&format!("http://127.0.0.1:{port}"), &replica);
        replica
    }

    /// The embedded farm: no broker, no S3, no worker processes; everything under `data_dir`.
    pub fn embedded(data_dir: &std::path::Path, workers: usize, chunk_seconds: f64) -> Self {
        Self::embedded_with(data_dir, workers, chunk_seconds, &[])
    }

    /// The embedded farm with `extra` coordinator settings.
    pub fn embedded_with(data_dir: &std::path::Path, workers: usize, chunk_seconds: f64, extra: &[(&'static str, String)]) -> Self {
        let mut env = vec![
            ("FARM_DATA_DIR", data_dir.display().to_string()),
            ("FARM_WORKERS", workers.to_string()),
            ("FARM_CHUNK_SECONDS", chunk_seconds.to_string()),
        ];
        env.extend(extra.iter().cloned());
        Self::with_coordinator(env, Vec::new(), Vec::new())
    }

    /// POSTs `body` with the given content type; returns the status and the JSON body.
    pub fn submit_as(&self, content_type: &str, body: &str) -> (u16, serde_json::Value) {
        let r = self.http.post(format!("{}/v1/jobs", self.base)).header("content-type", content_type).body(body.to_string()).send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    /// DELETEs (cancels) a job; returns the status.
    pub fn cancel(&self, id: &str) -> u16 {
        self.http.delete(format!("{}/v1/jobs/{id}", self.base)).send().unwrap().status().as_u16()
    }

    fn with_coordinator(mut cenv: Vec<(&'static str, String)>, worker_env: Vec<(&'static str, String)>, workers: Vec<Proc>) -> Self {
        let port = free_port();
        cenv.push(("FARM_LISTEN", format!("127.0.0.1:{port}")));
        let prefix = cenv.iter().find(|(k, _)| *k == "FARM_QUEUE_PREFIX").map(|(_, v)| v.clone()).unwrap_or_default();
        let coordinator = Proc::spawn(coordinator_bin(), &[], &cenv);
        let farm = Self {
            base: format!("http://127.0.0.1:{port}"),
            prefix,
            coordinator,
            workers,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .default_headers(auth_headers())
                .build()
                .unwrap(),
            coordinator_env: cenv,
            worker_env,
        };
        farm.wait_ready();
        farm
    }

    /// POSTs a job; returns the status and the JSON body.
    pub fn submit(&self, body: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    pub fn job(&self, id: &str) -> serde_json::Value {
        self.http.get(format!("{}/v1/jobs/{id}", self.base)).send().unwrap().json().unwrap()
    }

    /// Polls a job until it is final; returns it.
    pub fn wait_final(&self, id: &str, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let job = self.job(id);
            let state = job["state"].as_str().unwrap_or("").to_string();
            if ["succeeded", "failed", "cancelled"].contains(&state.as_str()) {
                return job;
            }
            assert!(
                start.elapsed() < limit,
                "job still {state} after {limit:?}: {job}\ncoordinator: {}\nworkers: {}",
                self.coordinator.log(),
                self.workers.iter().map(|w| w.log()).collect::<Vec<_>>().join("\n---\n")
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// `coordinator token NAME ROLE`: a new token and its principals-file entry.
pub fn new_token(name: &str, role: &str) -> (String, String) {
    let out = std::process::Command::new(coordinator_bin()).args(["token", name, role]).output().expect("coordinator token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let mut lines = text.lines();
    (lines.next().expect("a token").to_string(), lines.next().expect("an entry").to_string())
}

/// The 15 s clip ([`crate::fixtures::clip_15s`]) as a job in three 6 s chunks on a
/// two-worker farm (RabbitMQ, SeaweedFS, SQLite), with the small ladder and `fields` (ladder
/// mode, container, codecs, review settings) in its request. Checks that the job made
/// three tasks and succeeded; hands on its final view and its output, downloaded.
pub fn chunked_s3_job(name: &str, fields: serde_json::Value) -> (serde_json::Value, tempfile::TempDir) {
    let s3 = s3();
    let prefix = crate::s3::unique_prefix(name);
    s3.put_file(&format!("{prefix}/in.mov"), &crate::fixtures::clip_15s()).unwrap();
    let db = tempfile::tempdir().unwrap();
    let farm = Farm::start(&sqlite_url(db.path()), &prefix.replace('/', "-"), 2, 6.0);
    let mut body = serde_json::json!({
        "source": format!("s3://{BUCKET}/{prefix}/in.mov"),
        "output": format!("s3://{BUCKET}/{prefix}/out/"),
        "ladder": serde_json::from_str::<serde_json::Value>(crate::fixtures::SMALL_LADDER).unwrap(),
    });
    body.as_object_mut().unwrap().extend(fields.as_object().expect("request fields").clone());
    let (status, job) = farm.submit(&body.to_string());
    assert_eq!(status, 201, "{job}\n{}", farm.coordinator.log());
    assert_eq!(job["tasks"].as_array().unwrap().len(), 3, "three chunks: {job}");
    let done = farm.wait_final(job["id"].as_str().unwrap(), Duration::from_secs(240));
    assert_eq!(done["state"], "succeeded", "{done}\n{}", farm.coordinator.log());
    let out = tempfile::tempdir().unwrap();
    s3.download(&format!("{prefix}/out"), out.path()).unwrap();
    (done, out)
}
