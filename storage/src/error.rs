//! What kind of storage trouble an error is, decided in one place.
//!
//! Takes an `std::io::Error` as the sinks and the reader return it (object-store errors
//! travel inside it as their source); answers a [`StorageErrorKind`]. From the kind follow
//! the decisions made elsewhere: a missing object or a refused credential is permanent
//! (never retried: wrong credentials stay wrong), an outage may pass (retried, or 503 at
//! the API), an invalid request is the caller's fault.

/// The kinds of storage trouble that are decided differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// The object or folder does not exist.
    NotFound,
    /// The credentials were refused (401/403) or are missing.
    Unauthorized,
    /// The request was malformed (a bad key or path): retrying cannot help.
    Invalid,
    /// The service could not be reached or failed (timeouts, 5xx after retries, resets).
    Unavailable,
}

impl StorageErrorKind {
    /// Whether trying again later could help.
    pub fn is_transient(self) -> bool {
        self == Self::Unavailable
    }
}

/// The kind of an I/O error from a sink, the reader or a local file.
pub fn kind_of(e: &std::io::Error) -> StorageErrorKind {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<object_store::Error>()) {
        return object_kind(inner);
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => StorageErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => StorageErrorKind::Unauthorized,
        std::io::ErrorKind::InvalidInput => StorageErrorKind::Invalid,
        _ => StorageErrorKind::Unavailable,
    }
}

fn object_kind(e: &object_store::Error) -> StorageErrorKind {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => StorageErrorKind::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => StorageErrorKind::Unauthorized,
        E::InvalidPath { .. } | E::NotSupported { .. } | E::UnknownConfigurationKey { .. } => StorageErrorKind::Invalid,
        _ => StorageErrorKind::Unavailable,
    }
}

/// An object-store error as an I/O error, the original kept as its source.
pub(crate) fn to_io(e: object_store::Error) -> std::io::Error {
    let kind = match object_kind(&e) {
        StorageErrorKind::NotFound => std::io::ErrorKind::NotFound,
        StorageErrorKind::Unauthorized => std::io::ErrorKind::PermissionDenied,
        StorageErrorKind::Invalid => std::io::ErrorKind::InvalidInput,
        StorageErrorKind::Unavailable => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_are_not_transient() {
        let denied = to_io(object_store::Error::PermissionDenied { path: "k".into(), source: "403".into() });
        assert_eq!(kind_of(&denied), StorageErrorKind::Unauthorized);
        assert!(!kind_of(&denied).is_transient());
        let missing = to_io(object_store::Error::NotFound { path: "k".into(), source: "404".into() });
        assert_eq!(kind_of(&missing), StorageErrorKind::NotFound);
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let outage = to_io(object_store::Error::Generic { store: "S3", source: "connection refused".into() });
        assert!(kind_of(&outage).is_transient());
        assert_eq!(kind_of(&std::io::Error::from(std::io::ErrorKind::ConnectionReset)), StorageErrorKind::Unavailable);
    }
}
