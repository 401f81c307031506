//! A Swift container as an `object_store::ObjectStore`: OpenDAL's Swift service through
//! the `object_store_opendal` bridge, rebuilt on each new token, with what OpenDAL leaves
//! to us: the login and its renewal ([`Login`]), more tries with new tokens when the
//! service refuses one, typed errors, and static large objects whose segments go with them
//! when they are overwritten or deleted.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};
use object_store_opendal::OpendalStore;

use super::auth::{AuthError, Login, Session};

/// Where OpenDAL keeps the segments of a static large object (in the same container).
const SEGMENTS: &str = ".segments/";

/// Refusals of a request's token (401) before the request fails: the first is tried again
/// at once with a new token, the others after 0.25, 0.5, 1 and 2 s.
const REFUSALS: u32 = 6;

/// One container of one account.
#[derive(Clone)]
pub struct SwiftStore {
    shared: Arc<Shared>,
}

struct Shared {
    container: String,
    login: Arc<Login>,
    retry: opendal::layers::RetryLayer<CountRetries>,
    /// The same backoff, for the requests made outside OpenDAL (a large object's HEAD and
    /// DELETE).
    backoff: backon::ExponentialBuilder,
    /// How long a login is tried again through an outage.
    retry_for: std::time::Duration,
    /// The OpenDAL store made with the current token, and that token.
    built: Mutex<Option<(String, Arc<OpendalStore>)>>,
}

impl SwiftStore {
    pub fn new(container: &str, login: Arc<Login>, retry_for: std::time::Duration) -> Self {
        // Storage trouble (5xx, resets, timeouts) is retried as on S3: backoff with jitter,
        // 0.2 s growing to 20 s, as many tries as fit in `retry_for`.
        let tries = (retry_for.as_secs_f64() / 10.0).ceil().clamp(1.0, 15.0) as usize;
        let (min, max) = (Duration::from_millis(200), Duration::from_secs(20));
        let retry = opendal::layers::RetryLayer::new().with_jitter().with_min_delay(min).with_max_delay(max).with_max_times(tries).with_notify(CountRetries);
        let backoff = backon::ExponentialBuilder::default().with_jitter().with_min_delay(min).with_max_delay(max).with_max_times(tries);
        Self { shared: Arc::new(Shared { container: container.into(), login, retry, backoff, retry_for, built: Mutex::default() }) }
    }
}

impl Shared {
    /// The store for a session that holds (renewed first when due, or when `refused` is
    /// the token the service just refused), and its session.
    async fn store(&self, refused: Option<&str>) -> Result<(Session, Arc<OpendalStore>)> {
        let session = self.login.session(refused, self.retry_for).await.map_err(|e| auth_error(&self.container, e))?;
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, store)) = built.as_ref() {
            if *token == session.token {
                return Ok((session, store.clone()));
            }
        }
        let builder = opendal::services::Swift::default().endpoint(&session.storage_url).container(&self.container).token(&session.token);
        let operator = opendal::Operator::new(builder)
            .map_err(|e| object_store::Error::Generic { store: "Swift", source: Box::new(e) })?
            .layer(opendal::layers::TimeoutLayer::new().with_timeout(crate::s3::STORAGE_REQUEST_TIMEOUT))
            .layer(self.retry.clone());
        let store = Arc::new(OpendalStore::new(operator));
        *built = Some((session.token.clone(), store.clone()));
        Ok((session, store))
    }

    /// Runs `op` on the current store, with [`Shared::with_session`]'s tries on a refused token.
    async fn run<T, F, Fut>(&self, location: &str, op: F) -> Result<T>
    where
        F: Fn(Arc<OpendalStore>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        Ok(self.with_session(location, |_, store| op(store)).await?.1)
    }

    /// Runs `op` with the current session and its store; when the service refuses the
    /// token (401), again at once with a new one. A new token refused as well (a login
    /// service that answered the refused token, by a clock a little behind the proxy's, or
    /// a proxy that could not look a new token up) is tried again after a short wait,
    /// 0.25 s doubling, [`REFUSALS`] refusals in all.
    async fn with_session<T, F, Fut>(&self, location: &str, op: F) -> Result<(Session, T)>
    where
        F: Fn(Session, Arc<OpendalStore>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let (mut session, mut store) = self.store(None).await?;
        let mut wait = Duration::from_millis(250);
        for refusal in 1.. {
            match op(session.clone(), store).await.map_err(|e| typed(e, location)) {
                Err(e @ object_store::Error::Unauthenticated { .. }) if refusal < REFUSALS => {
                    if refusal > 1 {
                        tracing::warn!(location, refusal, error = %e, retry_in = ?wait, "Swift refused a new token too; trying again");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    (session, store) = self.store(Some(&session.token)).await?;
                }
                other => return other.map(|t| (session, t)),
            }
        }
        unreachable!("the loop returns by its last refusal")
    }

    /// Removes `key`'s segments when it is a static large object (before it is replaced or
    /// deleted: a plain overwrite or delete leaves them behind); true when it did.
    async fn clear_large(&self, key: &str) -> Result<bool> {
        let url = |session: &Session| format!("{}/{}/{}", session.storage_url, self.container, key);
        let (session, head) = self
            .with_session(key, |session, _| async move {
                let send = || async { answered(self.login.http().head(url(&session)).header("X-Auth-Token", &session.token).send().await?) };
                let head = self.retried(&format!("HEAD {key}"), send).await?;
                if head.status() == reqwest::StatusCode::UNAUTHORIZED || head.status() == reqwest::StatusCode::FORBIDDEN {
                    let source = format!("HEAD {key}: HTTP {}", head.status()).into();
                    return Err(object_store::Error::Unauthenticated { path: key.into(), source });
                }
                Ok(head)
            })
            .await?;
        let large = head.headers().get("x-static-large-object").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !large {
            return Ok(false);
        }
        let url = format!("{}?multipart-manifest=delete", url(&session));
        let delete = || async {
            let request = self.login.http().delete(&url).header("X-Auth-Token", &session.token).header("Accept", "application/json");
            Ok(answered(request.send().await?)?.json::<serde_json::Value>().await?)
        };
        let body = self.retried(&format!("deleting the large object {key}"), delete).await?;
        match body["Response Status"].as_str() {
            // 404: gone already (an earlier try's answer was lost).
            Some(s) if s.starts_with("200") || s.starts_with("404") => Ok(true),
            _ => Err(object_store::Error::Generic { store: "Swift", source: format!("deleting the large object {key} and its segments: {body}").into() }),
        }
    }

    /// Runs a request made outside OpenDAL, tried again as OpenDAL's are (the same backoff,
    /// counted in the same metric) when it was not answered or answered 5xx.
    async fn retried<T, F, Fut>(&self, what: &str, send: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, Failure>>,
    {
        use backon::Retryable;
        send.retry(self.backoff)
            .sleep(tokio::time::sleep)
            .when(Failure::is_transient)
            .notify(|e, wait| {
                crate::metrics::STORAGE_RETRIES.with_label_values(&[e.kind()]).inc();
                tracing::debug!(error = %e, retry_in = ?wait, what, "Swift request retried");
            })
            .await
            .map_err(|e| object_store::Error::Generic { store: "Swift", source: format!("{what}: {e}").into() })
    }
}

/// Why a request made outside OpenDAL failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
    #[error("HTTP {0}")]
    Server(reqwest::StatusCode),
}

impl Failure {
    /// Worth another try: not answered (a malformed request or answer is not), or 5xx.
    fn is_transient(&self) -> bool {
        match self {
            Failure::Transport(e) => !(e.is_builder() || e.is_decode()),
            Failure::Server(_) => true,
        }
    }

    /// The kind of `farm_worker_storage_request_retries_total` it counts as.
    fn kind(&self) -> &'static str {
        match self {
            Failure::Transport(_) => "transport",
            Failure::Server(_) => "server",
        }
    }
}

/// `answer`, or a [`Failure::Server`] when it is a 5xx.
fn answered(answer: reqwest::Response) -> std::result::Result<reqwest::Response, Failure> {
    match answer.status() {
        status if status.is_server_error() => Err(Failure::Server(status)),
        _ => Ok(answer),
    }
}

/// Counts OpenDAL's retries in `farm_worker_storage_request_retries_total`, by the same
/// kinds as the S3 client's: `transport` (the request was not answered) or `server`.
#[derive(Debug, Clone, Copy)]
pub struct CountRetries;

impl opendal::layers::RetryInterceptor for CountRetries {
    fn intercept(&self, event: opendal::layers::RetryEvent<'_>) {
        let kind = if event.err.to_string().contains("send http request") { "transport" } else { "server" };
        crate::metrics::STORAGE_RETRIES.with_label_values(&[kind]).inc();
        tracing::debug!(error = %event.err, attempt = event.attempt, retry_in = ?event.retry_after, "Swift request retried");
    }
}

/// OpenDAL's errors come through the bridge as `Generic` with OpenDAL's kind: typed here,
/// so that refused credentials are not retried and missing objects are not outages.
fn typed(e: object_store::Error, location: &str) -> object_store::Error {
    let object_store::Error::Generic { store, source } = e else { return e };
    let path = location.to_string();
    // A body read's error comes as an `io::Error` around OpenDAL's.
    let inner = source.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|e| e.downcast_ref::<opendal::Error>());
    match source.downcast_ref::<opendal::Error>().or(inner).map(opendal::Error::kind) {
        Some(opendal::ErrorKind::PermissionDenied) => object_store::Error::Unauthenticated { path, source },
        Some(opendal::ErrorKind::NotFound) => object_store::Error::NotFound { path, source },
        Some(opendal::ErrorKind::ConfigInvalid) => object_store::Error::NotSupported { source },
        _ => object_store::Error::Generic { store, source },
    }
}

fn auth_error(container: &str, e: AuthError) -> object_store::Error {
    let path = container.to_string();
    if e.is_transient() {
        object_store::Error::Generic { store: "Swift", source: Box::new(e) }
    } else {
        object_store::Error::Unauthenticated { path, source: Box::new(e) }
    }
}

impl fmt::Display for SwiftStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Swift container {}", self.shared.container)
    }
}

impl fmt::Debug for SwiftStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SwiftStore({})", self.shared.container)
    }
}

/// A large object's upload, made whole when it is completed, inside the request that is
/// renewed and tried again on a refused token. An OpenDAL upload keeps the token it began
/// with for every part and for the manifest, and tempauth hands out the same token until it
/// expires: an upload that outlived it had its manifest refused (found by CI, a 20 MiB
/// object under a 6 s token). The parts are held until then (the sink's callers hold the
/// whole object in memory anyway).
struct WholeUpload {
    shared: Arc<Shared>,
    location: Path,
    opts: PutMultipartOptions,
    parts: Vec<PutPayload>,
}

impl fmt::Debug for WholeUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WholeUpload({}/{}, {} parts)", self.shared.container, self.location, self.parts.len())
    }
}

#[async_trait::async_trait]
impl MultipartUpload for WholeUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        self.parts.push(data);
        Box::pin(futures::future::ready(Ok(())))
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let (location, parts, opts) = (&self.location, &self.parts, &self.opts);
        self.shared.run(location.as_ref(), |s| async move {
            let mut upload = s.put_multipart_opts(location, opts.clone()).await?;
            for part in parts {
                upload.put_part(part.clone()).await?;
            }
            upload.complete().await
        }).await
    }

    async fn abort(&mut self) -> Result<()> {
        self.parts.clear();
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for SwiftStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.shared.clear_large(location.as_ref()).await?;
        self.shared.run(location.as_ref(), |s| {
            let (payload, opts) = (payload.clone(), opts.clone());
            async move { s.put_opts(location, payload, opts).await }
        }).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.shared.clear_large(location.as_ref()).await?;
        Ok(Box::new(WholeUpload { shared: self.shared.clone(), location: location.clone(), opts, parts: Vec::new() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        // A ranged read (the source reader's, a few MiB) is read to its end inside the
        // request that is renewed and tried again on a refused token: its body, retried by
        // OpenDAL through an outage with the token it started with, would otherwise meet
        // that token's expiry out of the renewal's reach.
        let whole = options.range.is_some() && !options.head;
        self.shared.run(location.as_ref(), |s| {
            let options = options.clone();
            async move {
                let got = s.get_opts(location, options).await?;
                if !whole {
                    return Ok(got);
                }
                let (meta, range, attributes, extensions) = (got.meta.clone(), got.range.clone(), got.attributes.clone(), got.extensions.clone());
                let body = got.bytes().await?;
                let payload = GetResultPayload::Stream(futures::stream::once(async { Ok(body) }).boxed());
                Ok(GetResult { payload, meta, range, attributes, extensions })
            }
        }).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.shared.run(location.as_ref(), |s| async move { s.get_ranges(location, ranges).await }).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let shared = self.shared.clone();
        locations
            .and_then(move |location| {
                let shared = shared.clone();
                async move {
                    if !shared.clear_large(location.as_ref()).await? {
                        let one = |s: Arc<OpendalStore>| {
                            let location = location.clone();
                            async move { s.delete_stream(futures::stream::iter([Ok(location)]).boxed()).try_collect::<Vec<_>>().await }
                        };
                        shared.run(location.as_ref(), one).await?;
                    }
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        // Listed whole, so that a token refused on the way is renewed and the listing tried
        // again like any other request (output prefixes hold thousands of keys at most).
        let (shared, prefix) = (self.shared.clone(), prefix.cloned());
        futures::stream::once(async move {
            let location = prefix.as_ref().map_or(String::new(), |p| p.to_string());
            let listed = shared.run(&location, |s| {
                let prefix = prefix.clone();
                async move { s.list(prefix.as_ref()).try_collect::<Vec<_>>().await }
            });
            match listed.await {
                Ok(all) => futures::stream::iter(all.into_iter().map(Ok)).boxed(),
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
            }
        })
        .flatten()
        // A listing of the whole container would show the large objects' segments too.
        .try_filter(|m| std::future::ready(!m.location.as_ref().starts_with(SEGMENTS)))
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let location = prefix.map_or(String::new(), |p| p.to_string());
        self.shared.run(&location, |s| async move { s.list_with_delimiter(prefix).await }).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.shared.run(to.as_ref(), |s| {
            let options = options.clone();
            async move { s.copy_opts(from, to, options).await }
        }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: Box<dyn std::error::Error + Send + Sync>) -> object_store::Error {
        object_store::Error::Generic { store: "IoError", source }
    }

    #[test]
    fn a_refused_token_is_unauthenticated_in_a_request_and_in_a_body_read() {
        let refused = || opendal::Error::new(opendal::ErrorKind::PermissionDenied, "401");
        assert!(matches!(typed(generic(Box::new(refused())), "k"), object_store::Error::Unauthenticated { .. }));
        // A body read's error: OpenDAL's inside an io::Error.
        let in_body = std::io::Error::other(refused());
        assert!(matches!(typed(generic(Box::new(in_body)), "k"), object_store::Error::Unauthenticated { .. }));
        let outage = std::io::Error::other(opendal::Error::new(opendal::ErrorKind::Unexpected, "connection refused"));
        assert!(matches!(typed(generic(Box::new(outage)), "k"), object_store::Error::Generic { .. }));
    }
}
