//! Publishing with publisher confirms, and dead-lettering with the reason in the headers.
//!
//! One helper for every message the farm sends (tasks, events, dead letters): persistent,
//! and not taken as sent until the broker confirmed it.

use farm_contract::task::{HEADER_ERROR, HEADER_JOB};
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
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(HEADER_ERROR.into(), AMQPValue::LongString(LongString::from(reason)));
    headers.insert(HEADER_JOB.into(), AMQPValue::LongString(LongString::from(job)));
    let properties = BasicProperties::default().with_headers(headers);
    publish_confirmed(channel, &topology.dead_exchange(), "", false, &delivery.data, properties).await
}

