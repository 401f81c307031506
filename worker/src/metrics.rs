//! The worker's Prometheus metrics, one `farm_worker_` prefix, base units, bounded labels
//! (task part, outcome, rendition name from the ladder; never a job id). They live in the
//! process-wide default registry, so the embedded farm's coordinator serves them too.
//! `worker serve --listen ADDR` serves `/metrics` and `/healthz`.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
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

/// Seconds of media encoded, by rendition: its rate is the realtime factor.
pub static MEDIA_SECONDS: LazyLock<prometheus::CounterVec> = LazyLock::new(|| {
    prometheus::register_counter_vec!(
        "farm_worker_media_encoded_seconds_total",
        "Seconds of media encoded, by rendition (rate() of it is the realtime factor)",
        &["rendition"]
    )
    .unwrap()
});

/// Frames encoded, by rendition: its rate is the encode speed in frames per second.
pub static FRAMES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("farm_worker_frames_encoded_total", "Video frames encoded, by rendition", &["rendition"]).unwrap()
});

/// Bytes moved to and from object storage (`read`, `written`).
pub static STORAGE_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("farm_worker_storage_bytes_total", "Bytes read from and written to object storage", &["direction"]).unwrap()
});

/// Ranged GETs that read sources (their size adapts to the access pattern).
pub static SOURCE_REQUESTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("farm_worker_source_requests_total", "Ranged GET requests that read sources from object storage").unwrap()
});

/// Time to write one object (a segment, a manifest) to object storage, retries included.
pub static PUT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "farm_worker_storage_put_seconds",
        "Time to write one object to object storage, retries included",
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .unwrap()
});

/// Time to encode one segment's worth of a rendition (from its first frame in to the segment written).
pub static SEGMENT_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "farm_worker_segment_seconds",
        "Wall time from a segment's first packet to the segment written, by kind (video, audio)",
        &["kind"],
        vec![0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    )
    .unwrap()
});

/// Storage requests the S3 client retried, by kind: `transport` (connection refused or
/// reset, timeout) or `server` (5xx, 429). Counted from the client's own retry events.
pub static STORAGE_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("farm_worker_storage_request_retries_total", "Object storage requests retried by the S3 client, by kind", &["kind"]).unwrap()
});

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
    for part in ["video", "audio", "whole"] {
        for outcome in ["succeeded", "requeued", "dead_lettered", "cancelled"] {
            TASKS.with_label_values(&[part, outcome]);
        }
        TASK_SECONDS.with_label_values(&[part]);
    }
    for direction in ["read", "written"] {
        STORAGE_BYTES.with_label_values(&[direction]);
    }
    for kind in ["storage", "source", "ffmpeg", "deadline", "other"] {
        FAILURES.with_label_values(&[kind]);
    }
    for kind in ["video", "audio"] {
        SEGMENT_SECONDS.with_label_values(&[kind]);
    }
    for kind in ["transport", "server"] {
        STORAGE_RETRIES.with_label_values(&[kind]);
    }
    for kind in ["storage", "deadline", "drain", "other"] {
        TASK_RETRIES.with_label_values(&[kind]);
    }
    LazyLock::force(&BUSY);
    LazyLock::force(&SOURCE_REQUESTS);
    LazyLock::force(&DRAINING);
    LazyLock::force(&PUT_SECONDS);
    LazyLock::force(&MEDIA_SECONDS);
    LazyLock::force(&FRAMES);
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
pub fn retry_kind(e: &crate::TranscodeError) -> &'static str {
    use crate::TranscodeError as E;
    match e {
        E::SourceIo { .. } | E::Output { .. } => "storage",
        E::Deadline { .. } => "deadline",
        E::Cancelled => "drain",
        _ => "other",
    }
}

/// Counts the S3 client's retries: object_store retries inside its client and says so
/// only in its log events (target `object_store::client::retry`), so this layer of the
/// worker's tracing subscriber counts those events.
pub struct StorageRetryCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StorageRetryCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if !event.metadata().target().starts_with("object_store::client::retry") {
            return;
        }
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if message.0.contains("backing off") {
            let kind = if message.0.contains("transport error") { "transport" } else { "server" };
            STORAGE_RETRIES.with_label_values(&[kind]).inc();
        }
    }
}

/// The metric label of a failure.
pub fn failure_kind(e: &crate::TranscodeError) -> &'static str {
    use crate::TranscodeError as E;
    match e {
        E::SourceIo { .. } | E::Output { .. } => "storage",
        E::SourceMissing(_) | E::EmptySource(_) | E::NotMedia { .. } | E::NoVideo(_) | E::Unsupported { .. } | E::Damaged { .. } => "source",
        E::Ffmpeg { .. } => "ffmpeg",
        E::Deadline { .. } => "deadline",
        _ => "other",
    }
}
