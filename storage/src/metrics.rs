//! Storage metrics (`farm_worker_storage_*`, `farm_worker_source_requests_total`): bytes,
//! requests, write times, the S3 and Swift clients' retries and Swift logins, in the
//! process-wide registry.

use std::sync::LazyLock;

use prometheus::{register_histogram, register_int_counter, register_int_counter_vec, Histogram, IntCounter, IntCounterVec};

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

/// Storage requests the S3 or Swift client retried, by kind: `transport` (connection
/// refused or reset, timeout) or `server` (5xx, 429). Counted from the S3 client's own
/// retry events, and by the Swift store's retry layer.
pub static STORAGE_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("farm_worker_storage_request_retries_total", "Object storage requests retried by the S3 or Swift client, by kind", &["kind"]).unwrap()
});

/// Swift logins, by reason: `first`, `due` (a renewal on time) or `refused` (the service
/// refused the token a request carried). A few per token's life; more is a login service
/// or a proxy in trouble.
pub static SWIFT_LOGINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("farm_worker_storage_swift_logins_total", "Logins to Swift's authentication service, by reason", &["reason"]).unwrap()
});

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

/// Registers every storage metric, so that a scrape sees them at 0.
pub fn init() {
    for direction in ["read", "written"] {
        STORAGE_BYTES.with_label_values(&[direction]);
    }
    for kind in ["transport", "server"] {
        STORAGE_RETRIES.with_label_values(&[kind]);
    }
    for reason in ["first", "due", "refused"] {
        SWIFT_LOGINS.with_label_values(&[reason]);
    }
    LazyLock::force(&SOURCE_REQUESTS);
    LazyLock::force(&PUT_SECONDS);
}
