//! The coordinator's Prometheus metrics (all of them here, one prefix, bounded labels).

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub jobs_accepted: IntCounter,
    pub jobs_rejected: IntCounter,
    jobs_finished: IntCounterVec,
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
        let build = IntGaugeVec::new(Opts::new("farm_build_info", "Build information"), &["component", "version"]).unwrap();
        build.with_label_values(&["coordinator", env!("CARGO_PKG_VERSION")]).set(1);
        for c in [Box::new(jobs_accepted.clone()) as Box<dyn prometheus::core::Collector>, Box::new(jobs_rejected.clone()), Box::new(jobs_finished.clone()), Box::new(build)] {
            registry.register(c).unwrap();
        }
        Self { registry, jobs_accepted, jobs_rejected, jobs_finished }
    }

    pub fn finished(&self, outcome: &str) {
        self.jobs_finished.with_label_values(&[outcome]).inc();
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
