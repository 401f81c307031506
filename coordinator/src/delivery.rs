//! Delivering an encrypted review copy: the content key of one key period to a principal
//! whose role may fetch keys; and a share link's playback: its playlists rewritten (segment
//! URIs signed object-storage URLs, key URIs the share's own key endpoint), its other files
//! (segments on local storage, thumbnails, review.json), its keys. Every share request
//! checks the share first (unknown 404; expired or revoked 403). Every key handed out and
//! every playlist a share fetches is a row in the audit trail, so "who watched which
//! minutes of job X" can be answered from it.
//!
//! A share of a watermarked job sees its own code word's copy only: its media playlists
//! are A's and B's merged by the word, its master has no I-frame playlists, and a segment
//! of the other variant at a position is "not found", whatever the storage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use crate::access::Caller;
use crate::app::{internal, rejected, ApiError, AppState, ErrorBody};
use crate::audit::{self, Event};
use crate::db::now_ms;
use crate::shares::Share;
use farm_hls::forensic::{by_word, Codebook, ForensicKey, Variant};

/// The 16 bytes of a job's content key for one key period (RFC 8216 key URI).
#[utoipa::path(get, path = "/v1/jobs/{id}/keys/{period}",
    params(("id" = String, Path, description = "job id"), ("period" = u32, Path, description = "key period")),
    responses(
        (status = 200, description = "the key: 16 bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "the period is not a number from 0", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "the role may not fetch keys", body = ErrorBody),
        (status = 404, description = "no such job or period, or the job is not encrypted", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job_key(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, u32)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path((id, period)) = path.map_err(rejected)?;
    let missing = || ApiError(StatusCode::NOT_FOUND, format!("job {id} has no content key for period {period}"));
    let Some(master) = app.master_key.as_ref() else { return Err(missing()) };
    let key = crate::keys::job_key(&app.store, master, &id, period).await.map_err(internal)?.ok_or_else(missing)?;
    audit::record(&app.store, caller.event("key.fetched", Some(&id), format!("period {period}"))).await;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, "no-store")], key.0.to_vec()).into_response())
}

/// The share whose secret is `token`, if it still plays; refusals are audited.
async fn open_share(app: &AppState, token: &str, address: &SocketAddr, what: &str) -> Result<Share, ApiError> {
    let (code, reason, share) = match crate::shares::by_token(&app.store, token).await.map_err(internal)? {
        None => (StatusCode::NOT_FOUND, "no such share link", None),
        Some(share) => match share.refusal(now_ms()) {
            None => return Ok(share),
            Some(reason) => (StatusCode::FORBIDDEN, reason, Some(share)),
        },
    };
    let detail = format!("{what}: {reason}");
    let event = match &share {
        Some(share) => share_event(share, address, "request.denied", detail),
        None => Event { principal: "-".into(), address: address.ip().to_string(), action: "request.denied", job_id: None, share_id: None, detail },
    };
    audit::record(&app.store, event).await;
    Err(ApiError(code, reason.into()))
}

/// How a share's viewer appears in the audit trail (never mistaken for a principal).
fn viewer_name(share: &Share) -> String {
    format!("viewer:{}", share.viewer)
}

fn share_event(share: &Share, address: &SocketAddr, action: &'static str, detail: String) -> Event {
    Event {
        principal: viewer_name(share),
        address: address.ip().to_string(),
        action,
        job_id: Some(share.job_id.clone()),
        share_id: Some(share.id.clone()),
        detail,
    }
}

/// The content key of one period, to a share link that still plays (the key URI of its
/// playlists). The share's secret is the credential: no bearer token.
#[utoipa::path(get, path = "/s/{token}/keys/{period}",
    params(("token" = String, Path, description = "the share's secret, from its URL"), ("period" = u32, Path, description = "key period")),
    responses(
        (status = 200, description = "the key: 16 bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "the period is not a number from 0", body = ErrorBody),
        (status = 403, description = "the share expired or was revoked", body = ErrorBody),
        (status = 404, description = "no such share, or no such period", body = ErrorBody)))]
pub async fn share_key(
    State(app): State<Arc<AppState>>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    path: Result<Path<(String, u32)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path((token, period)) = path.map_err(rejected)?;
    let share = open_share(&app, &token, &address, &format!("key {period}")).await?;
    let missing = || ApiError(StatusCode::NOT_FOUND, format!("no content key for period {period}"));
    let master = app.master_key.as_ref().ok_or_else(missing)?;
    let (key, seconds) = crate::keys::period_key(&app.store, master, &share.job_id, period).await.map_err(internal)?.ok_or_else(missing)?;
    let (from, to) = (u64::from(period) * u64::from(seconds), u64::from(period + 1) * u64::from(seconds));
    let detail = format!("period {period}: media {} to {}", clock(from), clock(to));
    audit::record(&app.store, share_event(&share, &address, "share.key_fetched", detail)).await;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, "no-store")], key.0.to_vec()).into_response())
}

/// `h:mm:ss` of media.
fn clock(seconds: u64) -> String {
    format!("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

/// A file of a shared job's output: playlists rewritten, segments redirected to a signed
/// URL (object storage) or served (local storage), other files served.
#[utoipa::path(get, path = "/s/{token}/media/{file}",
    params(("token" = String, Path, description = "the share's secret, from its URL"), ("file" = String, Path, description = "a file of the review copy: index.m3u8, a media playlist, a segment, review.json, thumbnails")),
    responses(
        (status = 200, description = "a playlist (rewritten for the share) or another file of the review copy", content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 302, description = "a segment on object storage: a short-lived signed URL of it"),
        (status = 403, description = "the share expired or was revoked", body = ErrorBody),
        (status = 404, description = "no such share or file", body = ErrorBody),
        (status = 503, description = "the output storage does not answer", body = ErrorBody)))]
pub async fn share_media(
    State(app): State<Arc<AppState>>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path((token, file)) = path.map_err(rejected)?;
    let share = open_share(&app, &token, &address, &format!("media {file}")).await?;
    let job = app.store.job(&share.job_id).await.map_err(internal)?.ok_or_else(|| not_found(&file))?;
    let remaining = u64::try_from((share.expires_ms - now_ms()) / 1000).unwrap_or(0).max(1);
    let word = match (job.forensic_watermark, &app.master_key) {
        (true, Some(master)) => Some(ShareWord::new(master, &job, &share).map_err(internal)?),
        (true, None) => return Err(ApiError(StatusCode::NOT_FOUND, "this watermarked review copy cannot be served without the master key".into())),
        (false, _) => None,
    };
    let response = media(&app, &job.output, &file, remaining, word).await?;
    if file.ends_with(".m3u8") {
        audit::record(&app.store, share_event(&share, &address, "share.playlist_fetched", file)).await;
    }
    Ok(response)
}

/// A file of a job's review copy for a principal who may play it (the review page's job
/// player): as for a share, with the job's own key endpoint.
#[utoipa::path(get, path = "/v1/jobs/{id}/media/{file}",
    params(("id" = String, Path, description = "job id"), ("file" = String, Path, description = "a file of the review copy")),
    responses(
        (status = 200, description = "a playlist (segment URIs signed) or another file of the review copy", content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 302, description = "a segment on object storage: a short-lived signed URL of it"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "the role may not play jobs", body = ErrorBody),
        (status = 404, description = "no such job or file", body = ErrorBody),
        (status = 503, description = "the output storage does not answer", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job_media(
    State(app): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path((id, file)) = path.map_err(rejected)?;
    let job = app.store.job(&id).await.map_err(internal)?.ok_or_else(|| not_found(&file))?;
    media(&app, &job.output, &file, app.config.share_url_seconds, None).await
}

/// A share's code word in a watermarked job, and which folders hold marked renditions.
pub struct ShareWord {
    key: ForensicKey,
    job: String,
    share: String,
    marked: std::collections::BTreeSet<String>,
}

impl ShareWord {
    pub fn new(master: &crate::keys::MasterKey, job: &crate::db::Job, share: &Share) -> anyhow::Result<Self> {
        let plan = crate::live::JobPlan::of(job)?.context("a watermarked job with no plan")?;
        let marked = plan.renditions.into_iter().map(|r| r.name).collect();
        Ok(Self { key: master.forensic_key(), job: job.id.clone(), share: share.id.clone(), marked })
    }

    fn variant(&self, position: u64) -> Variant {
        Codebook::new(&self.key, &self.job).variant(&self.share, position)
    }

    fn reachable(&self, name: &str) -> bool {
        by_word::reachable(name, |folder| self.marked.contains(folder), |p| self.variant(p))
    }

    fn is_marked_playlist(&self, name: &str) -> bool {
        name.rsplit_once('/').is_some_and(|(folder, file)| file == "index.m3u8" && self.marked.contains(folder))
    }
}

fn not_found(file: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no file {file} in this review copy"))
}

/// `file` of the review copy at `output`; signed URLs live at most `max_seconds`.
async fn media(app: &AppState, output: &str, file: &str, max_seconds: u64, word: Option<ShareWord>) -> Result<Response, ApiError> {
    let content_type = content_type(file).ok_or_else(|| not_found(file))?;
    if farm_storage::sink::check_key(file).is_err() || file.starts_with("parts/") || word.as_ref().is_some_and(|w| !w.reachable(file)) {
        return Err(not_found(file));
    }
    let ttl = Duration::from_secs(app.config.share_url_seconds.min(max_seconds));
    let (output, sinks, rt, name) = (output.to_string(), app.sinks.clone(), tokio::runtime::Handle::current(), file.to_string());
    let served = tokio::task::spawn_blocking(move || serve_file(&output, &sinks, &rt, &name, ttl, word.as_ref())).await.map_err(internal)?;
    let served = match served {
        Ok(s) => s,
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => return Err(not_found(file)),
        Err(e) => return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("the review copy cannot be read now: {e:#}"))),
    };
    let no_store = (header::CACHE_CONTROL, "no-store");
    Ok(match served {
        Served::Playlist(text) => ([(header::CONTENT_TYPE, content_type), no_store], text).into_response(),
        Served::Bytes(bytes) => ([(header::CONTENT_TYPE, content_type), no_store], bytes).into_response(),
        Served::Signed(url) => (StatusCode::FOUND, [(header::LOCATION, url.as_str()), no_store]).into_response(),
    })
}

enum Served {
    Playlist(String),
    Bytes(Vec<u8>),
    Signed(String),
}

/// Reads `name` from a job's output (blocking: storage calls).
fn serve_file(output: &str, sinks: &farm_storage::Sinks, rt: &tokio::runtime::Handle, name: &str, ttl: Duration, word: Option<&ShareWord>) -> anyhow::Result<Served> {
    let sink = sinks.open(output, rt)?;
    if farm_contract::manifest::is_media_key(name) {
        return Ok(match sink.signed_url(name, ttl)? {
            Some(url) => Served::Signed(url),
            None => Served::Bytes(sink.get(name)?),
        });
    }
    if !name.ends_with(".m3u8") {
        // review.json, the WebVTT track, sprites, the poster: small, served from here, so
        // that a page reads them without the bucket's CORS rules.
        return Ok(Served::Bytes(sink.get(name)?));
    }
    let mut text = String::from_utf8(sink.get(name)?)?;
    if name == farm_hls::MASTER {
        return Ok(Served::Playlist(match word {
            Some(_) => by_word::without_iframes(&text),
            None => text,
        }));
    }
    if let Some(word) = word.filter(|w| w.is_marked_playlist(name)) {
        text = by_word::media_by_word(&text, &b_playlist(sink.as_ref(), name)?, |p| word.variant(p))?;
    }
    let dir = name.rsplit_once('/').map_or(String::new(), |(d, _)| format!("{d}/"));
    // The key endpoint, relative to this playlist (`.../media/{name}` beside `.../keys/`, for
    // a share and for a job alike): proxy-safe.
    let up = "../".repeat(name.matches('/').count() + 1);
    let rewritten = farm_hls::share::rewrite_media(
        &text,
        |uri| Ok(sink.signed_url(&format!("{dir}{uri}"), ttl)?.unwrap_or_else(|| uri.to_string())),
        |period| format!("{up}keys/{period}"),
    )?;
    Ok(Served::Playlist(rewritten))
}

/// B's media playlist beside A's `name`; before B's first segment is written, none (a
/// header without segments: the merge stops at the first B position).
fn b_playlist(sink: &dyn farm_storage::Sink, name: &str) -> anyhow::Result<String> {
    let (folder, file) = name.rsplit_once('/').expect("a media playlist is in its rendition's folder");
    match sink.get_if_any(&format!("{folder}/{}/{file}", farm_contract::manifest::VARIANT_B))? {
        Some(bytes) => Ok(String::from_utf8(bytes)?),
        None => Ok("#EXTM3U\n".into()),
    }
}

/// What a share serves, by extension; anything else is not a file of a review copy.
fn content_type(name: &str) -> Option<&'static str> {
    Some(match name.rsplit_once('.')?.1 {
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        "m4s" => "video/iso.segment",
        "mp4" => "video/mp4",
        "json" => "application/json",
        "vtt" => "text/vtt",
        "jpg" => "image/jpeg",
        _ => return None,
    })
}
