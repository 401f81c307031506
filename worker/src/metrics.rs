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
/// `requeued`, `dead_lettered`, `cancelled`, `superseded`: a later attempt holds the task).
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
        for outcome in ["succeeded", "requeued", "dead_lettered", "cancelled", "superseded"] {
            TASKS.with_label_values(&[part, outcome]);
        }
        TASK_SECONDS.with_label_values(&[part]);
    }
    for kind in ["storage", "source", "ffmpeg", "deadline", "keys", "other"] {
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

/// What the worker's HTTP endpoint reports on and acts for.
#[derive(Clone)]
pub struct Endpoint {
    /// Cancelled by `GET /drain`: the same drain as a first SIGTERM.
    pub drain: tokio_util::sync::CancellationToken,
    pub heartbeat: std::sync::Arc<crate::watchdog::Heartbeat>,
    pub stall: std::time::Duration,
    /// A token that lets `/drain` be asked for from outside the pod; without one, only
    /// from the pod itself (loopback).
    pub drain_token: Option<String>,
}

/// Serves `/metrics`, `/healthz` and `/drain` on `listener` until the process ends.
/// `GET /drain` starts the same drain as a first SIGTERM: the Kubernetes `preStop` hook
/// runs `worker drain`, which asks for it over loopback, so the SIGTERM that follows is not
/// taken as a second signal. `/healthz` answers 503 while the task in hand is stuck.
pub async fn serve(listener: tokio::net::TcpListener, endpoint: Endpoint) -> std::io::Result<()> {
    use axum::routing::get;
    let health = endpoint.clone();
    let app = axum::Router::new()
        .route("/metrics", get(|| async { ([("content-type", "text/plain; version=0.0.4")], render()) }))
        .route("/healthz", get(move || async move { healthz(&health) }))
        .route(
            "/drain",
            get(move |peer: axum::extract::ConnectInfo<std::net::SocketAddr>, headers: axum::http::HeaderMap| async move {
                drain(&endpoint, peer.0, &headers)
            }),
        );
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
}

fn healthz(endpoint: &Endpoint) -> (axum::http::StatusCode, String) {
    match endpoint.heartbeat.stalled(endpoint.stall) {
        Some(idle) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("stuck: the task in hand has not advanced for {} s\n", idle.as_secs())),
        None => (axum::http::StatusCode::OK, "ok".into()),
    }
}

fn drain(endpoint: &Endpoint, peer: std::net::SocketAddr, headers: &axum::http::HeaderMap) -> (axum::http::StatusCode, &'static str) {
    if !may_drain(peer, headers, endpoint.drain_token.as_deref()) {
        tracing::warn!(%peer, "drain refused: not from the pod itself and without the drain token");
        return (axum::http::StatusCode::FORBIDDEN, "drain is asked for from the pod itself (worker drain) or with the drain token\n");
    }
    tracing::info!("drain asked for over HTTP: no new tasks; the task in hand finishes or is handed back");
    DRAINING.set(1);
    endpoint.drain.cancel();
    (axum::http::StatusCode::OK, "draining\n")
}

/// Whether a `/drain` request may act: from loopback, or with the configured token.
fn may_drain(peer: std::net::SocketAddr, headers: &axum::http::HeaderMap, token: Option<&str>) -> bool {
    if peer.ip().is_loopback() {
        return true;
    }
    let given = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match (token, given) {
        (Some(t), Some(g)) => farm_service::secret::same(g.as_bytes(), t.as_bytes()),
        _ => false,
    }
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
        E::Keys(_) => "keys",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14, defect 7: anyone who reached the metrics port could drain a worker.
    #[test]
    fn drain_comes_from_the_pod_or_with_the_token() {
        let outside: std::net::SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let inside: std::net::SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let none = axum::http::HeaderMap::new();
        let mut with = axum::http::HeaderMap::new();
        with.insert(axum::http::header::AUTHORIZATION, "Bearer drain-secret".parse().unwrap());
        assert!(may_drain(inside, &none, None));
        assert!(!may_drain(outside, &none, None));
        assert!(!may_drain(outside, &with, None), "no token configured: outside never");
        assert!(may_drain(outside, &with, Some("drain-secret")));
        assert!(!may_drain(outside, &with, Some("other-secret")));
    }
}
