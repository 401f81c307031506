//! Where the farm reads and writes, and the rules for it.
//!
//! - [`location`]: a local path or `s3://bucket/key`, parsed and normalised;
//! - [`allow`]: allow-lists compared component by component, symlinks resolved;
//! - [`s3`]: the S3 client settings and flags, retry policy;
//! - [`reader`]: ranged reads of a source object, adaptive GET size, read plans;
//! - [`sink`]: where output goes by key (a local folder or a bucket prefix);
//! - [`whole`]: small files read whole (LUTs), with a size limit;
//! - [`error`]: what kind of storage trouble it was (not found, unauthorized, unavailable),
//!   from which retrying or refusing follows;
//! - [`metrics`]: bytes and requests, in the process-wide registry.

pub mod allow;
pub mod error;
pub mod location;
pub mod metrics;
pub mod reader;
pub mod s3;
pub mod sink;
pub mod whole;

pub use allow::{AllowError, AllowList};
pub use error::StorageErrorKind;
pub use location::{Location, LocationError, SourceLocation};
pub use reader::{ObjectReader, ReadStats, ReaderHandle};
pub use s3::{S3Args, S3Settings};
pub use whole::read_whole;
pub use sink::{open_sink, open_source, LocalDir, ObjectSink, OpenError, Sink, Sinks};
