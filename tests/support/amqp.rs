//! The real RabbitMQ of the tests (127.0.0.1:5672, guest/guest), started if it is not running.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub struct Broker {
    pub rt: tokio::runtime::Runtime,
    pub channel: Channel,
    conn: Connection,
}

pub fn broker() -> Broker {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let status = Command::new(root.join("scripts/services.sh")).arg("rabbitmq").status().expect("services.sh");
    assert!(status.success(), "could not start RabbitMQ (scripts/services.sh rabbitmq)");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (conn, channel) = rt.block_on(async {
        let conn = Connection::connect(URL, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
        let channel = conn.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        (conn, channel)
    });
    Broker { rt, channel, conn }
}

impl Broker {
    /// Publishes persistently, signed with the test farms' task key, and waits for the
    /// broker's confirm.
    pub fn publish(&self, exchange: &str, routing_key: &str, payload: &[u8]) -> Result<()> {
        let signature = crate::keys::task_key().sign(payload);
        self.publish_with_signature(exchange, routing_key, payload, Some(&signature))
    }

    /// Publishes with the given signature header (or none), as a stranger on the broker could.
    pub fn publish_with_signature(&self, exchange: &str, routing_key: &str, payload: &[u8], signature: Option<&str>) -> Result<()> {
        let mut headers = lapin::types::FieldTable::default();
        if let Some(s) = signature {
            headers.insert(farm_contract::signature::HEADER_SIGNATURE.into(), lapin::types::AMQPValue::LongString(s.into()));
        }
        self.rt.block_on(async {
            let confirm = self
                .channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    payload,
                    BasicProperties::default().with_delivery_mode(2).with_headers(headers),
                )
                .await?
                .await?;
            if !confirm.is_ack() || confirm.take_message().is_some() {
                bail!("publish to {exchange}/{routing_key} not confirmed or not routed");
            }
            Ok(())
        })
    }

    /// Ready messages in a queue (it must exist). A passive declare of a missing queue
    /// closes its channel, so each look uses a channel of its own.
    pub fn depth(&self, queue: &str) -> Result<u32> {
        self.rt.block_on(async {
            let channel = self.conn.create_channel().await?;
            let q = channel
                .queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
                .await?;
            let _ = channel.close(200, "done".into()).await;
            Ok(q.message_count())
        })
    }

    /// Publishes once the exchange routes to a queue: a worker declares a queue before it
    /// binds it, so a queue that exists may not take messages yet. A mandatory message that
    /// no queue took comes back and is not queued, so trying again is safe.
    pub fn publish_when_routed(&self, exchange: &str, routing_key: &str, payload: &[u8], signature: Option<&str>) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            match self.publish_with_signature(exchange, routing_key, payload, signature) {
                Err(e) if e.to_string().contains("not routed") && start.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Takes every message of `queue`, returning their headers as text.
    pub fn take_all_headers(&self, queue: &str) -> Vec<String> {
        std::iter::from_fn(|| self.take(queue).unwrap().map(|(_, headers)| headers)).collect()
    }

    /// Takes one message (acknowledged) with its headers rendered as text.
    pub fn take(&self, queue: &str) -> Result<Option<(Vec<u8>, String)>> {
        self.rt.block_on(async {
            let Some(m) = self.channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await? else {
                return Ok(None);
            };
            let headers = m
                .delivery
                .properties
                .headers()
                .as_ref()
                .map(|t| {
                    t.inner()
                        .iter()
                        .map(|(k, v)| match v {
                            AMQPValue::LongString(s) => format!("{k}={}", String::from_utf8_lossy(s.as_bytes())),
                            other => format!("{k}={other:?}"),
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            Ok(Some((m.delivery.data.clone(), headers)))
        })
    }

    pub fn delete_queues(&self, queues: &[String]) {
        self.rt.block_on(async {
            for q in queues {
                let _ = self.channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
            }
        });
    }

    /// Removes the queues a farm with this prefix declared.
    pub fn delete_farm_queues(&self, prefix: &str) {
        let t = farm_queue::Topology::new(prefix);
        let p = farm_contract::task::Priority::High;
        let n = farm_contract::task::Priority::Normal;
        self.delete_queues(&[t.queue(p), t.queue(n), t.dead_queue(), format!("{prefix}.coordinator.events"), format!("{prefix}.coordinator.dead")]);
    }

    /// Waits until `ok()` holds, up to `limit`.
    pub fn wait_for(&self, limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }
}
