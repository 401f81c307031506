//! The transcoding worker of the HLS review farm.
//!
//! Data flow of one task, one module per stage:
//! - [`consume`]: take tasks from RabbitMQ (rush queue first), run them, [`ack`] the outcome;
//!   [`memqueue`] is the embedded farm's in-process queue behind the same code;
//! - [`source`]: open the camera original through our own reader, refuse what is not media;
//! - [`job`]: run one task top to bottom (fit the ladder, pipeline, part manifest, playlists);
//! - [`transcode`]: decode once ([`transcode::decode`]), fix pictures
//!   ([`transcode::filter`]), scale and encode each rendition on its own thread
//!   ([`transcode::video`], [`transcode::audio`], [`transcode::encode`]), cut segments
//!   ([`transcode::segment`], [`transcode::mux`]);
//! - [`sink`]: write segments and playlists by key (local directory);
//! - [`storage`]: `s3://` locations: ranged reads of sources, object writes of output;
//! - [`playlist`]: media, I-frame and master playlists from the part manifests;
//! - [`progress`]: progress bar or log lines;
//! - [`metrics`]: the worker's Prometheus metrics and its `/metrics` + `/healthz` endpoint;
//! - [`error`]: what went wrong, and whether trying again could help.

pub mod ack;
pub mod codecs;
pub mod consume;
pub mod error;
pub mod hold;
pub mod job;
pub mod memqueue;
pub mod metrics;
pub mod playlist;
pub mod progress;
pub mod sink;
pub mod source;
pub mod storage;
pub mod transcode;

pub use error::TranscodeError;
