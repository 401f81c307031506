//! RabbitMQ from the coordinator's side: tasks out (persistent, publisher-confirmed),
//! task events in (a durable queue of its own, so events sent while the coordinator is
//! down are read when it is back).

use std::time::Duration;

use anyhow::Context;
use farm_contract::task::Priority;
use farm_queue::{routing_key, Topology};
use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::sync::Arc;

use farm_queue::{declare, publish_confirmed};
use farm_queue::MemoryQueue;
use tokio::sync::Mutex;

use farm_contract::signature::{TaskKey, HEADER_SIGNATURE};


/// How long connecting to RabbitMQ and declaring the topology may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Broker {
    url: String,
    pub topology: Topology,
    link: Mutex<Option<(Connection, Channel)>>,
    /// The embedded farm's in-process queue, used instead of RabbitMQ when set.
    memory: Option<Arc<MemoryQueue>>,
    /// For RabbitMQ's management API (made once, on first use: connections are reused).
    http: std::sync::OnceLock<reqwest::Client>,
    /// Signs every task sent to RabbitMQ (workers refuse unsigned ones).
    key: Option<TaskKey>,
}

impl Broker {
    pub fn new(url: &str, topology: Topology, key: TaskKey) -> Self {
        Self { url: url.into(), topology, link: Mutex::new(None), memory: None, http: Default::default(), key: Some(key) }
    }

    pub fn embedded(queue: Arc<MemoryQueue>, topology: Topology) -> Self {
        Self { url: String::new(), topology, link: Mutex::new(None), memory: Some(queue), http: Default::default(), key: None }
    }

    /// A confirming channel, connecting (and declaring the topology) when needed.
    async fn channel(&self) -> anyhow::Result<Channel> {
        let mut link = self.link.lock().await;
        if let Some((conn, channel)) = link.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        // Bounded: a broker that takes the TCP connection but never answers (overloaded,
        // half-booted) must make /readyz say 503, not hang it and every request behind it.
        let (conn, channel) = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| anyhow::anyhow!("the broker did not answer within {} s", CONNECT_TIMEOUT.as_secs()))??;
        *link = Some((conn, channel.clone()));
        Ok(channel)
    }

    async fn connect(&self) -> anyhow::Result<(Connection, Channel)> {
        let conn = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .context("connecting to the broker")?;
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        declare(&channel, &self.topology).await?;
        Ok((conn, channel))
    }

    /// Unacknowledged (in-flight) messages per task queue, from the management API at
    /// `url` (`http://user:pass@host:15672/VHOST`); empty when it does not answer.
    pub async fn unacked(&self, url: &str) -> Vec<(String, u64)> {
        let Ok(base) = reqwest::Url::parse(url) else {
            tracing::warn!("FARM_RABBITMQ_MANAGEMENT_URL is not a URL");
            return Vec::new();
        };
        let vhost = match base.path().trim_start_matches('/') {
            "" => "%2f".to_string(),
            v => v.to_string(),
        };
        let (user, password) = (base.username().to_string(), base.password().unwrap_or("").to_string());
        let client = self
            .http
            .get_or_init(|| reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("HTTP client"));
        let mut out = Vec::new();
        for queue in [Priority::High, Priority::Normal].map(|p| self.topology.queue(p)) {
            let mut api = base.clone();
            api.set_path(&format!("/api/queues/{vhost}/{queue}"));
            let _ = api.set_username("");
            let _ = api.set_password(None);
            let reply = client.get(api).basic_auth(&user, Some(&password)).send().await;
            match reply.and_then(|r| r.error_for_status()) {
                Ok(r) => match r.json::<serde_json::Value>().await {
                    Ok(v) => out.push((queue, v["messages_unacknowledged"].as_u64().unwrap_or(0))),
                    Err(e) => tracing::debug!(error = %e, "management API answer not understood"),
                },
                Err(e) => tracing::debug!(error = %e, "management API did not answer"),
            }
        }
        out
    }

    /// Ready messages in each task queue and the dead-letter queue (empty when the broker
    /// is away). Workers take tasks with basic.get, so queues have no consumers to count.
    pub async fn queue_stats(&self) -> Vec<(String, u32)> {
        let queues: Vec<String> = [Priority::High, Priority::Normal]
            .into_iter()
            .map(|p| self.topology.queue(p))
            .chain([self.topology.dead_queue()])
            .collect();
        if let Some(memory) = &self.memory {
            return vec![(self.topology.queue(Priority::Normal), memory.depth() as u32)];
        }
        let Ok(channel) = self.channel().await else { return Vec::new() };
        let mut stats = Vec::new();
        for queue in queues {
            let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
            match channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await {
                Ok(q) => stats.push((queue, q.message_count())),
                Err(e) => {
                    tracing::debug!(%queue, error = %e, "no queue statistics");
                    break; // a failed passive declare closes the channel
                }
            }
        }
        stats
    }

    pub async fn connected(&self) -> bool {
        self.memory.is_some() || self.channel().await.is_ok()
    }

    /// Publishes a task and waits for the broker to confirm it.
    pub async fn publish_task(&self, priority: Priority, payload: &[u8]) -> anyhow::Result<()> {
        if let Some(queue) = &self.memory {
            queue.publish(priority, payload.to_vec());
            return Ok(());
        }
        let channel = self.channel().await?;
        let mut headers = lapin::types::FieldTable::default();
        if let Some(key) = &self.key {
            headers.insert(HEADER_SIGNATURE.into(), lapin::types::AMQPValue::LongString(key.sign(payload).into()));
        }
        let properties = BasicProperties::default().with_content_type("application/json".into()).with_headers(headers);
        // Mandatory: a task that no queue takes (queues deleted by hand) is refused, not lost.
        Ok(publish_confirmed(&channel, &self.topology.tasks_exchange(), routing_key(priority), true, payload, properties).await?)
    }

    /// Publishes a job event (`job.accepted`, `job.playable`, ...) on the events exchange
    /// for the review application and the ingest pipeline. Failures are logged, not fatal:
    /// the job's state in the database is the reference.
    pub async fn publish_event(&self, routing_key: &str, body: &serde_json::Value) {
        if self.memory.is_some() {
            // Nobody outside the process listens in the embedded farm: the log is the record.
            tracing::info!(routing_key, event = %body, "job event");
            return;
        }
        // Confirmed by the broker; retried twice (the job's state in the database is the
        // reference, so a lost notification is logged, not fatal).
        let mut result = Ok(());
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
            result = self.publish_event_once(routing_key, body).await;
            if result.is_ok() {
                return;
            }
        }
        if let Err(e) = result {
            tracing::warn!(routing_key, event = %body, error = format!("{e:#}"), "job event not published after 3 attempts");
        }
    }

    async fn publish_event_once(&self, routing_key: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        let channel = self.channel().await?;
        let payload = serde_json::to_vec(body)?;
        let properties = BasicProperties::default().with_content_type("application/json".into());
        Ok(publish_confirmed(&channel, &self.topology.events_exchange(), routing_key, false, &payload, properties).await?)
    }

    /// The embedded farm's in-process queue, if this is the embedded farm.
    pub(crate) fn memory(&self) -> Option<&Arc<MemoryQueue>> {
        self.memory.as_ref()
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}
