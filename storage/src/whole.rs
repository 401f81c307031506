//! Small files read whole (a job's LUT): a local file or an object, refused past a size.
//!
//! Blocking, like the source reader: called from the worker's blocking task, or from the
//! coordinator inside `spawn_blocking`.

use std::io;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;

use crate::error::to_io;
use crate::location::SourceLocation;

/// The whole content of `location`, if it is at most `max` bytes.
pub fn read_whole(location: &SourceLocation, max: u64) -> io::Result<Vec<u8>> {
    let too_big = |size: u64| io::Error::new(io::ErrorKind::InvalidData, format!("{location} is {size} bytes, more than {max}"));
    match location {
        SourceLocation::Local(path) => {
            let meta = std::fs::metadata(path)?;
            if !meta.is_file() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{location} is not a regular file")));
            }
            if meta.len() > max {
                return Err(too_big(meta.len()));
            }
            std::fs::read(path)
        }
        SourceLocation::Object { store, key, rt, .. } => {
            let path = ObjectPath::from(key.as_str());
            let meta = rt.block_on(store.head(&path)).map_err(to_io)?;
            if meta.size > max {
                return Err(too_big(meta.size));
            }
            let got = rt.block_on(async { store.get(&path).await?.bytes().await }).map_err(to_io)?;
            Ok(got.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_read_and_large_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("show.cube");
        std::fs::write(&path, b"LUT_3D_SIZE 2\n").unwrap();
        let loc = SourceLocation::Local(path);
        assert_eq!(read_whole(&loc, 100).unwrap(), b"LUT_3D_SIZE 2\n");
        assert_eq!(read_whole(&loc, 4).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let missing = SourceLocation::Local(dir.path().join("none.cube"));
        assert_eq!(read_whole(&missing, 100).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
