//! The worker's Prometheus metrics, one `farm_worker_` prefix, base units, bounded labels
//! (task part, outcome, rendition name from the ladder; never a job id). They live in the
//! process-wide default registry, so the embedded farm's coordinator serves them too.
//! `worker serve --listen ADDR` serves `/metrics` and `/healthz`.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
};

/// Tasks finished, by part (`video`, `audio`, `whole`) and outcome (`succeeded`,
/// `requeued`, `dead_lettered`, `cancelled`).
pub static TASKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("farm_worker_tasks_total", "Tasks finished, by part and outcome", &["part", "outcome"]).unwrap()
});

pub static TASK_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "farm_worker_task_duration_seconds",
        "Wall time of a task, by part",
        &["part"],
        vec![1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0]
    )
    .unwrap()
});

/// 1 while a task is in hand.
pub static BUSY: LazyLock<IntGauge> =
    LazyLock::new(|| register_int_gauge!("farm_worker_busy", "1 while the worker runs a task").unwrap());

/// 1 from the first SIGTERM until the worker exits.
pub static DRAINING: LazyLock<IntGauge> =
    LazyLock::new(|| register_int_gauge!("farm_worker_draining", "1 while the worker drains before exiting").unwrap());








/// Tasks handed back for another attempt, by kind: `storage`, `deadline`, `drain`, `other`.
pub static TASK_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("farm_worker_task_retries_total", "Tasks handed back for another attempt, by kind", &["kind"]).unwrap()
});

/// Failures by kind: `storage`, `source`, `ffmpeg`, `deadline`, `other`.
pub static FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("farm_worker_failures_total", "Task failures, by kind", &["kind"]).unwrap()
});

pub static BUILD: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!("farm_worker_build_info", "Build information", &["version"]).unwrap()
});

/// Registers every metric, so that a scrape sees them at 0 before any task.
pub fn init() {
    BUILD.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    farm_storage::metrics::init();
    farm_media::metrics::init();
    for part in ["video", "audio", "whole"] {
        for outcome in ["succeeded", "requeued", "dead_lettered", "cancelled"] {
            TASKS.with_label_values(&[part, outcome]);
        }
        TASK_SECONDS.with_label_values(&[part]);
    }
    for kind in ["storage", "source", "ffmpeg", "deadline", "other"] {
        FAILURES.with_label_values(&[kind]);
    }
    for kind in ["storage", "deadline", "drain", "other"] {
        TASK_RETRIES.with_label_values(&[kind]);
    }
    LazyLock::force(&BUSY);
    LazyLock::force(&DRAINING);
}

/// The default registry in Prometheus' text format.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut out).expect("text encoding");
    String::from_utf8(out).expect("UTF-8")
}

/// Serves `/metrics`, `/healthz` and `/drain` on `listener` until the process ends.
/// `GET /drain` starts the same drain as a first SIGTERM (cancels `drain`): a Kubernetes
/// `preStop` hook calls it, so the SIGTERM that follows is not taken as a second signal.
pub async fn serve(listener: tokio::net::TcpListener, drain: tokio_util::sync::CancellationToken) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/metrics", get(|| async { ([("content-type", "text/plain; version=0.0.4")], render()) }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/drain",
            get(move || async move {
                tracing::info!("drain asked for over HTTP: no new tasks; the task in hand finishes or is handed back");
                DRAINING.set(1);
                drain.cancel();
                "draining\n"
            }),
        );
    axum::serve(listener, app).await
}

/// The kind of a task handed back for another attempt.
pub fn retry_kind(e: &farm_media::TranscodeError) -> &'static str {
    use farm_media::TranscodeError as E;
    match e {
        E::SourceIo { .. } | E::Output { .. } => "storage",
        E::Deadline { .. } => "deadline",
        E::Cancelled => "drain",
        _ => "other",
    }
}

/// The metric label of a failure.
pub fn failure_kind(e: &farm_media::TranscodeError) -> &'static str {
    use farm_media::TranscodeError as E;
    match e {
        E::SourceIo { .. } | E::Output { .. } => "storage",
        E::SourceMissing(_) | E::EmptySource(_) | E::NotMedia { .. } | E::NoVideo(_) | E::Unsupported { .. } | E::Damaged { .. } => "source",
        E::Ffmpeg { .. } => "ffmpeg",
        E::Deadline { .. } => "deadline",
        _ => "other",
    }
}
