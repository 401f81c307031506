//! The coordinator's Prometheus metrics (all of them here, one `farm_` prefix, base units,
//! bounded labels: never a job id). Job and queue gauges are read fresh at each scrape
//! from the database and the broker. The process-wide default registry is served too: in
//! the embedded farm it holds the in-process workers' `farm_worker_*` metrics.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::db::{now_ms, State, Store};

pub struct Metrics {
    registry: Registry,
    pub jobs_accepted: IntCounter,
    pub jobs_rejected: IntCounter,
    jobs_finished: IntCounterVec,
    jobs: IntGaugeVec,
    job_seconds: HistogramVec,
    playable_seconds: Histogram,
    queue_messages: IntGaugeVec,
    queue_unacked: IntGaugeVec,
    pub dead_lettered: IntCounter,
    /// Job requests taken over AMQP, by outcome.
    pub submissions: IntCounterVec,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    /// 1 for each lease this replica holds (docs/operations.md, "Replicas").
    leases: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let jobs_accepted = IntCounter::new("farm_jobs_accepted_total", "Jobs accepted by the API").unwrap();
        let jobs_rejected = IntCounter::new("farm_jobs_rejected_total", "Job requests refused with a 4xx").unwrap();
        let jobs_finished = IntCounterVec::new(
            Opts::new("farm_jobs_finished_total", "Jobs that reached a final state, by outcome"),
            &["outcome"],
        )
        .unwrap();
        let jobs = IntGaugeVec::new(Opts::new("farm_jobs", "Jobs in the database, by state"), &["state"]).unwrap();
        let job_seconds = HistogramVec::new(
            HistogramOpts::new("farm_job_duration_seconds", "From POST to a final state, by outcome")
                .buckets(vec![10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0]),
            &["outcome"],
        )
        .unwrap();
        let playable_seconds = Histogram::with_opts(
            HistogramOpts::new("farm_job_time_to_playable_seconds", "From POST to a playable master playlist")
                .buckets(vec![2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0]),
        )
        .unwrap();
        let queue_messages =
            IntGaugeVec::new(Opts::new("farm_queue_messages", "Ready messages in a task queue"), &["queue"]).unwrap();
        let queue_unacked = IntGaugeVec::new(
            Opts::new("farm_queue_unacknowledged", "Tasks taken by workers and not yet acknowledged (management API)"),
            &["queue"],
        )
        .unwrap();
        let dead_lettered = IntCounter::new("farm_tasks_dead_lettered_total", "Task messages dead-lettered").unwrap();
        let submissions = IntCounterVec::new(
            Opts::new("farm_amqp_job_requests_total", "Job requests taken over AMQP, by outcome (accepted, repeated, refused, retried)"),
            &["outcome"],
        )
        .unwrap();
        for outcome in ["accepted", "repeated", "refused", "retried"] {
            submissions.with_label_values(&[outcome]);
        }
        let requests = IntCounterVec::new(
            Opts::new("farm_http_requests_total", "API requests, by route, method and status"),
            &["route", "method", "status"],
        )
        .unwrap();
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("farm_http_request_duration_seconds", "API request latency, by route and method")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["route", "method"],
        )
        .unwrap();
        let leases = IntGaugeVec::new(
            Opts::new("farm_coordinator_lease_held", "1 while this coordinator replica holds the lease (playlists, reclaim, dead-letters)"),
            &["lease"],
        )
        .unwrap();
        for lease in [crate::leases::PLAYLISTS, crate::leases::RECLAIM, crate::leases::DEAD_LETTERS] {
            leases.with_label_values(&[lease]);
        }
        let build = IntGaugeVec::new(Opts::new("farm_build_info", "Build information"), &["component", "version"]).unwrap();
        build.with_label_values(&["coordinator", env!("CARGO_PKG_VERSION")]).set(1);
        for outcome in ["succeeded", "failed", "cancelled"] {
            jobs_finished.with_label_values(&[outcome]);
            job_seconds.with_label_values(&[outcome]);
        }
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(jobs_accepted.clone()),
            Box::new(jobs_rejected.clone()),
            Box::new(jobs_finished.clone()),
            Box::new(jobs.clone()),
            Box::new(job_seconds.clone()),
            Box::new(playable_seconds.clone()),
            Box::new(queue_messages.clone()),
            Box::new(queue_unacked.clone()),
            Box::new(dead_lettered.clone()),
            Box::new(submissions.clone()),
            Box::new(requests.clone()),
            Box::new(request_seconds.clone()),
            Box::new(leases.clone()),
            Box::new(build),
        ];
        for c in collectors {
            registry.register(c).unwrap();
        }
        Self {
            registry,
            jobs_accepted,
            jobs_rejected,
            jobs_finished,
            jobs,
            job_seconds,
            playable_seconds,
            queue_messages,
            queue_unacked,
            dead_lettered,
            submissions,
            requests,
            request_seconds,
            leases,
        }
    }

    /// A job reached `outcome`; it was created at `created_ms`.
    pub fn finished(&self, outcome: &str, created_ms: i64) {
        self.jobs_finished.with_label_values(&[outcome]).inc();
        let seconds = (now_ms() - created_ms).max(0) as f64 / 1000.0;
        self.job_seconds.with_label_values(&[outcome]).observe(seconds);
    }

    pub fn lease_held(&self, lease: &str, held: bool) {
        self.leases.with_label_values(&[lease]).set(i64::from(held));
    }

    pub fn playable(&self, created_ms: i64) {
        self.playable_seconds.observe((now_ms() - created_ms).max(0) as f64 / 1000.0);
    }

    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.request_seconds.with_label_values(&[route, method]).observe(seconds);
    }

    /// Reads the gauges that live elsewhere: jobs by state, queue depths.
    pub async fn refresh(&self, store: &Store, queues: &[(String, u32)], unacked: &[(String, u64)]) {
        for (queue, n) in unacked {
            self.queue_unacked.with_label_values(&[queue]).set(*n as i64);
        }
        match store.count_by_state().await {
            Ok(counts) => {
                for state in [State::Queued, State::Running, State::Succeeded, State::Failed, State::Cancelled] {
                    let n = counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
                    self.jobs.with_label_values(&[state.as_str()]).set(n);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot count jobs for metrics"),
        }
        for (queue, messages) in queues {
            self.queue_messages.with_label_values(&[queue]).set(i64::from(*messages));
        }
    }

    pub fn render(&self) -> String {
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out).expect("text encoding");
        String::from_utf8(out).expect("UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
