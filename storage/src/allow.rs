//! Allow-lists: which locations a job may read from or write to.
//!
//! Takes the configured prefixes (`FARM_ALLOWED_SOURCES`, `FARM_ALLOWED_OUTPUTS`) and a
//! parsed [`Location`]; answers whether the location lies inside one of them. The
//! comparison is component by component (`s3://rushes` never allows
//! `s3://rushes-finance/...`), after `..` was refused at parsing, and for local paths again
//! after resolving symbolic links, so a link inside an allowed folder that leads outside it
//! does not count as inside. The answer never says whether a path outside exists.

use std::path::{Path, PathBuf};

use crate::location::{Location, LocationError};

#[derive(Debug, thiserror::Error)]
pub enum AllowError {
    #[error("{what} {location} is not inside an allowed location")]
    Outside { what: &'static str, location: String },
    #[error("allowed location {entry:?} is invalid: {source}")]
    Entry { entry: String, source: LocationError },
}

/// Prefixes a location must lie inside; an empty list allows everything.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: Vec<Location>,
}

impl AllowList {
    /// Parses the configured prefixes; blank entries are skipped.
    pub fn parse(entries: &[String]) -> Result<Self, AllowError> {
        let entries = entries
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|e| Location::parse(e).map_err(|source| AllowError::Entry { entry: e.into(), source }))
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `location` lies inside an allowed prefix; `what` names it in the error
    /// ("source", "output", "LUT").
    pub fn check(&self, what: &'static str, location: &Location) -> Result<(), AllowError> {
        if self.entries.is_empty() || self.entries.iter().any(|e| inside(location, e)) {
            return Ok(());
        }
        Err(AllowError::Outside { what, location: location.to_string() })
    }
}

fn inside(location: &Location, entry: &Location) -> bool {
    if !lexically_inside(location, entry) {
        return false;
    }
    match (location, entry) {
        (Location::Local(path), Location::Local(root)) => {
            let (path, root) = (resolved(path), resolved(root));
            path.starts_with(&root)
        }
        _ => true,
    }
}

fn lexically_inside(location: &Location, entry: &Location) -> bool {
    let same_kind = matches!(
        (location, entry),
        (Location::Local(_), Location::Local(_)) | (Location::S3 { .. }, Location::S3 { .. }) | (Location::Swift { .. }, Location::Swift { .. })
    );
    same_kind && location.components().starts_with(&entry.components())
}

/// The path with every symbolic link resolved: the deepest part that exists is
/// canonicalised, the rest (an output folder not made yet) appended as it is.
fn resolved(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.into_iter().rev().fold(real, |p, c| p.join(c));
        }
        match (existing.file_name().map(|n| n.to_owned()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn allowed(list: &AllowList, location: &str) -> bool {
        list.check("source", &Location::parse(location).unwrap()).is_ok()
    }

    #[test]
    fn prefixes_match_whole_components_only() {
        let l = list(&["s3://rushes/", "/mnt/ingest/"]);
        assert!(allowed(&l, "s3://rushes/day1/A001.mov"));
        assert!(allowed(&l, "/mnt/ingest/A001.mov"));
        assert!(!allowed(&l, "s3://rushes-finance/A001.mov"), "string prefix of the bucket");
        assert!(!allowed(&l, "/mnt/ingest-other/A001.mov"), "string prefix of a folder");
        assert!(!allowed(&l, "s3://finance/report.mov"));
        assert!(!allowed(&l, "mnt/ingest/A001.mov"), "relative path");
        let keyed = list(&["s3://rushes/show-a"]);
        assert!(allowed(&keyed, "s3://rushes/show-a/A001.mov"));
        assert!(!allowed(&keyed, "s3://rushes/show-ab/A001.mov"));
        // Swift and S3 are separate places, even with the same names.
        let swift = list(&["swift://rushes/show-a"]);
        assert!(allowed(&swift, "swift://rushes/show-a/A001.mov"));
        assert!(!allowed(&swift, "s3://rushes/show-a/A001.mov"));
        assert!(!allowed(&keyed, "swift://rushes/show-a/A001.mov"));
        assert!(allowed(&list(&[]), "/anything"));
        assert!(allowed(&list(&["", " "]), "/anything"));
    }

    /// Issue 14, defect 1: a symbolic link inside the allowed folder that leads outside it.
    #[test]
    fn symlinks_leading_outside_are_not_inside() {
        let dir = tempfile::tempdir().unwrap();
        let (ingest, other) = (dir.path().join("ingest"), dir.path().join("other"));
        std::fs::create_dir_all(&ingest).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("secret.mov"), b"x").unwrap();
        std::os::unix::fs::symlink(&other, ingest.join("link")).unwrap();
        let l = list(&[ingest.to_str().unwrap()]);
        let through = ingest.join("link/secret.mov");
        assert!(!allowed(&l, through.to_str().unwrap()));
        assert!(!allowed(&l, ingest.join("link/new/out").to_str().unwrap()), "an output under the link");
        assert!(allowed(&l, ingest.join("clip.mov").to_str().unwrap()), "a path that does not exist yet");
        // The same refusal whether the path outside exists or not.
        let missing = ingest.join("link/none.mov");
        let a = l.check("source", &Location::parse(through.to_str().unwrap()).unwrap()).unwrap_err().to_string();
        let b = l.check("source", &Location::parse(missing.to_str().unwrap()).unwrap()).unwrap_err().to_string();
        assert_eq!(a.replace("secret", "none"), b);
    }
}
