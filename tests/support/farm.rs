//! Real coordinator and worker processes for end-to-end runs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::amqp::URL;
use crate::s3::{s3, BUCKET};
use crate::worker::{coordinator_bin, worker_bin};

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
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A coordinator and `workers` workers on one queue prefix, with the test S3 server.
pub struct Farm {
    pub base: String,
    pub prefix: String,
    pub coordinator: Proc,
    pub workers: Vec<Proc>,
    pub http: reqwest::blocking::Client,
}

impl Farm {
    pub fn start(database_url: &str, prefix: &str, workers: usize, chunk_seconds: f64) -> Self {
        let mut env: Vec<(&str, String)> = s3().env().into_iter().map(|(k, v)| (k, v.to_string())).collect();
        env.push(("AMQP_URL", URL.to_string()));
        env.push(("FARM_QUEUE_PREFIX", prefix.to_string()));
        let mut cenv = env.clone();
        cenv.push(("DATABASE_URL", database_url.to_string()));
        cenv.push(("FARM_CHUNK_SECONDS", chunk_seconds.to_string()));
        cenv.push(("FARM_ALLOWED_SOURCES", format!("s3://{BUCKET}/")));
        cenv.push(("FARM_ALLOWED_OUTPUTS", format!("s3://{BUCKET}/")));
        let workers = (0..workers).map(|_| Proc::spawn(worker_bin(), &["serve"], &env)).collect();
        Self::with_coordinator(cenv, workers)
    }

    /// The embedded farm: no broker, no S3, no worker processes; everything under `data_dir`.
    pub fn embedded(data_dir: &std::path::Path, workers: usize, chunk_seconds: f64) -> Self {
        let env = vec![
            ("FARM_DATA_DIR", data_dir.display().to_string()),
            ("FARM_WORKERS", workers.to_string()),
            ("FARM_CHUNK_SECONDS", chunk_seconds.to_string()),
        ];
        Self::with_coordinator(env, Vec::new())
    }

    fn with_coordinator(mut cenv: Vec<(&str, String)>, workers: Vec<Proc>) -> Self {
        let port = free_port();
        cenv.push(("FARM_LISTEN", format!("127.0.0.1:{port}")));
        let prefix = cenv.iter().find(|(k, _)| *k == "FARM_QUEUE_PREFIX").map(|(_, v)| v.clone()).unwrap_or_default();
        let coordinator = Proc::spawn(coordinator_bin(), &[], &cenv);
        let farm = Self {
            base: format!("http://127.0.0.1:{port}"),
            prefix,
            coordinator,
            workers,
            http: reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
        };
        let start = Instant::now();
        while farm.http.get(format!("{}/readyz", farm.base)).send().map_or(true, |r| !r.status().is_success()) {
            assert!(start.elapsed() < Duration::from_secs(30), "coordinator not ready: {}", farm.coordinator.log());
            std::thread::sleep(Duration::from_millis(200));
        }
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
