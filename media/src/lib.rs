//! Media: untrusted camera originals opened, probed and transcoded through FFmpeg.
//!
//! - [`source`]: open a source through our own reader, refuse what is not media, probe it;
//! - [`job`]: run one task top to bottom (fit the ladder, pipeline, part manifest, playlists);
//! - [`transcode`]: decode once ([`transcode::decode`]), fix pictures
//!   ([`transcode::filter`]), scale and encode each rendition on its own thread
//!   ([`transcode::video`], [`transcode::audio`], [`transcode::encode`]), cut segments
//!   ([`transcode::segment`], [`transcode::mux`]);
//! - [`complexity`]: how hard a source is to encode (per-title ladders);
//! - [`forensic_mark`]: the keyed A/B mark of forensic watermarking, added and read back;
//! - [`lut`]: `.cube` 3D LUTs, parsed and checked line by line;
//! - [`review`]: a job's review options checked against its source;
//! - [`progress`]: progress bar or log lines;
//! - [`metrics`]: frames, media seconds and segment times;
//! - [`error`]: what went wrong, and whether trying again could help.

pub mod complexity;
pub mod error;
pub mod forensic_mark;
pub mod job;
pub mod lut;
pub mod metrics;
pub mod progress;
pub mod review;
pub mod source;
pub mod transcode;

pub use error::TranscodeError;
