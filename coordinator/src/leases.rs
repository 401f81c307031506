//! Leases in the job database: what must run on one coordinator replica at a time.
//!
//! Every replica answers the API and applies task events; the loops that must not run
//! twice at once run only where their lease is held: [`PLAYLISTS`] (live playlists and
//! finishing jobs, so no playlist is written by two replicas or goes backwards and no job
//! is finished twice), [`RECLAIM`] (stalled tasks handed out again) and [`DEAD_LETTERS`]
//! (the dead-letter follower). A lease lasts `ttl` from its last renewal, by the database's
//! clock; its keeper renews it every fifth of that. A replica that dies stops renewing and
//! its leases pass to another within `ttl`. Each new holder gets a larger `fence`; before
//! it writes, a holder checks in the database that the lease is still its own with that
//! fence ([`Lease::check`]), so a replica that lost its lease (frozen, cut off from the
//! database) writes nothing once another holds it. Its own view ([`Lease::held`]) ends a
//! fifth of `ttl` before the database's, on the monotonic clock, which runs on while the
//! process is frozen.
//!
//! On SQLite the same table serves one replica: SQLite is not shared between hosts, and a
//! second coordinator on the same file is refused by nothing but this lease (it would wait).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::db::Store;

/// Live playlists and finishing jobs (the final VOD playlists).
pub const PLAYLISTS: &str = "playlists";
/// Handing stalled tasks out again.
pub const RECLAIM: &str = "reclaim";
/// Following the dead letters (a dead task fails its job).
pub const DEAD_LETTERS: &str = "dead-letters";

/// One named lease as this replica sees it; clones share the state.
#[derive(Clone)]
pub struct Lease {
    inner: Arc<Inner>,
}

struct Inner {
    /// [`PLAYLISTS`], [`RECLAIM`] or [`DEAD_LETTERS`].
    kind: &'static str,
    /// In the table: the kind under the farm's queue prefix (farms may share a database).
    name: String,
    holder: String,
    store: Store,
    ttl: Duration,
    /// `Some(fence)` while held.
    state: watch::Sender<Option<i64>>,
    /// Until when this replica may act on it without asking the database.
    deadline: Mutex<Option<Instant>>,
}

/// The database's clock in milliseconds since the epoch: every replica compares against
/// the same clock.
fn now_sql(store: &Store) -> &'static str {
    if store.sqlite {
        "CAST((julianday('now') - 2440587.5) * 86400000 AS BIGINT)"
    } else {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    }
}

/// This process's name among the replicas: host (the pod's name), process id and a random
/// part, so that a restarted replica is a new holder.
pub fn holder_name() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).or_else(|| {
        std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string())
    });
    let mut random = [0u8; 4];
    let _ = getrandom::getrandom(&mut random);
    format!("{}-{}-{}", host.unwrap_or_else(|| "coordinator".into()), std::process::id(), hex::encode(random))
}

impl Lease {
    pub fn new(store: Store, prefix: &str, kind: &'static str, holder: &str, ttl: Duration) -> Self {
        let name = format!("{prefix}.{kind}");
        let inner = Inner { kind, name, holder: holder.to_string(), store, ttl, state: watch::channel(None).0, deadline: Mutex::new(None) };
        Self { inner: Arc::new(inner) }
    }

    /// Whether this replica holds the lease, as far as it knows without asking: it was
    /// renewed recently enough.
    pub fn held(&self) -> bool {
        let deadline = *self.inner.deadline.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.state.borrow().is_some() && deadline.is_some_and(|d| Instant::now() < d)
    }

    /// Follows the lease: `Some(fence)` while held, `None` when not.
    pub fn subscribe(&self) -> watch::Receiver<Option<i64>> {
        self.inner.state.subscribe()
    }

    /// The fenced check before a write: the database still names this replica, with the
    /// fence it was given, as the holder of an unexpired lease.
    pub async fn check(&self) -> bool {
        let Some(fence) = *self.inner.state.borrow() else { return false };
        if !self.held() {
            return false;
        }
        let sql = format!("SELECT fence FROM leases WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_ms > {}", now_sql(&self.inner.store));
        let row = sqlx::query(&sql).bind(&self.inner.name).bind(&self.inner.holder).bind(fence).fetch_optional(&self.inner.store.pool).await;
        match row {
            Ok(row) => row.is_some(),
            Err(e) => {
                tracing::warn!(lease = self.inner.kind, error = %e, "cannot check the lease: not writing");
                false
            }
        }
    }

    /// Takes the lease if it is free or expired: the new fence.
    async fn acquire(&self) -> Result<Option<i64>, sqlx::Error> {
        let now = now_sql(&self.inner.store);
        let sql = format!(
            "INSERT INTO leases (name, holder, fence, expires_ms) VALUES ($1, $2, 1, {now} + $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, fence = leases.fence + 1, expires_ms = excluded.expires_ms
             WHERE leases.expires_ms <= {now}
             RETURNING fence"
        );
        let row = sqlx::query(&sql).bind(&self.inner.name).bind(&self.inner.holder).bind(self.ttl_ms()).fetch_optional(&self.inner.store.pool).await?;
        row.map(|r| r.try_get::<i64, _>("fence")).transpose()
    }

    /// Extends the lease this replica holds with `fence`; false when it is no longer its own.
    async fn renew(&self, fence: i64) -> Result<bool, sqlx::Error> {
        let now = now_sql(&self.inner.store);
        let sql = format!("UPDATE leases SET expires_ms = {now} + $1 WHERE name = $2 AND holder = $3 AND fence = $4 AND expires_ms > {now}");
        let done = sqlx::query(&sql).bind(self.ttl_ms()).bind(&self.inner.name).bind(&self.inner.holder).bind(fence).execute(&self.inner.store.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up at shutdown, so that another replica takes it at once.
    async fn release(&self, fence: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE leases SET expires_ms = 0 WHERE name = $1 AND holder = $2 AND fence = $3")
            .bind(&self.inner.name)
            .bind(&self.inner.holder)
            .bind(fence)
            .execute(&self.inner.store.pool)
            .await?;
        Ok(())
    }

    fn ttl_ms(&self) -> i64 {
        self.inner.ttl.as_millis() as i64
    }

    fn set(&self, fence: Option<i64>, renewed_at: Option<Instant>) {
        // Ends before the database's expiry: the renewal was sent after `renewed_at`.
        let deadline = renewed_at.map(|at| at + self.inner.ttl * 4 / 5);
        *self.inner.deadline.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
        self.inner.state.send_if_modified(|state| std::mem::replace(state, fence) != fence);
    }

    /// Keeps trying to take the lease and renews it while held, until `shutdown`; then gives
    /// it up.
    pub async fn keep(self, metrics: Arc<crate::metrics::Metrics>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.ttl / 5);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let sent = Instant::now();
            let held = *self.inner.state.borrow();
            let outcome = match held {
                Some(fence) => self.renew(fence).await.map(|ok| ok.then_some(fence)),
                None => self.acquire().await,
            };
            match (held, outcome) {
                (_, Ok(Some(fence))) => {
                    if held.is_none() {
                        tracing::info!(lease = self.inner.kind, fence, holder = %self.inner.holder, "lease taken");
                    }
                    self.set(Some(fence), Some(sent));
                }
                (Some(fence), Ok(None)) => {
                    tracing::warn!(lease = self.inner.kind, fence, "lease lost: it expired before its renewal, or another replica took it");
                    self.set(None, None);
                }
                (None, Ok(None)) => {}
                (_, Err(e)) => {
                    // The deadline stands: past it, `held` says no by itself.
                    tracing::warn!(lease = self.inner.kind, error = %e, "cannot renew or take the lease");
                    if held.is_some() && !self.held() {
                        tracing::warn!(lease = self.inner.kind, "lease lost: not renewed in time");
                        self.set(None, None);
                    }
                }
            }
            metrics.lease_held(self.inner.kind, self.held());
        }
        let held = *self.inner.state.borrow();
        if let Some(fence) = held {
            self.set(None, None);
            if let Err(e) = self.release(fence).await {
                tracing::warn!(lease = self.inner.kind, error = %e, "lease not given up (it expires by itself)");
            }
        }
        metrics.lease_held(self.inner.kind, false);
    }
}

/// The replica's leases, one per loop.
#[derive(Clone)]
pub struct Leases {
    pub playlists: Lease,
    pub reclaim: Lease,
    pub dead_letters: Lease,
}

impl Leases {
    /// The leases of the farm with this queue prefix.
    pub fn new(store: &Store, prefix: &str, ttl: Duration) -> Self {
        let holder = holder_name();
        let lease = |kind| Lease::new(store.clone(), prefix, kind, &holder, ttl);
        Self { playlists: lease(PLAYLISTS), reclaim: lease(RECLAIM), dead_letters: lease(DEAD_LETTERS) }
    }

    /// Starts the keepers; they give the leases up at `shutdown`.
    pub fn keep(&self, metrics: &Arc<crate::metrics::Metrics>, shutdown: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        [&self.playlists, &self.reclaim, &self.dead_letters]
            .into_iter()
            .map(|lease| tokio::spawn(lease.clone().keep(metrics.clone(), shutdown.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::connect(&format!("sqlite://{}/t.db?mode=rwc", dir.path().display())).await.unwrap()
    }

    /// The database's clock passes a lease's expiry (its holder died and stopped renewing).
    async fn expire(store: &Store, name: &str) {
        sqlx::query("UPDATE leases SET expires_ms = 0 WHERE name = $1").bind(name).execute(&store.pool).await.unwrap();
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_new_fence_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let ttl = Duration::from_secs(60);
        let (a, b) = (Lease::new(store.clone(), "farm", PLAYLISTS, "a", ttl), Lease::new(store.clone(), "farm", PLAYLISTS, "b", ttl));
        let fence = a.acquire().await.unwrap().expect("free");
        a.set(Some(fence), Some(Instant::now()));
        assert!(a.check().await);
        assert_eq!(b.acquire().await.unwrap(), None, "held by a");
        assert!(a.renew(fence).await.unwrap());
        // a stops renewing (dies): once its lease expires by the database's clock, b takes it.
        expire(&store, "farm.playlists").await;
        let taken = b.acquire().await.unwrap().expect("expired");
        assert!(taken > fence, "the next holder's fence is larger");
        b.set(Some(taken), Some(Instant::now()));
        assert!(b.check().await);
        // a, back, finds its lease gone: no write, no renewal under the old fence.
        assert!(!a.check().await);
        assert!(!a.renew(fence).await.unwrap());
    }

    #[tokio::test]
    async fn a_lease_given_up_is_taken_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let ttl = Duration::from_secs(60);
        let (a, b) = (Lease::new(store.clone(), "farm", RECLAIM, "a", ttl), Lease::new(store.clone(), "farm", RECLAIM, "b", ttl));
        let fence = a.acquire().await.unwrap().unwrap();
        assert_eq!(b.acquire().await.unwrap(), None);
        a.release(fence).await.unwrap();
        assert_eq!(b.acquire().await.unwrap(), Some(fence + 1));
    }

    #[tokio::test]
    async fn past_its_own_deadline_a_holder_does_not_act_even_if_the_database_still_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let a = Lease::new(store.clone(), "farm", DEAD_LETTERS, "a", Duration::from_secs(60));
        let fence = a.acquire().await.unwrap().unwrap();
        // Renewed "long ago" (a frozen process, thawed): its own view has ended.
        a.set(Some(fence), Some(Instant::now() - Duration::from_secs(59)));
        assert!(!a.held());
        assert!(!a.check().await);
    }
}
