//! Share links: a named viewer may play one encrypted job until the link expires or a
//! producer revokes it. The link's secret is shown once, when the share is made; the
//! database keeps its SHA-256 only, so a copy of the database plays nothing. Playback
//! itself (playlists, segments, keys) is in [`crate::delivery`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::access::Caller;
use crate::app::{bad, internal, rejected, ApiError, AppState, ErrorBody};
use crate::audit;
use crate::db::{now_ms, State as JobState, Store};

/// Where a share's playlists are, under its URL.
pub const MASTER_UNDER_URL: &str = "media/index.m3u8";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// Who will watch: a name or an e-mail address (1 to 200 characters).
    pub viewer: String,
    /// Seconds from now until the link stops playing (60 to FARM_SHARE_MAX_SECONDS).
    pub expires_in: u64,
    /// Free text for the audit trail (up to 1000 characters).
    pub note: Option<String>,
}

/// A new share: `url` is the only place its secret appears.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewShare {
    pub id: String,
    /// The share's page; its master playlist is `url` + `media/index.m3u8`.
    pub url: String,
    /// The master playlist, for players other than the review page.
    pub playlist: String,
    /// RFC 3339, UTC.
    pub expires: String,
}

/// A share as listed: never its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Share {
    pub id: String,
    pub job_id: String,
    pub viewer: String,
    pub note: Option<String>,
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub expires: String,
    pub revoked: Option<String>,
    pub revoked_by: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    #[serde(skip)]
    pub expires_ms: i64,
    #[serde(skip)]
    pub revoked_ms: Option<i64>,
}

impl Share {
    /// Why the share no longer plays, if it does not.
    pub fn refusal(&self, now: i64) -> Option<&'static str> {
        if self.revoked_ms.is_some() {
            Some("this share link was revoked")
        } else if now >= self.expires_ms {
            Some("this share link has expired")
        } else {
            None
        }
    }
}

pub fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The SHA-256 of a share secret, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)?;
    Ok(hex::encode(buf))
}

const COLUMNS: &str = "id, job_id, viewer, note, created_by, created_ms, expires_ms, revoked_ms, revoked_by";

fn from_row(row: &AnyRow) -> Result<Share, sqlx::Error> {
    let (expires_ms, revoked_ms): (i64, Option<i64>) = (row.try_get("expires_ms")?, row.try_get("revoked_ms")?);
    let now = now_ms();
    let status = match revoked_ms {
        Some(_) => "revoked",
        None if now >= expires_ms => "expired",
        None => "active",
    };
    Ok(Share {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        viewer: row.try_get("viewer")?,
        note: row.try_get("note")?,
        created_by: row.try_get("created_by")?,
        created: rfc3339(row.try_get("created_ms")?),
        expires: rfc3339(expires_ms),
        revoked: revoked_ms.map(rfc3339),
        revoked_by: row.try_get("revoked_by")?,
        status,
        expires_ms,
        revoked_ms,
    })
}

/// The share whose secret is `token`.
pub async fn by_token(store: &Store, token: &str) -> Result<Option<Share>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM shares WHERE token_sha256 = $1"))
        .bind(token_hash(token))
        .fetch_optional(&store.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

async fn by_id(store: &Store, id: &str) -> Result<Option<Share>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM shares WHERE id = $1")).bind(id).fetch_optional(&store.pool).await?;
    row.as_ref().map(from_row).transpose()
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(bad(format!("{what} is at most {max} characters, without control characters")));
    }
    Ok(())
}

/// Makes a share link for a job.
#[utoipa::path(post, path = "/v1/jobs/{id}/shares", request_body = ShareRequest,
    params(("id" = String, Path, description = "job id")),
    responses(
        (status = 201, body = NewShare),
        (status = 400, description = "a bad viewer, lifetime or note", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "the role may not manage shares", body = ErrorBody),
        (status = 404, description = "no such job", body = ErrorBody),
        (status = 409, description = "the job is not encrypted, or failed or was cancelled", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Result<Json<ShareRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<NewShare>), ApiError> {
    let Path(job_id) = path.map_err(rejected)?;
    let Json(req) = body.map_err(rejected)?;
    let viewer = req.viewer.trim();
    if viewer.is_empty() {
        return Err(bad("viewer is required: the name or e-mail address of who will watch"));
    }
    check_text("viewer", viewer, 200)?;
    check_text("note", req.note.as_deref().unwrap_or(""), 1000)?;
    let max = app.config.share_max_seconds;
    if req.expires_in < 60 || req.expires_in > max {
        return Err(bad(format!("expires_in is {} s: it must be from 60 to {max} (FARM_SHARE_MAX_SECONDS)", req.expires_in)));
    }
    let job = app.store.job(&job_id).await.map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {job_id}")))?;
    if matches!(job.state, JobState::Failed | JobState::Cancelled) {
        return Err(ApiError(StatusCode::CONFLICT, format!("job {job_id} is {}: there is nothing to watch", job.state.as_str())));
    }
    if app.master_key.is_none() || !crate::keys::is_encrypted(&app.store, &job_id).await.map_err(internal)? {
        return Err(ApiError(StatusCode::CONFLICT, format!("job {job_id} is not encrypted: only encrypted jobs are shared (FARM_MASTER_KEY_FILE)")));
    }
    let (id, token) = (format!("sh{}", random_hex(8).map_err(internal)?), random_hex(32).map_err(internal)?);
    let now = now_ms();
    let expires_ms = now + (req.expires_in as i64) * 1000;
    sqlx::query(&format!("INSERT INTO shares ({COLUMNS}, token_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8)"))
        .bind(&id)
        .bind(&job_id)
        .bind(viewer)
        .bind(req.note.as_deref())
        .bind(&caller.name)
        .bind(now)
        .bind(expires_ms)
        .bind(token_hash(&token))
        .execute(&app.store.pool)
        .await
        .map_err(internal)?;
    let mut detail = format!("viewer {viewer} until {}", rfc3339(expires_ms));
    if let (true, Some(master)) = (job.forensic_watermark, &app.master_key) {
        // Which code word went to whom: what a trace's verdict is checked against.
        let word = farm_hls::forensic::Codebook::new(&master.forensic_key(), &job_id).word_id(&id);
        detail.push_str(&format!("; forensic code word {word}"));
    }
    let mut event = caller.event("share.created", Some(&job_id), detail);
    event.share_id = Some(id.clone());
    audit::record(&app.store, event).await;
    let url = format!("{}/s/{token}/", app.config.public_url());
    Ok((StatusCode::CREATED, Json(NewShare { id, playlist: format!("{url}{MASTER_UNDER_URL}"), url, expires: rfc3339(expires_ms) })))
}

/// The shares of a job, newest first (without their secrets).
#[utoipa::path(get, path = "/v1/jobs/{id}/shares", params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = Vec<Share>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(app): State<Arc<AppState>>, path: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Result<Json<Vec<Share>>, ApiError> {
    let Path(job_id) = path.map_err(rejected)?;
    app.store.job(&job_id).await.map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {job_id}")))?;
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM shares WHERE job_id = $1 ORDER BY created_ms DESC, id DESC"))
        .bind(&job_id)
        .fetch_all(&app.store.pool)
        .await
        .map_err(internal)?;
    Ok(Json(rows.iter().map(from_row).collect::<Result<_, _>>().map_err(internal)?))
}

/// Revokes a share: its key requests fail from now on, so playback stops within one key
/// period and one segment. Revoking twice is not an error.
#[utoipa::path(delete, path = "/v1/shares/{id}", params(("id" = String, Path, description = "share id")),
    responses((status = 200, body = Share), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Share>, ApiError> {
    let Path(id) = path.map_err(rejected)?;
    let updated = sqlx::query("UPDATE shares SET revoked_ms = $1, revoked_by = $2 WHERE id = $3 AND revoked_ms IS NULL")
        .bind(now_ms())
        .bind(&caller.name)
        .bind(&id)
        .execute(&app.store.pool)
        .await
        .map_err(internal)?;
    let share = by_id(&app.store, &id).await.map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no share {id}")))?;
    if updated.rows_affected() > 0 {
        let mut event = caller.event("share.revoked", Some(&share.job_id), format!("viewer {}", share.viewer));
        event.share_id = Some(id);
        audit::record(&app.store, event).await;
    }
    Ok(Json(share))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_plays_until_it_expires_or_is_revoked() {
        let share = Share {
            id: "sh1".into(),
            job_id: "j".into(),
            viewer: "v".into(),
            note: None,
            created_by: "p".into(),
            created: rfc3339(0),
            expires: rfc3339(10_000),
            revoked: None,
            revoked_by: None,
            status: "active",
            expires_ms: 10_000,
            revoked_ms: None,
        };
        assert_eq!(share.refusal(9_999), None);
        assert_eq!(share.refusal(10_000), Some("this share link has expired"));
        assert_eq!(Share { revoked_ms: Some(5), ..share.clone() }.refusal(1), Some("this share link was revoked"));
        assert_eq!(rfc3339(86_400_000), "1970-01-02T00:00:00Z");
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
