//! The contract between the coordinator and the workers: what they send each other and
//! what they leave in storage for each other.
//!
//! - [`ladder`]: the review ladder (renditions, segment length, encoder settings) as
//!   versioned serde data, with the built-in default and the rules that fit it to a source.
//! - [`timeline`]: frame rates and the frame-exact segment and keyframe grid that every
//!   rendition and every chunk of a job agree on.
//! - [`manifest`]: what a worker hands on after encoding a range: the segments it wrote,
//!   their sizes, durations and I-frame byte ranges, from which playlists are assembled.
//! - [`task`]: task messages and events, their header and marker names.
//! - [`review`]: what makes a ladder a review copy (LUT, tone mapping, burn-ins), fixed
//!   once per job; [`timecode`]: SMPTE timecode and its frame arithmetic.
//! - [`thumbnails`]: scrubbing thumbnails, their sprites, and the files beside the master.
//! - [`signature`]: the coordinator's signature on task messages, which workers verify;
//!   [`secret`]: the secrets it and the forensic code words are keyed with.

pub mod ladder;
pub mod manifest;
pub mod review;
pub mod secret;
pub mod signature;
pub mod task;
pub mod thumbnails;
pub mod timecode;
pub mod timeline;
