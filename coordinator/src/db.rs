//! Job state in a real database: SQLite by default, PostgreSQL when `DATABASE_URL` names
//! one. Plain SQL both understand, through sqlx's `Any` driver.

use farm_contract::task::{Priority, TaskPart};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub state: State,
    pub source: String,
    pub output: String,
    pub priority: Priority,
    #[serde(skip)]
    pub ladder: String,
    pub idempotency_key: Option<String>,
    pub error: Option<String>,
    pub master_playlist: Option<String>,
    /// What the probe found, for live playlists (JSON of the live publisher's `JobPlan`).
    #[serde(skip)]
    pub plan: Option<String>,
    /// The job's checked review settings (JSON of `farm_contract::review::Review`).
    #[serde(skip)]
    pub review: Option<String>,
    /// Every video segment encoded as variant A and B; shares get code words.
    pub forensic_watermark: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Task {
    pub id: String,
    pub job_id: String,
    pub part: TaskPart,
    pub state: State,
    pub frames_done: i64,
    pub frames_total: Option<i64>,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// SQLite (one coordinator replica) rather than PostgreSQL.
    pub(crate) sqlite: bool,
}

/// The schema, in `coordinator/migrations/`, applied in order at start-up.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn priority_str(p: Priority) -> &'static str {
    farm_queue::routing_key(p)
}

impl Store {
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(file).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
        }
        // SQLite takes one writer at a time: one connection avoids "database is locked".
        let sqlite = url.starts_with("sqlite:");
        let max = if sqlite { 1 } else { 8 };
        let pool = AnyPoolOptions::new().max_connections(max).connect(url).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, sqlite })
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// Stores a job, its tasks and its wrapped content keys (by key period) in one transaction.
    pub async fn insert(&self, job: &Job, tasks: &[Task], keys: &crate::keys::NewKeys) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO jobs (id, idempotency_key, state, source, output, priority, ladder, error, master, plan, created_ms, updated_ms, review, forensic)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&job.id)
        .bind(&job.idempotency_key)
        .bind(job.state.as_str())
        .bind(&job.source)
        .bind(&job.output)
        .bind(priority_str(job.priority))
        .bind(&job.ladder)
        .bind(&job.error)
        .bind(&job.master_playlist)
        .bind(&job.plan)
        .bind(job.created_ms)
        .bind(job.updated_ms)
        .bind(&job.review)
        .bind(i64::from(job.forensic_watermark))
        .execute(&mut *tx)
        .await?;
        for t in tasks {
            sqlx::query(
                "INSERT INTO tasks (id, job_id, part, state, frames_done, frames_total, error, updated_ms, reclaims)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)",
            )
            .bind(&t.id)
            .bind(&t.job_id)
            .bind(serde_json::to_string(&t.part).expect("parts serialise"))
            .bind(t.state.as_str())
            .bind(t.frames_done)
            .bind(t.frames_total)
            .bind(&t.error)
            .bind(job.created_ms)
            .execute(&mut *tx)
            .await?;
        }
        for (period, wrapped) in &keys.wrapped {
            sqlx::query("INSERT INTO content_keys (job_id, period, period_seconds, wrapped) VALUES ($1, $2, $3, $4)")
                .bind(&job.id)
                .bind(i64::from(*period))
                .bind(i64::from(keys.period_seconds))
                .bind(wrapped)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    pub async fn job(&self, id: &str) -> Result<Option<Job>, sqlx::Error> {
        self.job_where("id", id).await
    }

    /// The job still queued or running that writes `output`, if any.
    pub async fn live_job_on(&self, output: &str) -> Result<Option<Job>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE output = $1 AND state IN ('queued', 'running')"))
            .bind(output)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| job_from(&r)).transpose()
    }

    pub async fn job_by_key(&self, key: &str) -> Result<Option<Job>, sqlx::Error> {
        self.job_where("idempotency_key", key).await
    }

    /// The job whose unique `column` (a fixed name, never user input) equals `value`.
    async fn job_where(&self, column: &'static str, value: &str) -> Result<Option<Job>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {column} = $1"))
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| job_from(&r)).transpose()
    }

    /// Jobs in id order (ids grow with time), after `cursor`, optionally in one state.
    pub async fn jobs(&self, state: Option<State>, cursor: Option<&str>, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 = '' OR state = $2) AND id > $3 ORDER BY id LIMIT $4"
        ))
        .bind(state.map_or("", State::as_str))
        .bind(state.map_or("", State::as_str))
        .bind(cursor.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from).collect()
    }

    pub async fn tasks(&self, job_id: &str) -> Result<Vec<Task>, sqlx::Error> {
        let rows = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE job_id = $1 ORDER BY id"))
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_from).collect()
    }

    /// Running tasks no worker has reported on since `before_ms`, with their reclaim count.
    pub async fn stalled_tasks(&self, before_ms: i64) -> Result<Vec<(Task, i64)>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS}, COALESCE(reclaims, 0) AS reclaims FROM tasks
             WHERE state = 'running' AND COALESCE(updated_ms, 0) < $1 ORDER BY id"
        ))
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((task_from(r)?, r.try_get::<i64, _>("reclaims")?))).collect()
    }

    /// A stalled task handed out again: queued, its clock restarted, one more reclaim.
    pub async fn mark_reclaimed(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE tasks SET state = 'queued', updated_ms = $1, reclaims = COALESCE(reclaims, 0) + 1 WHERE id = $2 AND state = 'running'")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Open jobs whose every task succeeded: to complete (their last event found storage
    /// down, or came while the coordinator was away).
    pub async fn completable_jobs(&self) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id FROM jobs j WHERE state IN ('queued', 'running')
             AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id)
             AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state <> 'succeeded')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("id")).collect()
    }

    /// A job whose tasks could not all be handed to the broker frees its idempotency key,
    /// so that the client's retry makes a new job rather than finding the failed one.
    pub async fn release_key(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET idempotency_key = NULL WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Sets a job's state unless it is already final; returns whether it changed.
    pub async fn set_job_state(&self, id: &str, state: State, error: Option<&str>, master: Option<&str>) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, error = COALESCE($2, error), master = COALESCE($3, master), updated_ms = $4
             WHERE id = $5 AND state NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(master)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn update_task(&self, id: &str, state: State, frames_done: i64, frames_total: Option<i64>, error: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE tasks SET state = $1, frames_done = $2, frames_total = COALESCE($3, frames_total), error = COALESCE($4, error), updated_ms = $5
             WHERE id = $6 AND state <> 'succeeded'",
        )
        .bind(state.as_str())
        .bind(frames_done)
        .bind(frames_total)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every task of a job done, all of their frames counted.
    pub async fn complete_tasks(&self, job_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE tasks SET state = 'succeeded', frames_done = COALESCE(frames_total, frames_done) WHERE job_id = $1")
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Open jobs not every task of which succeeded, with no change to the job or a task
    /// since `before_ms`.
    pub async fn quiet_jobs(&self, before_ms: i64) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id FROM jobs j WHERE state IN ('queued', 'running') AND COALESCE(updated_ms, 0) < $1
             AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state <> 'succeeded')
             AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND COALESCE(t.updated_ms, 0) >= $1)",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("id")).collect()
    }

    /// Marks a task done, all of its frames counted.
    pub async fn complete_task(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE tasks SET state = 'succeeded', frames_done = COALESCE(frames_total, frames_done) WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many jobs are in each state.
    pub async fn count_by_state(&self) -> Result<Vec<(State, i64)>, sqlx::Error> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((state_of(r)?, r.try_get::<i64, _>("n")?))).collect()
    }

    /// Jobs not final yet (to finish after a restart).
    pub async fn open_jobs(&self) -> Result<Vec<Job>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running') ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from).collect()
    }
}

const JOB_COLUMNS: &str =
    "id, idempotency_key, state, source, output, priority, ladder, error, master, plan, created_ms, updated_ms, review, forensic";

const TASK_COLUMNS: &str = "id, job_id, part, state, frames_done, frames_total, error";

fn task_from(r: &AnyRow) -> Result<Task, sqlx::Error> {
    Ok(Task {
        id: r.try_get("id")?,
        job_id: r.try_get("job_id")?,
        part: serde_json::from_str(&r.try_get::<String, _>("part")?).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        state: state_of(r)?,
        frames_done: r.try_get("frames_done")?,
        frames_total: r.try_get("frames_total")?,
        error: r.try_get("error")?,
    })
}

fn state_of(r: &AnyRow) -> Result<State, sqlx::Error> {
    let s: String = r.try_get("state")?;
    State::parse(&s).ok_or_else(|| sqlx::Error::Decode(format!("unknown state {s}").into()))
}

fn job_from(r: &AnyRow) -> Result<Job, sqlx::Error> {
    let priority: String = r.try_get("priority")?;
    Ok(Job {
        id: r.try_get("id")?,
        idempotency_key: r.try_get("idempotency_key")?,
        state: state_of(r)?,
        source: r.try_get("source")?,
        output: r.try_get("output")?,
        priority: if priority == "high" { Priority::High } else { Priority::Normal },
        ladder: r.try_get("ladder")?,
        error: r.try_get("error")?,
        master_playlist: r.try_get("master")?,
        plan: r.try_get("plan")?,
        review: r.try_get("review")?,
        forensic_watermark: r.try_get::<i64, _>("forensic")? != 0,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}
