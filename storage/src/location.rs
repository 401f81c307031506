//! Locations: a local path, an `s3://bucket/key` or a `swift://container/key` URL, parsed
//! once and normalised.
//!
//! Takes the text a job or a flag names; hands on a [`Location`] whose path or key has no
//! `.`, `..` or empty component, so that comparing it with an allow-list component by
//! component means what it says. Any other URL scheme (`http:`, `file:`, `concat:`...) is
//! refused: FFmpeg would happily open it, we never let it.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use tokio::runtime::Handle;

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("{0:?} is not a location this farm reads or writes: use a local path, s3://bucket/key or swift://container/key")]
    Scheme(String),
    #[error("{0:?} names no bucket")]
    NoBucket(String),
    #[error("{0:?} contains '..', '.' or an empty path segment")]
    Traversal(String),
    #[error("{0:?} is empty")]
    Empty(String),
    #[error("cannot set up object storage access for {bucket}: {message}")]
    Client { bucket: String, message: String },
}

/// Where a source, a LUT or an output prefix lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
    /// An object (or prefix) in an OpenStack Swift container.
    Swift { container: String, key: String },
}

impl Location {
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        if text.trim().is_empty() {
            return Err(LocationError::Empty(text.into()));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = object(text, rest)?;
            return Ok(Self::S3 { bucket, key });
        }
        if let Some(rest) = text.strip_prefix("swift://") {
            let (container, key) = object(text, rest)?;
            return Ok(Self::Swift { container, key });
        }
        let has_scheme = text.split_once(':').is_some_and(|(s, _)| {
            s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if has_scheme {
            return Err(LocationError::Scheme(text.into()));
        }
        Ok(Self::Local(normal_path(text)?))
    }

    /// The location's components (bucket first for objects), for prefix comparison.
    pub(crate) fn components(&self) -> Vec<String> {
        match self {
            Self::Local(p) => p.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect(),
            Self::S3 { bucket: root, key } | Self::Swift { container: root, key } => {
                std::iter::once(root.clone()).chain(key.split('/').filter(|k| !k.is_empty()).map(str::to_owned)).collect()
            }
        }
    }
}

impl Location {
    /// `scheme://root` of an object location (`s3://bucket`), `root` for a local one.
    pub(crate) fn scheme_and(&self, root: &str) -> String {
        match self {
            Self::Local(_) => root.to_string(),
            Self::S3 { .. } => format!("s3://{root}"),
            Self::Swift { .. } => format!("swift://{root}"),
        }
    }
}

/// The bucket (or container) and key of an object URL's `rest` after the scheme.
fn object(text: &str, rest: &str) -> Result<(String, String), LocationError> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(LocationError::NoBucket(text.into()));
    }
    let key = key.trim_end_matches('/');
    if !key.is_empty() && key.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(LocationError::Traversal(text.into()));
    }
    Ok((bucket.into(), key.into()))
}

/// A local path with `.` components dropped and `..` refused (a path that climbs is never
/// what an ingest pipeline means, and lexical resolution of `..` is wrong across symlinks).
fn normal_path(text: &str) -> Result<PathBuf, LocationError> {
    let mut out = PathBuf::new();
    for c in Path::new(text).components() {
        match c {
            Component::ParentDir => return Err(LocationError::Traversal(text.into())),
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(LocationError::Empty(text.into()));
    }
    Ok(out)
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Self::Swift { container, key } => write!(f, "swift://{container}/{key}"),
        }
    }
}

/// Where a source is read from, ready to open.
#[derive(Debug, Clone)]
pub enum SourceLocation {
    Local(PathBuf),
    /// An object, read by ranged GETs; `url` is for messages.
    Object { url: String, store: Arc<dyn ObjectStore>, key: String, rt: Handle },
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::Object { url, .. } => write!(f, "{url}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_local_paths_or_s3_urls_only() {
        assert_eq!(Location::parse("clip.mov").unwrap(), Location::Local("clip.mov".into()));
        assert_eq!(Location::parse("/mnt/a b/clip.mov").unwrap(), Location::Local("/mnt/a b/clip.mov".into()));
        assert_eq!(Location::parse("/mnt/./a//clip.mov").unwrap(), Location::Local("/mnt/a/clip.mov".into()));
        assert_eq!(
            Location::parse("s3://rushes/day1/A001.mov").unwrap(),
            Location::S3 { bucket: "rushes".into(), key: "day1/A001.mov".into() }
        );
        assert_eq!(
            Location::parse("s3://review/job-1/").unwrap(),
            Location::S3 { bucket: "review".into(), key: "job-1".into() }
        );
        assert_eq!(
            Location::parse("swift://rushes/day1/A001.mxf").unwrap(),
            Location::Swift { container: "rushes".into(), key: "day1/A001.mxf".into() }
        );
        assert!(matches!(Location::parse("swift://c/a/../b"), Err(LocationError::Traversal(_))));
        assert!(matches!(Location::parse("swift:///k"), Err(LocationError::NoBucket(_))));
        for bad in ["http://example.com/a.mov", "file:///etc/passwd", "concat:a|b", "ftp://x/y"] {
            assert!(matches!(Location::parse(bad), Err(LocationError::Scheme(_))), "{bad}");
        }
        assert!(matches!(Location::parse("s3:///key"), Err(LocationError::NoBucket(_))));
        assert!(matches!(Location::parse("s3://b/a/../c"), Err(LocationError::Traversal(_))));
        assert!(matches!(Location::parse("s3://b/a//c"), Err(LocationError::Traversal(_))));
        assert!(matches!(Location::parse(""), Err(LocationError::Empty(_))));
    }

    /// Issue 14, defect 1: `/x/ingest/../other/clip.mov` passed a string-prefix allow-list.
    #[test]
    fn local_paths_that_climb_are_refused() {
        for bad in ["/x/ingest/../other/clip.mov", "/x/review/../../anywhere", "../up", "a/../../b"] {
            assert!(matches!(Location::parse(bad), Err(LocationError::Traversal(_))), "{bad}");
        }
    }
}
