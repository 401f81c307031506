//! Publishing with publisher confirms, and dead-lettering with the reason in the headers.
//!
//! One helper for every message the farm sends (tasks, events, answers, dead letters): persistent,
//! and not taken as sent until the broker confirmed it.

use farm_contract::task::{HEADER_ERROR, HEADER_JOB, HEADER_PRINCIPAL};
use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, LongString};
use lapin::{BasicProperties, Channel};

use crate::topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot publish to the broker")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not accept the message for {exchange} ({routing_key})")]
    Refused { exchange: String, routing_key: String },
}

/// Publishes a persistent message and waits for the broker's confirm. With `mandatory`,
/// a message no queue took (returned by the broker) counts as refused too.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions { mandatory, ..Default::default() },
            payload,
            properties.with_delivery_mode(2),
        )
        .await?
        .await?;
    if confirm.is_ack() && confirm.take_message().is_none() {
        Ok(())
    } else {
        Err(PublishError::Refused { exchange: exchange.into(), routing_key: routing_key.into() })
    }
}

/// Copies a task message to the dead-letter exchange with the reason in its headers.
pub async fn dead_letter(channel: &Channel, topology: &Topology, delivery: &Delivery, reason: &str, job: &str) -> Result<(), PublishError> {
    copy_with_headers(channel, &topology.dead_exchange(), delivery, &[(HEADER_ERROR, reason), (HEADER_JOB, job)]).await
}

/// Copies a refused job request to the job requests' dead-letter exchange with the reason
/// and the principal that sent it (its `user_id` cannot be kept: the broker accepts a
/// `user_id` only from that user's own connection).
pub async fn dead_letter_request(channel: &Channel, topology: &Topology, delivery: &Delivery, reason: &str, principal: &str) -> Result<(), PublishError> {
    copy_with_headers(channel, &topology.jobs_dead_exchange(), delivery, &[(HEADER_ERROR, reason), (HEADER_PRINCIPAL, principal)]).await
}

/// Publishes a copy of `delivery` (body, headers, content type, correlation id, reply-to,
/// message id) to `exchange`, with `extra` headers.
async fn copy_with_headers(channel: &Channel, exchange: &str, delivery: &Delivery, extra: &[(&str, &str)]) -> Result<(), PublishError> {
    let original = &delivery.properties;
    let mut headers = original.headers().clone().unwrap_or_default();
    for (name, value) in extra {
        headers.insert((*name).into(), AMQPValue::LongString(LongString::from(*value)));
    }
    let mut properties = BasicProperties::default().with_headers(headers);
    if let Some(v) = original.content_type() {
        properties = properties.with_content_type(v.clone());
    }
    if let Some(v) = original.correlation_id() {
        properties = properties.with_correlation_id(v.clone());
    }
    if let Some(v) = original.reply_to() {
        properties = properties.with_reply_to(v.clone());
    }
    if let Some(v) = original.message_id() {
        properties = properties.with_message_id(v.clone());
    }
    publish_confirmed(channel, exchange, "", false, &delivery.data, properties).await
}
