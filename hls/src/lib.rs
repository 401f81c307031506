//! HLS playlists of the farm, with no FFmpeg: testable alone.
//!
//! - [`playlist`]: VOD media, I-frame and master playlists assembled from part manifests;
//!   [`playlist::live`]: the EVENT playlists of a job still running;
//! - [`codecs`]: CODECS strings from the bitstream (H.264 SPS in Annex B);
//! - [`review`]: `review.json` and the `thumbnails.vtt` track beside the master;
//! - [`publish`]: the playlists of a finished job written to its output, master last;
//! - [`encryption`]: AES-128 segments, IVs and key URIs; [`share`]: media playlists as a
//!   share link hands them out;
//! - [`forensic`]: A/B watermark code words, the variant each share sees at each segment
//!   position, and the trace of a leak back to shares.

pub mod codecs;
pub mod encryption;
pub mod forensic;
pub mod playlist;
pub mod publish;
pub mod review;
pub mod share;

pub use playlist::MASTER;
