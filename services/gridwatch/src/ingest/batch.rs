//! A batch: the messages received since the last one, parsed into readings and rejections.
//!
//! Parsing happens here, as messages arrive, so a batch handed to a writer is pure data: typed
//! readings, typed rejections, and where each came from (for the raw payload of a rejection
//! decided later, such as `conflicting_duplicate` or `unknown_meter`).

use std::ops::Range;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};

use gridwatch_core::reading::{parse_gateway_payload, parse_meter_payload};
use gridwatch_core::topic::TopicError;
use gridwatch_core::{MeterId, ReadingBounds, ReasonCode, Rejection, Topic};

use crate::config::IngestConfig;
use crate::mqtt::session::{AckToken, Delivery};

/// Where a reading or rejection came from within its batch.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Index of the message in [`Batch::messages`].
    pub message: u32,
    /// The element's byte range within a gateway payload; `None` for the whole payload.
    pub span: Option<Range<u32>>,
}

/// One MQTT message of the batch.
#[derive(Debug)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// The meter or gateway its topic names (the "source" of its rejections).
    pub source: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// Its payload, kept for the raw payload of rejections until the batch commits.
    pub payload: Bytes,
    /// How to acknowledge it once the batch is committed.
    pub ack: AckToken,
}

/// A reading ready to store, not yet matched against the registry.
#[derive(Debug, Clone)]
pub struct PendingReading {
    /// The meter it names.
    pub meter_id: MeterId,
    /// Event time.
    pub ts: DateTime<Utc>,
    /// Register value in Wh.
    pub energy_wh: i64,
    /// Instantaneous power in W.
    pub power_w: Option<f32>,
    /// Where it came from.
    pub origin: Origin,
}

/// A rejection decided while parsing.
#[derive(Debug, Clone)]
pub struct PendingRejection {
    /// Why.
    pub rejection: Rejection,
    /// Where it came from.
    pub origin: Origin,
}

/// Parsing limits, from [`IngestConfig`].
#[derive(Debug, Clone)]
pub struct Parser {
    topic_root: String,
    max_payload_bytes: usize,
    max_gateway_elements: usize,
    max_future_skew: Duration,
    max_age: Duration,
}

impl Parser {
    /// The parser for `topic_root` with `config`'s limits.
    pub fn new(topic_root: &str, config: &IngestConfig) -> Parser {
        Parser {
            topic_root: topic_root.to_owned(),
            max_payload_bytes: config.max_payload_bytes,
            max_gateway_elements: config.max_gateway_elements,
            max_future_skew: Duration::seconds(config.max_future_skew_secs),
            max_age: Duration::days(config.max_reading_age_days),
        }
    }

    /// Timestamps accepted at wall time `now`.
    pub fn bounds(&self, now: DateTime<Utc>) -> ReadingBounds {
        ReadingBounds {
            earliest: now - self.max_age,
            latest: now + self.max_future_skew,
        }
    }
}

/// The messages of one batch and what they parsed to.
#[derive(Debug)]
pub struct Batch {
    /// Position in arrival order; acks are released in this order.
    pub seq: u64,
    /// When its first message arrived.
    pub opened_at: Instant,
    /// Its messages, in arrival order.
    pub messages: Vec<Message>,
    /// Readings, in arrival order.
    pub readings: Vec<PendingReading>,
    /// Rejections decided while parsing.
    pub rejections: Vec<PendingRejection>,
}

impl Batch {
    /// An empty batch.
    pub fn new(seq: u64) -> Batch {
        Batch {
            seq,
            opened_at: Instant::now(),
            messages: Vec::new(),
            readings: Vec::new(),
            rejections: Vec::new(),
        }
    }

    /// Readings and rejections so far: what the size limit counts.
    pub fn items(&self) -> usize {
        self.readings.len() + self.rejections.len()
    }

    /// Whether it holds no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The raw bytes an origin points at.
    pub fn raw(&self, origin: &Origin) -> &[u8] {
        let payload = &self.messages[origin.message as usize].payload;
        match &origin.span {
            Some(span) => &payload[span.start as usize..span.end as usize],
            None => payload,
        }
    }

    /// Parses a delivery into this batch.
    pub fn add(&mut self, delivery: Delivery, parser: &Parser) -> TopicKind {
        let index = self.messages.len() as u32;
        let ack = delivery.ack_token();
        let received_at = delivery.received_at;
        let publish = delivery.publish;
        let topic = Topic::parse(&parser.topic_root, &publish.topic);
        let source = match &topic {
            Ok(t) => t.source().to_owned(),
            Err(_) => topic_source(&publish.topic),
        };
        let whole = |rejection: Rejection| PendingRejection {
            rejection,
            origin: Origin {
                message: index,
                span: None,
            },
        };
        let payload = &publish.payload;
        let kind = match &topic {
            Ok(Topic::MeterReadings(_)) => TopicKind::Meter,
            Ok(Topic::GatewayReadings(_)) => TopicKind::Gateway,
            _ => TopicKind::Other,
        };
        if payload.len() > parser.max_payload_bytes {
            self.rejections.push(whole(Rejection::new(
                ReasonCode::PayloadTooLarge,
                format!(
                    "payload is {} bytes, at most {} are accepted",
                    payload.len(),
                    parser.max_payload_bytes
                ),
            )));
        } else {
            let bounds = parser.bounds(received_at);
            match &topic {
                Ok(Topic::MeterReadings(meter)) => {
                    match parse_meter_payload(meter, payload, &bounds) {
                        Ok(r) => self.readings.push(PendingReading {
                            meter_id: r.meter_id,
                            ts: r.ts,
                            energy_wh: r.energy_wh,
                            power_w: r.power_w,
                            origin: Origin {
                                message: index,
                                span: None,
                            },
                        }),
                        Err(rejection) => self.rejections.push(whole(rejection)),
                    }
                }
                Ok(Topic::GatewayReadings(_)) => {
                    match parse_gateway_payload(payload, parser.max_gateway_elements, &bounds) {
                        Ok(elements) => {
                            for element in elements {
                                let origin = Origin {
                                    message: index,
                                    span: Some(element.span.start as u32..element.span.end as u32),
                                };
                                match element.result {
                                    Ok(r) => self.readings.push(PendingReading {
                                        meter_id: r.meter_id,
                                        ts: r.ts,
                                        energy_wh: r.energy_wh,
                                        power_w: r.power_w,
                                        origin,
                                    }),
                                    Err(rejection) => {
                                        self.rejections.push(PendingRejection { rejection, origin })
                                    }
                                }
                            }
                        }
                        Err(rejection) => self.rejections.push(whole(rejection)),
                    }
                }
                Ok(Topic::Purchases) => self.rejections.push(whole(Rejection::new(
                    ReasonCode::InvalidTopic,
                    "purchases are not read by the readings pipeline",
                ))),
                Err(TopicError::BadIdentifier(e)) => self.rejections.push(whole(Rejection::new(
                    ReasonCode::InvalidTopic,
                    format!("topic {:?} names an invalid identifier: {e}", publish.topic),
                ))),
                Err(TopicError::Unknown) => self.rejections.push(whole(Rejection::new(
                    ReasonCode::InvalidTopic,
                    format!(
                        "topic {:?} is not a gridwatch readings topic",
                        publish.topic
                    ),
                ))),
            }
        }
        self.messages.push(Message {
            topic: publish.topic,
            source,
            received_at,
            payload: publish.payload,
            ack,
        });
        kind
    }
}

/// The kind of topic a message came on (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// One meter's topic.
    Meter = 0,
    /// A gateway's topic.
    Gateway = 1,
    /// Anything else.
    Other = 2,
}

impl TopicKind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TopicKind::Meter => "meter",
            TopicKind::Gateway => "gateway",
            TopicKind::Other => "other",
        }
    }
}

/// The source named by a topic that did not parse: its second-to-last level, cut to 64 bytes.
fn topic_source(topic: &str) -> String {
    let level = topic.rsplit('/').nth(1).unwrap_or(topic);
    let mut end = level.len().min(64);
    while !level.is_char_boundary(end) {
        end -= 1;
    }
    level[..end].to_owned()
}
