//! The audit trail: an append-only table of who did what, when, from which address (jobs
//! submitted and cancelled, requests denied; shares and key fetches as they come).
//!
//! Each row holds the SHA-256 of the row before it, over a canonical encoding of every
//! field, and rows are numbered without gaps, so [`verify`] finds an edited or deleted row
//! (a deleted *last* row shows only against a recorded head: `coordinator audit verify`
//! prints the head to keep elsewhere). Appends are serialised by the gapless number itself
//! (its primary key): two coordinators racing for one number see a conflict and retry.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{now_ms, Store};

/// The hash the first row points back to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, before it has a place in the trail.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// A principal's name, `share:ID` for a share viewer, `-` when unknown.
    pub principal: String,
    pub address: String,
    /// `job.submitted`, `job.cancelled`, `request.denied`, ...
    pub action: &'static str,
    pub job_id: Option<String>,
    pub share_id: Option<String>,
    pub detail: String,
}

/// A row of the trail as stored and as `GET /v1/audit` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Record {
    pub seq: i64,
    pub at_ms: i64,
    pub principal: String,
    pub address: String,
    pub action: String,
    pub job_id: Option<String>,
    pub share_id: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Record {
    /// SHA-256 of every field but `hash`, as a JSON array (unambiguous, and easy to
    /// recompute with any tool).
    pub fn compute_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.seq, self.at_ms, self.principal, self.address, self.action, self.job_id, self.share_id, self.detail, self.prev_hash
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Appends an event; returns its row.
pub async fn append(store: &Store, event: Event) -> Result<Record, sqlx::Error> {
    static ONE_WRITER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_WRITER.lock().await;
    let mut attempt = 0;
    loop {
        let head = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetch_optional(&store.pool).await?;
        let (seq, prev_hash) = match head {
            Some(row) => (row.try_get::<i64, _>("seq")? + 1, row.try_get::<String, _>("hash")?),
            None => (1, GENESIS.to_string()),
        };
        let mut record = Record {
            seq,
            at_ms: now_ms(),
            principal: event.principal.clone(),
            address: event.address.clone(),
            action: event.action.to_string(),
            job_id: event.job_id.clone(),
            share_id: event.share_id.clone(),
            detail: event.detail.clone(),
            prev_hash,
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let inserted = sqlx::query(
            "INSERT INTO audit (seq, at_ms, principal, address, action, job_id, share_id, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(record.seq)
        .bind(record.at_ms)
        .bind(&record.principal)
        .bind(&record.address)
        .bind(&record.action)
        .bind(&record.job_id)
        .bind(&record.share_id)
        .bind(&record.detail)
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .execute(&store.pool)
        .await;
        match inserted {
            Ok(_) => return Ok(record),
            // Another coordinator took this number: read the new head and try again.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempt < 20 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Appends, and logs (never fails the request) when the database refuses.
pub async fn record(store: &Store, event: Event) {
    let action = event.action;
    if let Err(e) = append(store, event).await {
        tracing::error!(error = %e, action, "the audit trail could not be written");
    }
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Rows about this job.
    pub job: Option<String>,
    /// Rows about this share.
    pub share: Option<String>,
    /// Rows by this principal (`share:ID` for a share's viewer).
    pub principal: Option<String>,
    /// Rows at or after this time, milliseconds since 1970.
    pub since: Option<i64>,
    /// Rows after this sequence number (to page on); 1000 rows a page.
    pub after: Option<i64>,
}

pub const PAGE: i64 = 1000;

pub async fn query(store: &Store, f: &Filter) -> Result<Vec<Record>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, at_ms, principal, address, action, job_id, share_id, detail, prev_hash, hash FROM audit
         WHERE ($1 IS NULL OR job_id = $1) AND ($2 IS NULL OR share_id = $2) AND ($3 IS NULL OR principal = $3)
           AND at_ms >= $4 AND seq > $5
         ORDER BY seq LIMIT $6",
    )
    .bind(&f.job)
    .bind(&f.share)
    .bind(&f.principal)
    .bind(f.since.unwrap_or(i64::MIN))
    .bind(f.after.unwrap_or(0))
    .bind(PAGE)
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Record, sqlx::Error> {
    Ok(Record {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        principal: row.try_get("principal")?,
        address: row.try_get("address")?,
        action: row.try_get("action")?,
        job_id: row.try_get("job_id")?,
        share_id: row.try_get("share_id")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// What a walk of the whole trail found.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Intact { rows: i64, head: String },
    /// The first row that does not fit, and why.
    Broken { seq: i64, reason: String },
}

/// Walks the trail in order, page by page, checking numbers, links and hashes.
pub async fn verify(store: &Store) -> Result<Verdict, sqlx::Error> {
    let mut chain = Chain::default();
    loop {
        let page = query(store, &Filter { after: Some(chain.last_seq), ..Filter::default() }).await?;
        if page.is_empty() {
            return Ok(Verdict::Intact { rows: chain.last_seq, head: chain.head().to_string() });
        }
        for r in &page {
            if let Err(reason) = chain.next(r) {
                return Ok(Verdict::Broken { seq: r.seq, reason });
            }
        }
    }
}

/// The chain so far: the last number and hash seen.
#[derive(Debug, Default)]
struct Chain {
    last_seq: i64,
    last_hash: Option<String>,
}

impl Chain {
    fn head(&self) -> &str {
        self.last_hash.as_deref().unwrap_or(GENESIS)
    }

    fn next(&mut self, r: &Record) -> Result<(), String> {
        if r.seq != self.last_seq + 1 {
            return Err(format!("row {} is missing: the trail goes from row {} to row {}", self.last_seq + 1, self.last_seq, r.seq));
        }
        if r.prev_hash != self.head() {
            return Err(format!("row {} does not point back to row {} (its prev_hash differs from that row's hash)", r.seq, self.last_seq));
        }
        if r.compute_hash() != r.hash {
            return Err(format!("row {}'s content does not match its hash: the row was edited", r.seq));
        }
        self.last_seq = r.seq;
        self.last_hash = Some(r.hash.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(n: i64) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for seq in 1..=n {
            let prev_hash = out.last().map_or(GENESIS.to_string(), |r| r.hash.clone());
            let mut r = Record {
                seq,
                at_ms: 1_700_000_000_000 + seq,
                principal: "ingest".into(),
                address: "10.0.0.7".into(),
                action: "job.submitted".into(),
                job_id: Some(format!("j{seq}")),
                share_id: None,
                detail: String::new(),
                prev_hash,
                hash: String::new(),
            };
            r.hash = r.compute_hash();
            out.push(r);
        }
        out
    }

    fn walk(rows: &[Record]) -> Result<(), (i64, String)> {
        let mut chain = Chain::default();
        rows.iter().try_for_each(|r| chain.next(r).map_err(|e| (r.seq, e)))
    }

    #[test]
    fn an_untouched_trail_walks_and_any_change_names_the_first_bad_row() {
        let rows = trail(5);
        assert_eq!(walk(&rows), Ok(()));
        let mut edited = rows.clone();
        edited[2].principal = "admin".into();
        let (seq, why) = walk(&edited).unwrap_err();
        assert_eq!(seq, 3);
        assert!(why.contains("edited"), "{why}");
        // Rehashing the edited row does not help: the next row no longer points to it.
        edited[2].hash = edited[2].compute_hash();
        assert_eq!(walk(&edited).unwrap_err().0, 4);
        let mut deleted = rows.clone();
        deleted.remove(1);
        let (seq, why) = walk(&deleted).unwrap_err();
        assert_eq!(seq, 3);
        assert!(why.contains("row 2 is missing"), "{why}");
        let mut renumbered = rows.clone();
        renumbered.remove(1);
        for r in renumbered.iter_mut().skip(1) {
            r.seq -= 1;
        }
        assert_eq!(walk(&renumbered).unwrap_err().0, 2);
    }

    #[test]
    fn the_hash_covers_every_field() {
        let r = &trail(1)[0];
        let variants = [
            Record { seq: 2, ..r.clone() },
            Record { at_ms: 0, ..r.clone() },
            Record { address: "10.0.0.8".into(), ..r.clone() },
            Record { action: "job.cancelled".into(), ..r.clone() },
            Record { job_id: None, ..r.clone() },
            Record { share_id: Some("s1".into()), ..r.clone() },
            Record { detail: "x".into(), ..r.clone() },
            Record { prev_hash: "1".repeat(64), ..r.clone() },
        ];
        for v in variants {
            assert_ne!(v.compute_hash(), r.hash, "{v:?}");
        }
    }
}
