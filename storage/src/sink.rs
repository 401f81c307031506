//! Where output goes: segments, part manifests and playlists, by object key.
//!
//! The transcoder writes through the [`Sink`] trait only, so the local directory used by
//! the one-shot command and object storage ([`ObjectSink`]) are interchangeable. Keys are
//! deterministic: a task run twice overwrites its own output instead of duplicating it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::runtime::Handle;

use crate::location::{Location, LocationError, SourceLocation};
use crate::error::to_io;
use crate::s3::{s3_client, s3_store};
use crate::settings::StorageSettings;
use crate::swift::swift_store;
use object_store::signer::Signer;

/// Objects above this are uploaded in parts.
const MULTIPART_ABOVE: usize = 16 * 1024 * 1024;

pub trait Sink: Send + Sync {
    /// Stores `data` under `key`, replacing any previous object; readers never see a
    /// half-written object.
    fn put(&self, key: &str, data: &[u8]) -> std::io::Result<()>;
    fn get(&self, key: &str) -> std::io::Result<Vec<u8>>;
    /// `key`'s object, or `None` when there is none; other failures stay errors.
    fn get_if_any(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        match self.get(key) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    /// Keys that start with `prefix`, sorted.
    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>>;
    /// Removes `key`; a key that is not there is not an error.
    fn delete(&self, key: &str) -> std::io::Result<()>;
    /// Where a key can be found, for messages (a path or a URL).
    fn locate(&self, key: &str) -> String;
    /// A URL that lets whoever holds it GET `key` for `ttl`, where the storage signs such
    /// URLs (object storage); `None` where it cannot (a local folder: serve the bytes).
    fn signed_url(&self, _key: &str, _ttl: std::time::Duration) -> std::io::Result<Option<String>> {
        Ok(None)
    }
}

/// Keys are relative, `/`-separated, with no empty, `.` or `..` segment.
pub fn check_key(key: &str) -> std::io::Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("invalid object key {key:?}")))
    }
}

/// A local directory. Writes go to a temporary file renamed into place.
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> std::io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

impl Sink for LocalDir {
    fn put(&self, key: &str, data: &[u8]) -> std::io::Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().expect("keys have a parent");
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1.write_all(data)?;
        tmp.1.sync_data()?;
        std::fs::rename(&tmp.0, &path)
    }

    fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(key)?)
    }

    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out)?;
        out.retain(|k| k.starts_with(prefix) && !k.contains("/.tmp-"));
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn locate(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = format!(".tmp-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    let path = dir.join(name);
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Where a task's source is: a local path or an object.
pub fn open_source(text: &str, settings: &StorageSettings, rt: &Handle) -> Result<SourceLocation, LocationError> {
    Ok(match Location::parse(text)? {
        Location::Local(path) => SourceLocation::Local(path),
        Location::S3 { bucket, key } => SourceLocation::Object { url: text.to_string(), store: s3_store(&bucket, settings)?, key, rt: rt.clone() },
        Location::Swift { container, key } => {
            let store = swift_store(&container, settings.swift.as_ref(), settings.retry_for())?;
            SourceLocation::Object { url: text.to_string(), store, key, rt: rt.clone() }
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("cannot create the output folder")]
    Io(#[source] std::io::Error),
}

/// Where a task's output goes: a local folder (created), a bucket prefix or a container
/// prefix.
pub fn open_sink(text: &str, settings: &StorageSettings, rt: &Handle) -> Result<Box<dyn Sink>, OpenError> {
    open_with(text, rt, |location| store_of(location, settings))
}

/// An object location's store, and its URL signer where the storage signs URLs (S3).
type Opened = (Arc<dyn ObjectStore>, Option<Arc<dyn Signer>>);

fn store_of(location: &Location, settings: &StorageSettings) -> Result<Opened, LocationError> {
    match location {
        Location::S3 { bucket, .. } => {
            let s3 = s3_client(bucket, settings)?;
            Ok((s3.clone(), Some(s3)))
        }
        Location::Swift { container, .. } => Ok((swift_store(container, settings.swift.as_ref(), settings.retry_for())?, None)),
        Location::Local(_) => unreachable!("local folders have no store"),
    }
}

/// A local folder, or an object prefix through the store `store` gives for the location.
fn open_with(text: &str, rt: &Handle, store: impl FnOnce(&Location) -> Result<Opened, LocationError>) -> Result<Box<dyn Sink>, OpenError> {
    let location = Location::parse(text)?;
    Ok(match &location {
        Location::Local(path) => Box::new(LocalDir::new(path).map_err(OpenError::Io)?),
        Location::S3 { key, .. } | Location::Swift { key, .. } => {
            let (store, signer) = store(&location)?;
            let root = location.components().remove(0);
            let sink = ObjectSink::new(store, &location.scheme_and(&root), key, rt.clone());
            Box::new(match signer {
                Some(signer) => sink.with_signer(signer),
                None => sink,
            })
        }
    })
}

/// Opens sinks for a long-lived process that opens many (a coordinator publishing
/// playlists and serving viewers): one client per bucket or container, kept, so that its
/// connection pool (and Swift token) is reused instead of new ones per request.
pub struct Sinks {
    settings: StorageSettings,
    clients: Mutex<HashMap<String, Opened>>,
}

impl Sinks {
    pub fn new(settings: StorageSettings) -> Self {
        Self { settings, clients: Mutex::default() }
    }

    /// [`open_sink`] with this process's client of the bucket or container.
    pub fn open(&self, text: &str, rt: &Handle) -> Result<Box<dyn Sink>, OpenError> {
        open_with(text, rt, |location| self.client(location))
    }

    fn client(&self, location: &Location) -> Result<Opened, LocationError> {
        let root = location.scheme_and(&location.components().remove(0));
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&root) {
            return Ok(client.clone());
        }
        let client = store_of(location, &self.settings)?;
        clients.insert(root, client.clone());
        Ok(client)
    }
}

/// Output under a prefix of a bucket or a container.
pub struct ObjectSink {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
    /// `s3://bucket` or `swift://container`, for messages.
    root: String,
    prefix: String,
    rt: Handle,
}

impl ObjectSink {
    /// `root` is the bucket's or container's URL (`s3://bucket`), for messages.
    pub fn new(store: Arc<dyn ObjectStore>, root: &str, prefix: &str, rt: Handle) -> Self {
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Self { store, signer: None, root: root.into(), prefix, rt }
    }

    /// Signs GET URLs of its keys with `signer` (the same bucket as the store).
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    fn path(&self, key: &str) -> std::io::Result<ObjectPath> {
        check_key(key)?;
        Ok(ObjectPath::from(format!("{}{key}", self.prefix)))
    }
}

impl Sink for ObjectSink {
    fn put(&self, key: &str, data: &[u8]) -> std::io::Result<()> {
        let path = self.path(key)?;
        let _timer = crate::metrics::PUT_SECONDS.start_timer();
        crate::metrics::STORAGE_BYTES.with_label_values(&["written"]).inc_by(data.len() as u64);
        self.rt.block_on(async {
            if data.len() <= MULTIPART_ABOVE {
                self.store.put(&path, PutPayload::from(data.to_vec())).await.map(|_| ())
            } else {
                let upload = self.store.put_multipart(&path).await?;
                let mut writer = WriteMultipart::new(upload);
                writer.write(data);
                writer.finish().await.map(|_| ())
            }
        })
        .map_err(to_io)
    }

    fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        let path = self.path(key)?;
        self.rt
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(to_io)
    }

    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let base = ObjectPath::from(self.prefix.trim_end_matches('/'));
        let metas: Vec<_> = self
            .rt
            .block_on(self.store.list(Some(&base)).try_collect::<Vec<_>>())
            .map_err(to_io)?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&self.prefix).map(str::to_owned))
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> std::io::Result<()> {
        let path = self.path(key)?;
        match self.rt.block_on(self.store.delete(&path)) {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other.map_err(to_io),
        }
    }

    fn locate(&self, key: &str) -> String {
        format!("{}/{}{key}", self.root, self.prefix)
    }

    fn signed_url(&self, key: &str, ttl: std::time::Duration) -> std::io::Result<Option<String>> {
        let Some(signer) = &self.signer else { return Ok(None) };
        let path = self.path(key)?;
        let url = self.rt.block_on(signer.signed_url(object_store::signer::Method::GET, &path, ttl)).map_err(to_io)?;
        Ok(Some(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_and_reject_traversal() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDir::new(dir.path()).unwrap();
        sink.put("720p/seg_00001.ts", b"one").unwrap();
        sink.put("720p/seg_00000.ts", b"zero").unwrap();
        sink.put("720p/seg_00000.ts", b"again").unwrap();
        sink.put("index.m3u8", b"#EXTM3U").unwrap();
        assert_eq!(sink.get("720p/seg_00000.ts").unwrap(), b"again");
        assert_eq!(sink.list("720p/").unwrap(), vec!["720p/seg_00000.ts", "720p/seg_00001.ts"]);
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(sink.put(bad, b"x").is_err(), "{bad}");
        }
    }
}
