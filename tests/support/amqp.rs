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
    sweep_leftovers();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let status = Command::new(root.join("scripts/services.sh")).arg("rabbitmq").status().expect("services.sh");
    assert!(status.success(), "could not start RabbitMQ (scripts/services.sh rabbitmq)");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let connect = async {
        let conn = Connection::connect(URL, ConnectionProperties::default()).await.expect("connect to RabbitMQ");
        let channel = conn.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        (conn, channel)
    };
    // A stalled node takes the TCP connection and never answers: fail, do not hang the suite.
    let (conn, channel) = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), connect).await })
        .expect("RabbitMQ took the connection but did not answer within 30 s (see its log, /var/log/rabbitmq)");
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

    /// Publishes a job request as an ingest pipeline does: persistent, mandatory, confirmed,
    /// with `user_id` (the broker refuses one other than the connection's user, guest),
    /// `reply_to` and a correlation id.
    pub fn publish_request(&self, exchange: &str, payload: &[u8], user_id: Option<&str>, reply_to: Option<&str>, correlation_id: &str) -> Result<()> {
        let mut properties = BasicProperties::default().with_delivery_mode(2).with_correlation_id(correlation_id.into());
        if let Some(user) = user_id {
            properties = properties.with_user_id(user.into());
        }
        if let Some(queue) = reply_to {
            properties = properties.with_reply_to(queue.into());
        }
        self.rt.block_on(async {
            let options = BasicPublishOptions { mandatory: true, ..Default::default() };
            let confirm = self.channel.basic_publish(exchange.into(), "submit".into(), options, payload, properties).await?.await?;
            if !confirm.is_ack() || confirm.take_message().is_some() {
                bail!("job request to {exchange} not confirmed or not routed");
            }
            Ok(())
        })
    }

    /// A queue of this connection's own (server-named, gone with the connection), bound to
    /// `exchange` with `key` when given: for answers and events.
    pub fn listen(&self, bind: Option<(&str, &str)>) -> String {
        self.rt.block_on(async {
            let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
            let queue = self.channel.queue_declare("".into(), options, FieldTable::default()).await.expect("declare a reply queue");
            let name = queue.name().to_string();
            if let Some((exchange, key)) = bind {
                self.channel
                    .queue_bind(name.as_str().into(), exchange.into(), key.into(), Default::default(), FieldTable::default())
                    .await
                    .expect("bind the queue");
            }
            name
        })
    }

    /// The next message of `queue`, waiting up to `limit`: its body as JSON and its
    /// headers as text.
    pub fn next_json(&self, queue: &str, limit: Duration) -> Option<(serde_json::Value, String)> {
        let start = Instant::now();
        loop {
            if let Some((body, headers)) = self.take(queue).expect("basic.get") {
                return Some((serde_json::from_slice(&body).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())), headers));
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
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

    /// Unbinds `queue` from `exchange` for `key`: what is published there afterwards no
    /// longer reaches it.
    pub fn unbind(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.rt.block_on(self.channel.queue_unbind(queue.into(), exchange.into(), key.into(), FieldTable::default()))?;
        Ok(())
    }

    /// Removes the queues and exchanges a farm with this prefix declared.
    pub fn delete_farm_queues(&self, prefix: &str) {
        delete_topology(prefix);
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

/// RabbitMQ's management API (scripts/services.sh enables it): AMQP cannot list queues.
const MANAGEMENT: &str = "http://127.0.0.1:15672/api";

/// Whether `queue` is bound to `exchange` (the management API: AMQP cannot ask). A queue
/// is declared before it is bound: a message published in between is not routed.
pub fn is_bound(queue: &str, exchange: &str) -> bool {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let bindings = management_list(&http, management_url("queues", &[queue, "bindings"]));
    bindings.is_ok_and(|b| b.iter().any(|b| b["source"] == exchange))
}

/// `{MANAGEMENT}/{kind}/%2f/{segments...}` (the default vhost), each segment escaped.
fn management_url(kind: &str, segments: &[&str]) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&format!("{MANAGEMENT}/{kind}/%2f")).unwrap();
    url.path_segments_mut().unwrap().extend(segments);
    url
}

/// A management API listing, as the guest user.
fn management_list(http: &reqwest::blocking::Client, url: reqwest::Url) -> reqwest::Result<Vec<serde_json::Value>> {
    http.get(url).basic_auth("guest", Some("guest")).send().and_then(|r| r.error_for_status()).and_then(|r| r.json())
}

/// Deletes the queues and exchanges of the farm with queue prefix `prefix` (`{prefix}.*`).
pub fn delete_topology(prefix: &str) {
    let owned = format!("{prefix}.");
    delete_matching(|name| name.starts_with(&owned));
}

/// Deletes the queues and exchanges that test farms of processes no longer running left
/// behind (a test that panicked before its clean-up, a run that was killed). They add up:
/// a few hundred idle quorum queues stall RabbitMQ 3.10 on a 2-core machine, new
/// connections and the node's restart included. Once per test process.
pub fn sweep_leftovers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| delete_matching(|name| owner_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())));
}

/// The process that declared a test queue or exchange: names are
/// `tests-<label>-<pid>-<nanoseconds>[-<suffix>].<role>` (see `s3::unique_prefix`).
fn owner_pid(name: &str) -> Option<u32> {
    let prefix = name.strip_prefix("tests-")?.split('.').next()?;
    let parts: Vec<&str> = prefix.split('-').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.windows(2).find(|w| numeric(w[0]) && numeric(w[1]) && w[1].len() >= 16).and_then(|w| w[0].parse().ok())
}

fn delete_matching(wanted: impl Fn(&str) -> bool) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    for kind in ["queues", "exchanges"] {
        let mut url = management_url(kind, &[]);
        url.set_query(Some("columns=name"));
        let listed = management_list(&http, url);
        let names = match listed {
            Ok(names) => names,
            Err(e) => {
                eprintln!("warning: could not list RabbitMQ {kind} to clean up: {e}");
                continue;
            }
        };
        for name in names.iter().filter_map(|n| n["name"].as_str()).filter(|n| wanted(n)) {
            if let Err(e) = http.delete(management_url(kind, &[name])).basic_auth("guest", Some("guest")).send().and_then(|r| r.error_for_status()) {
                eprintln!("warning: could not delete RabbitMQ {kind} {name}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test_queue_names_the_process_that_declared_it() {
        assert_eq!(super::owner_pid("tests-access-20172-1796057634744132316.tasks.high"), Some(20172));
        assert_eq!(super::owner_pid("tests-drain-http-20765-1796057837492477189.tasks.normal"), Some(20765));
        assert_eq!(super::owner_pid("tests-limits-20765-1796057923168470935-c.tasks.dead"), Some(20765));
        assert_eq!(super::owner_pid("tests-limits-20765-1796057923168470935-c.tasks"), Some(20765));
        assert_eq!(super::owner_pid("farm.tasks.high"), None);
        assert_eq!(super::owner_pid("tests-by-hand.tasks.high"), None);
    }
}
