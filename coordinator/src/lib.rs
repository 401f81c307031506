//! The coordinator of the HLS review farm. A job's life, one module per step:
//!
//! - [`api`]: the HTTP routes (jobs in, state out, health, metrics, [`openapi`] document);
//!   [`submit`]: jobs in over AMQP (the same acceptance, answered on the broker);
//! - [`accept`]: the request checked (content type, locations, allow-lists, limits), the
//!   source probed in a child process ([`probe`]);
//! - [`split`]: the job cut into chunk tasks on segment boundaries (each with its audio);
//! - [`dispatch`]: job and tasks stored ([`db`]), tasks signed and published with the
//!   broker's confirm ([`broker`]);
//! - [`follow`]: task events and dead letters in -> [`tracker`]: job state; the last task
//!   done -> VOD playlists, job succeeded;
//! - [`live`]: EVENT playlists while a job runs (review starts before the job ends);
//! - [`reclaim`]: completes jobs whose last event was missed, hands stalled tasks out again;
//! - [`leases`]: with several replicas, which one runs the loops that must run once
//!   (live playlists and finishing, reclaim, dead letters);
//! - [`metrics`], [`config`]; `embedded`: the in-process workers of the embedded farm.

pub mod accept;
pub mod access;
pub mod api;
pub mod app;
pub mod audit;
pub mod broker;
pub mod config;
pub mod db;
pub mod delivery;
pub mod dispatch;
mod embedded;
pub mod follow;
pub mod keys;
pub mod leases;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod principals;
pub mod probe;
pub mod split;
pub mod reclaim;
pub mod submit;
pub mod review_page;
pub mod shares;
pub mod trace;
pub mod trace_api;
pub mod tracker;

use std::sync::Arc;

use anyhow::Context;
use farm_queue::{MemoryQueue, Topology};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The embedded farm's queue lives in memory: after a restart, every task of an open job
/// that has not succeeded is queued again (a task that was running is simply rerun; its
/// keys are deterministic).
async fn requeue_unfinished(store: &db::Store, master: Option<&keys::MasterKey>, queue: &MemoryQueue) -> anyhow::Result<()> {
    let mut requeued = 0;
    for job in store.open_jobs().await? {
        let job_keys = keys::job_keys(store, master, &job.id).await?;
        for task in store.tasks(&job.id).await?.into_iter().filter(|t| t.state != db::State::Succeeded) {
            queue.publish(job.priority, split::stored_message(&job, &task, job_keys.as_ref())?);
            requeued += 1;
        }
    }
    if requeued > 0 {
        tracing::info!(tasks = requeued, "embedded farm: unfinished tasks queued again after a restart");
    }
    Ok(())
}

/// Serves the API on `listener` and follows task events until `shutdown`.
pub async fn run(config: config::Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.check().map_err(anyhow::Error::msg)?;
    let principals = config.principals()?;
    let master_key = config.master_key()?;
    if principals.is_empty() {
        tracing::warn!("NO API AUTHENTICATION: neither FARM_PRINCIPALS_FILE nor FARM_API_TOKEN is set, anyone who reaches {} is the admin (allowed only in the embedded farm on loopback)", config.listen);
    } else {
        tracing::info!(principals = principals.len(), "API principals loaded");
    }
    let allowed = config.allowed()?;
    let store = db::Store::connect(&config.database_url()).await.context("opening the job database")?;
    let metrics = Arc::new(metrics::Metrics::new());
    let topology = Topology::new(&config.queue_prefix);
    let mut embedded_workers: embedded::Workers = Vec::new();
    let broker = Arc::new(match &config.amqp_url {
        Some(url) => broker::Broker::new(url, topology, config.task_key().map_err(anyhow::Error::msg)?),
        None => {
            let queue = Arc::new(MemoryQueue::default());
            requeue_unfinished(&store, master_key.as_ref(), &queue).await?;
            embedded_workers = embedded::start(&config, &allowed, &queue, &topology, &shutdown)?;
            broker::Broker::embedded(queue, topology)
        }
    });
    let leases = leases::Leases::new(&store, &config.queue_prefix, std::time::Duration::from_secs(config.lease_seconds));
    if store.sqlite {
        tracing::info!("job database is SQLite: run this coordinator as the only replica (several replicas need PostgreSQL)");
    }
    // The leases outlive the loops that run under them: given up only once those stopped.
    let lease_stop = CancellationToken::new();
    let keepers = leases.keep(&metrics, &lease_stop);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    let sinks = Arc::new(farm_storage::Sinks::new(config.s3()));
    let (segments, new_segments) = tokio::sync::mpsc::unbounded_channel();
    let tracker = tracker::Tracker {
        store: store.clone(),
        sinks: sinks.clone(),
        metrics: metrics.clone(),
        broker: broker.clone(),
        lock: lock.clone(),
        segments,
        lease: leases.playlists.clone(),
    };
    let publisher = live::Publisher {
        store: store.clone(),
        sinks: sinks.clone(),
        lock,
        metrics: metrics.clone(),
        new_segments,
        master_key: master_key.clone(),
        lease: leases.playlists.clone(),
    };
    if allowed.sources.is_empty() {
        tracing::warn!("FARM_ALLOWED_SOURCES is empty: jobs may read any location the coordinator can reach");
    }
    let limits = &config.limits;
    let prober = probe::Prober::new(limits.probe_concurrency, std::time::Duration::from_secs(limits.probe_seconds), config.s3());
    let app = Arc::new(app::AppState { config, allowed, principals, master_key, prober, sinks, store: store.clone(), broker, metrics, tracker: tracker.clone() });

    // Jobs whose tasks all finished while no replica was up are completed by the reclaim
    // loop's first pass where the playlists lease is held.
    let events = {
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { follow::run(&app.broker, app.tracker.clone(), shutdown).await })
    };
    let dead_letters = {
        let (app, shutdown, lease) = (app.clone(), shutdown.clone(), leases.dead_letters.clone());
        tokio::spawn(async move { follow::run_dead_letters(&app.broker, app.tracker.clone(), lease, shutdown).await })
    };
    let live = {
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { publisher.run(&app.broker, shutdown).await })
    };
    let reclaim = {
        let app = app.clone();
        let shutdown = shutdown.clone();
        let stall = std::time::Duration::from_secs(app.config.task_stall_seconds.max(1));
        let lease = leases.reclaim.clone();
        tokio::spawn(async move { reclaim::run(&app, &lease, stall, shutdown).await })
    };
    let submissions = tokio::spawn(submit::run(app.clone(), shutdown.clone()));
    tracing::info!(address = %listener.local_addr()?, "coordinator listening");
    let token = shutdown.clone();
    let service = api::router(app, openapi::document()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await?;
    shutdown.cancel();
    let _ = events.await;
    let _ = dead_letters.await;
    let _ = live.await;
    let _ = reclaim.await;
    let _ = submissions.await;
    for worker in embedded_workers {
        let _ = worker.await;
    }
    // Last: the leases are given up once nothing runs under them any more.
    lease_stop.cancel();
    for keeper in keepers {
        let _ = keeper.await;
    }
    Ok(())
}
