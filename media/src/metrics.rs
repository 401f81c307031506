//! Pipeline metrics (`farm_worker_` prefix kept for the dashboards): media seconds and
//! frames encoded by rendition, time per segment, in the process-wide registry.

use std::sync::LazyLock;

use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

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

/// Registers every pipeline metric, so that a scrape sees them at 0.
pub fn init() {
    for kind in ["video", "audio"] {
        SEGMENT_SECONDS.with_label_values(&[kind]);
    }
    LazyLock::force(&MEDIA_SECONDS);
    LazyLock::force(&FRAMES);
}
