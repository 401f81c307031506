//! Where the farm reads and writes, and the rules for it.
//!
//! - [`location`]: a local path, `s3://bucket/key` or `swift://container/key`, parsed and
//!   normalised;
//! - [`allow`]: allow-lists compared component by component, symlinks resolved;
//! - [`settings`]: the storage flags both binaries take;
//! - [`s3`]: the S3 client, retry policy;
//! - [`swift`]: Swift containers: login and renewal, the container as an object store;
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
pub mod settings;
pub mod sink;
pub mod swift;
pub mod whole;

pub use allow::{AllowError, AllowList};
pub use error::StorageErrorKind;
pub use location::{Location, LocationError, SourceLocation};
pub use reader::{ObjectReader, ReadStats, ReaderHandle};
pub use settings::{StorageArgs, StorageSettings};
pub use whole::read_whole;
pub use sink::{open_sink, open_source, LocalDir, ObjectSink, OpenError, Sink, Sinks};
