//! Jobs submitted over AMQP: an ingest pipeline publishes the JSON of `POST /v1/jobs` to
//! `{prefix}.jobs` with routing key `submit`, an `idempotency_key` in it and its broker
//! user in the message's `user_id` (RabbitMQ checks that it is the publishing
//! connection's user), which names its principal in the principals file.
//!
//! Each request is accepted exactly as the HTTP API accepts one ([`crate::api::submit`])
//! and acknowledged only after its job is stored and its tasks confirmed, and after the
//! answer was sent: to `reply_to` when the request names one (with its `correlation_id`),
//! and always on the events exchange (`submission.accepted`, `submission.refused`). A
//! malformed or refused request is dead-lettered to `{prefix}.jobs.dead` with the reason
//! (`x-farm-error`); one that meets an outage is delivered again later, and gives up with
//! the reason after [`GIVE_UP_AFTER`] deliveries. A request delivered again answers the job
//! its idempotency key made: never a second job.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use farm_queue::{dead_letter_request, declare_submissions, publish_confirmed, SUBMIT_DELIVERY_LIMIT};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::access::Caller;
use crate::app::{ApiError, AppState};
use crate::principals::Action;

/// Deliveries of a request that keeps meeting an outage before it is dead-lettered with
/// the outage's reason (the broker would dead-letter it at its own limit, without one).
pub const GIVE_UP_AFTER: u32 = SUBMIT_DELIVERY_LIMIT - 2;
const _: () = assert!(GIVE_UP_AFTER < SUBMIT_DELIVERY_LIMIT, "the coordinator gives up before the broker does");

/// What became of one request.
#[derive(Debug)]
enum Outcome {
    /// 201: a new job; 200: the job its idempotency key made before.
    Accepted { status: StatusCode, job: serde_json::Value },
    /// Malformed or refused: answered, then dead-lettered with the reason.
    Refused { status: StatusCode, reason: String, principal: String },
    /// An outage (storage, broker, database): delivered again after `wait`.
    Retry { reason: String, wait: Duration },
}

/// Takes job requests until shutdown, reconnecting with backoff (RabbitMQ only).
pub async fn run(app: Arc<AppState>, shutdown: CancellationToken) {
    if app.broker.memory().is_some() || !app.config.amqp_submit {
        return;
    }
    farm_service::retry::reconnecting("job request stream lost", &shutdown, || session(&app, &shutdown)).await;
}

/// One connection's worth of requests, as many at once as sources may be probed at once.
async fn session(app: &AppState, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let topology = &app.broker.topology;
    let conn = Connection::connect(app.broker.url(), ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    declare_submissions(&channel, topology).await?;
    let at_once = app.config.limits.probe_concurrency.clamp(1, 64);
    channel.basic_qos(at_once as u16, BasicQosOptions::default()).await?;
    let queue = topology.submit_queue();
    let mut requests = channel
        .basic_consume(queue.as_str().into(), "coordinator-submit".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    tracing::info!(exchange = %topology.jobs_exchange(), %queue, "taking job requests over AMQP");
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            delivery = requests.next() => {
                let Some(delivery) = delivery else { anyhow::bail!("the broker closed the job request stream") };
                running.push(take(app, &channel, delivery?, shutdown));
            }
            Some(done) = running.next() => done?,
            // Requests in hand are finished (their jobs may be half dispatched); those not
            // started go back to the queue when the connection closes.
            _ = shutdown.cancelled() => {
                while let Some(done) = running.next().await {
                    done?;
                }
                return Ok(());
            }
        }
    }
}

/// One request: handled, answered, then acknowledged (or dead-lettered, or handed back).
async fn take(app: &AppState, channel: &Channel, delivery: Delivery, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let outcome = handle(app, &delivery).await;
    let properties = &delivery.properties;
    let key = serde_json::from_slice::<serde_json::Value>(&delivery.data).ok().and_then(|v| v["idempotency_key"].as_str().map(str::to_string));
    let correlation = properties.correlation_id().as_ref().map(|c| c.to_string());
    let answer = |status: StatusCode, rest: serde_json::Value| {
        let mut body = json!({"status": status.as_u16(), "idempotency_key": key, "correlation_id": correlation});
        body.as_object_mut().expect("an object").extend(rest.as_object().cloned().unwrap_or_default());
        body
    };
    match outcome {
        Outcome::Accepted { status, job } => {
            let body = answer(status, json!({"job_id": job["id"], "job": job}));
            reply(app, channel, &delivery, "submission.accepted", &body).await?;
            app.metrics.submissions.with_label_values(&[if status == StatusCode::CREATED { "accepted" } else { "repeated" }]).inc();
            delivery.ack(BasicAckOptions::default()).await?;
        }
        Outcome::Refused { status, reason, principal } => {
            tracing::warn!(%status, %reason, principal = %principal, "job request refused and dead-lettered");
            let body = answer(status, json!({"error": reason}));
            reply(app, channel, &delivery, "submission.refused", &body).await?;
            dead_letter_request(channel, &app.broker.topology, &delivery, &reason, &principal).await?;
            app.metrics.submissions.with_label_values(&["refused"]).inc();
            delivery.ack(BasicAckOptions::default()).await?;
        }
        Outcome::Retry { reason, wait } => {
            tracing::warn!(%reason, retry_in = ?wait, "job request not accepted yet: it will be delivered again");
            app.metrics.submissions.with_label_values(&["retried"]).inc();
            // Handed back at once on shutdown: another coordinator may take it.
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => {}
            }
            delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
        }
    }
    Ok(())
}

/// The answer on the events exchange, and to the request's `reply_to` when it has one.
async fn reply(app: &AppState, channel: &Channel, delivery: &Delivery, routing_key: &str, body: &serde_json::Value) -> anyhow::Result<()> {
    let payload = serde_json::to_vec(body)?;
    let mut properties = BasicProperties::default().with_content_type("application/json".into());
    if let Some(id) = delivery.properties.correlation_id() {
        properties = properties.with_correlation_id(id.clone());
    }
    publish_confirmed(channel, &app.broker.topology.events_exchange(), routing_key, false, &payload, properties.clone()).await?;
    if let Some(to) = delivery.properties.reply_to() {
        // The default exchange routes by queue name; a reply queue that is gone is the
        // requester's affair (the event above is the record).
        publish_confirmed(channel, "", to.as_str(), false, &payload, properties).await?;
    }
    Ok(())
}

/// Checks and accepts one request, as `POST /v1/jobs` would for the same principal.
async fn handle(app: &AppState, delivery: &Delivery) -> Outcome {
    let user = delivery.properties.user_id().as_ref().map(|u| u.to_string());
    let refused = |status: StatusCode, reason: String| Outcome::Refused { status, reason, principal: user.clone().unwrap_or_else(|| "-".into()) };
    let caller = match principal(app, user.as_deref()) {
        Ok(caller) => caller,
        Err(reason) => {
            deny(app, user.as_deref().unwrap_or("-"), &reason).await;
            return refused(StatusCode::UNAUTHORIZED, reason);
        }
    };
    let request = match crate::accept::parse(Some("application/json"), &delivery.data) {
        Ok(r) if r.idempotency_key.is_none() => {
            return refused(StatusCode::BAD_REQUEST, "idempotency_key is required on job requests sent over AMQP (a request may be delivered twice)".into())
        }
        Ok(r) => r,
        Err(ApiError(status, reason)) => return refused(status, reason),
    };
    match crate::api::submit(app, &caller, request).await {
        Ok((status, view)) => Outcome::Accepted { status, job: serde_json::to_value(view).unwrap_or_default() },
        Err(ApiError(status, reason)) if status.is_server_error() => Outcome::Retry { reason, wait: retry_wait(delivery) },
        Err(ApiError(status, reason)) => {
            app.metrics.jobs_rejected.inc();
            refused(status, reason)
        }
    }
    .give_up_after(deliveries(delivery), user.as_deref())
}

impl Outcome {
    /// An outage on the last deliveries the broker allows: refused with its reason.
    fn give_up_after(self, deliveries: u32, user: Option<&str>) -> Self {
        match self {
            Outcome::Retry { reason, .. } if deliveries >= GIVE_UP_AFTER => Outcome::Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: format!("{reason} (given up after {deliveries} deliveries)"),
                principal: user.unwrap_or("-").into(),
            },
            other => other,
        }
    }
}

/// The caller a request's `user_id` names: the principal of that name, if the principals
/// file has one whose role may submit jobs. The distributed farm always has principals.
fn principal(app: &AppState, user: Option<&str>) -> Result<Caller, String> {
    let Some(user) = user else {
        return Err("the request has no user_id: publish it with the user_id property set to your broker user, which names your principal".into());
    };
    let Some(principal) = app.principals.named(user) else {
        return Err(format!("no principal is named {user:?} (the request's user_id): add one to the principals file"));
    };
    if !principal.role.may(Action::SubmitJob) {
        return Err(format!("the {} role may not submit jobs", principal.role.as_str()));
    }
    Ok(Caller { name: principal.name, role: principal.role, address: "amqp".into() })
}

async fn deny(app: &AppState, principal: &str, reason: &str) {
    let caller = Caller { name: principal.into(), role: crate::principals::Role::Ingest, address: "amqp".into() };
    let event = caller.event("request.denied", None, format!("AMQP job request: {reason}"));
    crate::audit::record(&app.store, event).await;
}

/// Deliveries of this message so far, the broker's count of earlier ones (quorum queues
/// set `x-delivery-count` on a redelivery) plus this one.
fn deliveries(delivery: &Delivery) -> u32 {
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    let earlier = match headers.inner().get("x-delivery-count") {
        Some(AMQPValue::LongLongInt(n)) => *n as u32,
        Some(AMQPValue::LongInt(n)) => *n as u32,
        Some(AMQPValue::ShortInt(n)) => *n as u32,
        Some(AMQPValue::LongUInt(n)) => *n,
        _ => 0,
    };
    earlier + 1
}

/// The wait before handing a request back after an outage: doubling from 1 s, at most 30 s.
fn retry_wait(delivery: &Delivery) -> Duration {
    Duration::from_secs(1u64 << deliveries(delivery).saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_on_the_last_deliveries_is_refused_with_its_reason() {
        let retry = || Outcome::Retry { reason: "storage unavailable".into(), wait: Duration::from_secs(1) };
        assert!(matches!(retry().give_up_after(1, Some("ingest")), Outcome::Retry { .. }));
        assert!(matches!(retry().give_up_after(GIVE_UP_AFTER - 1, None), Outcome::Retry { .. }));
        match retry().give_up_after(GIVE_UP_AFTER, Some("ingest")) {
            Outcome::Refused { status, reason, principal } => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                assert!(reason.starts_with("storage unavailable (given up after"), "{reason}");
                assert_eq!(principal, "ingest");
            }
            other => panic!("{other:?}"),
        }
    }
}
