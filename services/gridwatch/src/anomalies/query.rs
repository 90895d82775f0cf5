//! Reading anomalies (CONTRACT.md section 4): the auditors' filters, the two orders (newest
//! first; the investigators' work queue by expected value at stake), keyset cursors, and one
//! anomaly with its history.
//!
//! Pages never use offsets. Newest first is keyed on (detected_at, anomaly_key), which never
//! change once an anomaly exists, so anomalies raised while a client pages arrive before its
//! cursor and nothing is skipped or repeated. The work queue is keyed on
//! (loss_kzt x confidence, anomaly_key): new anomalies do not disturb it either, but an
//! anomaly that grows between two pages may move ahead of the cursor (a queue reflects the
//! money at stake now, not when paging began).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use gridwatch_core::anomaly::{Kind, Severity, Status};
use gridwatch_core::ids::check_identifier;

/// The kinds of CONTRACT.md section 4.
pub const KINDS: &[&str] = Kind::NAMES;

/// The statuses, in life-cycle order.
pub const STATUSES: &[&str] = Status::NAMES;

/// The severities, least first.
pub const SEVERITIES: &[&str] = Severity::NAMES;

/// The query parameters a list understands.
pub const PARAMETERS: &[&str] = &[
    "kind", "region", "node", "meter", "licence", "suspect", "status", "severity", "from", "to",
    "sort", "limit", "cursor",
];

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Newest detection first (the contract's order).
    Newest,
    /// The work queue: expected tenge at stake (loss_kzt x confidence), highest first.
    Priority,
}

/// Which anomalies a list holds. Every field is a conjunction; a list field matches any of
/// its values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Kinds.
    pub kinds: Option<Vec<String>>,
    /// Region id.
    pub region: Option<String>,
    /// Node id.
    pub node: Option<String>,
    /// Meter id (the anomaly's own meter).
    pub meter: Option<String>,
    /// Licence id.
    pub licence: Option<String>,
    /// A meter among the suspects.
    pub suspect: Option<String>,
    /// Statuses.
    pub statuses: Option<Vec<String>>,
    /// Severities.
    pub severities: Option<Vec<String>>,
    /// The anomaly's period [started_at, ended_at or now] ends at or after this.
    pub from: Option<DateTime<Utc>>,
    /// The anomaly's period starts at or before this.
    pub to: Option<DateTime<Utc>>,
}

/// Where the previous page ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    /// In newest-first order.
    Newest {
        /// The last item's detected_at.
        detected_at: DateTime<Utc>,
        /// Its anomaly_key.
        key: i64,
    },
    /// In work-queue order.
    Priority {
        /// The last item's loss_kzt x confidence.
        value: f64,
        /// Its anomaly_key.
        key: i64,
    },
}

impl Position {
    /// The opaque cursor of this position.
    pub fn encode(self) -> String {
        let text = match self {
            Position::Newest { detected_at, key } => {
                format!("n1:{}:{key}", detected_at.timestamp_micros())
            }
            Position::Priority { value, key } => format!("p1:{value:?}:{key}"),
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Decodes a cursor made by [`Position::encode`].
    pub fn decode(cursor: &str) -> Option<Position> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let mut parts = text.splitn(3, ':');
        let (tag, value, key) = (parts.next()?, parts.next()?, parts.next()?);
        let key: i64 = key.parse().ok()?;
        match tag {
            "n1" => Some(Position::Newest {
                detected_at: DateTime::from_timestamp_micros(value.parse().ok()?)?,
                key,
            }),
            "p1" => Some(Position::Priority {
                value: value.parse().ok()?,
                key,
            }),
            _ => None,
        }
    }

    fn sort(self) -> Sort {
        match self {
            Position::Newest { .. } => Sort::Newest,
            Position::Priority { .. } => Sort::Priority,
        }
    }
}

/// One page's request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Which anomalies.
    pub filter: Filter,
    /// In which order.
    pub sort: Sort,
    /// How many at most.
    pub limit: i64,
    /// After which position.
    pub after: Option<Position>,
}

/// The limits of a list: its default and largest page.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Items when `limit` is not given.
    pub default: i64,
    /// The largest `limit`.
    pub max: i64,
}

/// The JSON list's limits (CONTRACT.md section 4).
pub const PAGE_LIMITS: Limits = Limits {
    default: 100,
    max: 1000,
};

/// A refused query: HTTP 422 with this code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    /// `invalid_filter`, `invalid_limit`, `invalid_cursor`.
    pub code: &'static str,
    /// What is wrong, naming the parameter.
    pub message: String,
}

fn invalid(code: &'static str, message: String) -> QueryError {
    QueryError { code, message }
}

fn one_of(name: &str, value: &str, known: &[&str]) -> Result<Vec<String>, QueryError> {
    value
        .split(',')
        .map(str::trim)
        .map(|v| {
            if known.contains(&v) {
                Ok(v.to_owned())
            } else {
                Err(invalid(
                    "invalid_filter",
                    format!("{name} {v:?} is not one of {}", known.join(", ")),
                ))
            }
        })
        .collect()
}

fn identifier(name: &str, value: &str) -> Result<String, QueryError> {
    check_identifier(value)
        .map(|()| value.to_owned())
        .map_err(|e| {
            invalid(
                "invalid_filter",
                format!("{name} {value:?} is not an identifier: {e}"),
            )
        })
}

fn time(name: &str, value: &str) -> Result<DateTime<Utc>, QueryError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            invalid(
                "invalid_filter",
                format!("{name} {value:?} must be an RFC 3339 time with a zone, such as 2025-10-01T00:00:00Z: {e}"),
            )
        })
}

impl ListQuery {
    /// Parses the query string's pairs. Empty values count as absent; unknown or repeated
    /// parameters are refused (a misspelt filter would otherwise silently return everything).
    pub fn parse(pairs: &[(String, String)], limits: Limits) -> Result<ListQuery, QueryError> {
        let mut seen: Vec<&str> = Vec::new();
        let mut filter = Filter::default();
        let (mut sort, mut limit, mut cursor) = (Sort::Newest, limits.default, None);
        for (name, value) in pairs {
            let Some(known) = PARAMETERS.iter().find(|p| **p == name.as_str()) else {
                return Err(invalid(
                    "invalid_filter",
                    format!(
                        "unknown parameter {name:?}; known: {}",
                        PARAMETERS.join(", ")
                    ),
                ));
            };
            if seen.contains(known) {
                return Err(invalid(
                    "invalid_filter",
                    format!("parameter {name} is given twice"),
                ));
            }
            seen.push(known);
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match *known {
                "kind" => filter.kinds = Some(one_of("kind", value, KINDS)?),
                "status" => filter.statuses = Some(one_of("status", value, STATUSES)?),
                "severity" => filter.severities = Some(one_of("severity", value, SEVERITIES)?),
                "region" => filter.region = Some(identifier("region", value)?),
                "node" => filter.node = Some(identifier("node", value)?),
                "meter" => filter.meter = Some(identifier("meter", value)?),
                "licence" => filter.licence = Some(identifier("licence", value)?),
                "suspect" => filter.suspect = Some(identifier("suspect", value)?),
                "from" => filter.from = Some(time("from", value)?),
                "to" => filter.to = Some(time("to", value)?),
                "sort" => {
                    sort = match value {
                        "newest" => Sort::Newest,
                        "priority" => Sort::Priority,
                        _ => {
                            return Err(invalid(
                                "invalid_filter",
                                format!("sort {value:?} is not one of newest, priority"),
                            ))
                        }
                    }
                }
                "limit" => {
                    limit = value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (1..=limits.max).contains(n))
                        .ok_or_else(|| {
                            invalid(
                                "invalid_limit",
                                format!(
                                    "limit {value:?} must be a whole number from 1 to {}",
                                    limits.max
                                ),
                            )
                        })?
                }
                _ => cursor = Some(value),
            }
        }
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if from > to {
                return Err(invalid(
                    "invalid_filter",
                    "from is later than to".to_owned(),
                ));
            }
        }
        let after = match cursor {
            None => None,
            Some(text) => {
                let position = Position::decode(text)
                    .filter(|p| p.sort() == sort)
                    .ok_or_else(|| {
                        invalid(
                            "invalid_cursor",
                            "cursor is not one this API returned for this sort order".to_owned(),
                        )
                    })?;
                Some(position)
            }
        };
        Ok(ListQuery {
            filter,
            sort,
            limit,
            after,
        })
    }
}

/// An anomaly as the API returns it: the contract's fields, then gridwatch's own.
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    /// `an_` and a ULID-like id.
    pub id: String,
    /// What kind of condition.
    pub kind: String,
    /// Region id.
    pub region: Option<String>,
    /// Node id.
    pub node: Option<String>,
    /// Meter id.
    pub meter: Option<String>,
    /// Licence id.
    pub licence: Option<String>,
    /// When the condition started (event time).
    pub started_at: DateTime<Utc>,
    /// When it stopped; `null` while it lasts.
    pub ended_at: Option<DateTime<Utc>>,
    /// When gridwatch raised it.
    pub detected_at: DateTime<Utc>,
    /// Estimated stolen, unpaid or unaccounted energy.
    pub energy_wh: i64,
    /// `energy_wh` x the region's tariff.
    pub loss_kzt: f64,
    /// The detector's test statistic.
    pub score: f64,
    /// `info` to `critical`.
    pub severity: String,
    /// Its life-cycle status.
    pub status: String,
    /// Meters suspected, most likely first.
    pub suspects: Vec<String>,
    /// What the detector recorded to prove it.
    pub evidence: serde_json::Value,
    /// Probability-like weight in [0, 1] that the flag is right.
    pub confidence: f64,
    /// Expected tenge at stake: `loss_kzt` x `confidence` (the work queue's order).
    pub priority_kzt: f64,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
    /// The row's key (cursor positions).
    #[serde(skip)]
    pub key: i64,
}

const COLUMNS: &str = "a.anomaly_key, a.id, a.kind, a.region, a.node, a.meter, a.licence,
    a.started_at, a.ended_at, a.detected_at, a.energy_wh, a.loss_kzt, a.score, a.severity,
    a.status, a.suspects, a.evidence, a.confidence, a.loss_kzt * a.confidence, a.updated_at";

fn anomaly(row: &Row) -> Anomaly {
    Anomaly {
        key: row.get(0),
        id: row.get(1),
        kind: row.get(2),
        region: row.get(3),
        node: row.get(4),
        meter: row.get(5),
        licence: row.get(6),
        started_at: row.get(7),
        ended_at: row.get(8),
        detected_at: row.get(9),
        energy_wh: row.get(10),
        loss_kzt: row.get(11),
        score: row.get(12),
        severity: row.get(13),
        status: row.get(14),
        suspects: row.get(15),
        evidence: row.get(16),
        confidence: row.get(17),
        priority_kzt: row.get(18),
        updated_at: row.get(19),
    }
}

/// One page of anomalies.
#[derive(Debug, Clone)]
pub struct Page {
    /// The anomalies, in the query's order.
    pub items: Vec<Anomaly>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Position>,
}

/// The page `query` asks for.
pub async fn list(
    client: &impl GenericClient,
    query: &ListQuery,
) -> Result<Page, tokio_postgres::Error> {
    let f = &query.filter;
    let (order, keyset) = match query.sort {
        Sort::Newest => (
            "a.detected_at DESC, a.anomaly_key DESC",
            "($11::timestamptz IS NULL OR (a.detected_at, a.anomaly_key) < ($11, $12::bigint))",
        ),
        Sort::Priority => (
            "a.loss_kzt * a.confidence DESC, a.anomaly_key DESC",
            "($11::float8 IS NULL OR (a.loss_kzt * a.confidence, a.anomaly_key) < ($11, $12::bigint))",
        ),
    };
    // An ongoing anomaly's period runs to now (or to its start, for one raised ahead of the
    // wall clock by a replay of future-dated readings).
    let sql = format!(
        "SELECT {COLUMNS} FROM anomalies a
         WHERE ($1::text[] IS NULL OR a.kind = ANY($1))
           AND ($2::text IS NULL OR a.region = $2)
           AND ($3::text IS NULL OR a.node = $3)
           AND ($4::text IS NULL OR a.meter = $4)
           AND ($5::text IS NULL OR a.licence = $5)
           AND ($6::text IS NULL OR $6 = ANY(a.suspects))
           AND ($7::text[] IS NULL OR a.status = ANY($7))
           AND ($8::text[] IS NULL OR a.severity = ANY($8))
           AND ($9::timestamptz IS NULL
                OR coalesce(a.ended_at, greatest(now(), a.started_at)) >= $9)
           AND ($10::timestamptz IS NULL OR a.started_at <= $10)
           AND {keyset}
         ORDER BY {order}
         LIMIT $13"
    );
    let (after_time, after_value, after_key) = match query.after {
        None => (None, None, None),
        Some(Position::Newest { detected_at, key }) => (Some(detected_at), None, Some(key)),
        Some(Position::Priority { value, key }) => (None, Some(value), Some(key)),
    };
    let fetch = query.limit + 1;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &f.kinds,
        &f.region,
        &f.node,
        &f.meter,
        &f.licence,
        &f.suspect,
        &f.statuses,
        &f.severities,
        &f.from,
        &f.to,
    ];
    match query.sort {
        Sort::Newest => params.push(&after_time),
        Sort::Priority => params.push(&after_value),
    }
    params.push(&after_key);
    params.push(&fetch);
    let rows = client.query(&sql, &params).await?;
    let more = rows.len() as i64 > query.limit;
    let items: Vec<Anomaly> = rows
        .iter()
        .take(query.limit as usize)
        .map(anomaly)
        .collect();
    let next = match (more, items.last()) {
        (true, Some(last)) => Some(match query.sort {
            Sort::Newest => Position::Newest {
                detected_at: last.detected_at,
                key: last.key,
            },
            Sort::Priority => Position::Priority {
                value: last.priority_kzt,
                key: last.key,
            },
        }),
        _ => None,
    };
    Ok(Page { items, next })
}

/// The anomaly with this id.
pub async fn get(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<Anomaly>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM anomalies a WHERE a.id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(anomaly))
}

/// One entry of an anomaly's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Its position in the chain of all histories.
    pub seq: i64,
    /// When it was written (the database's clock).
    pub at: DateTime<Utc>,
    /// Who: the token's name, `detector`, `mqtt:market`...
    pub actor: String,
    /// `created`, `updated` or `transition`.
    pub action: String,
    /// The status before (`null` for `created`).
    pub from: Option<String>,
    /// The status after.
    pub to: Option<String>,
    /// Why, as written by the actor.
    pub note: Option<String>,
    /// The entry's hash in the chain (hex), for `gridwatch audit verify --expect-head`.
    pub hash: String,
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The history of anomaly `id`, oldest first.
pub async fn history(
    client: &impl GenericClient,
    id: &str,
) -> Result<Vec<HistoryEntry>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT seq, at, actor, action, from_status, to_status, note, hash
             FROM anomaly_history WHERE anomaly_id = $1 ORDER BY seq",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| HistoryEntry {
            seq: row.get(0),
            at: row.get(1),
            actor: row.get(2),
            action: row.get(3),
            from: row.get(4),
            to: row.get(5),
            note: row.get(6),
            hash: hex(row.get::<_, &[u8]>(7)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    fn parse(query: &str) -> Result<ListQuery, QueryError> {
        ListQuery::parse(&pairs(query), PAGE_LIMITS)
    }

    #[test]
    fn filters_parse_into_values() {
        let q = parse("kind=diversion,data_gap&region=east-kz&status=open&severity=high&from=2025-10-01T00:00:00Z&limit=5&sort=priority&node=")
            .map_err(|e| e.message);
        let q = q.expect("valid");
        assert_eq!(
            q.filter.kinds,
            Some(vec!["diversion".into(), "data_gap".into()])
        );
        assert_eq!(q.filter.region.as_deref(), Some("east-kz"));
        assert_eq!(q.filter.node, None);
        assert_eq!((q.limit, q.sort), (5, Sort::Priority));
        assert_eq!(parse("").expect("empty").limit, 100);
    }

    #[test]
    fn bad_values_are_refused_with_their_code() {
        for (query, code) in [
            ("kind=theft", "invalid_filter"),
            ("status=closed", "invalid_filter"),
            ("severity=urgent", "invalid_filter"),
            ("from=yesterday", "invalid_filter"),
            (
                "from=2025-10-02T00:00:00Z&to=2025-10-01T00:00:00Z",
                "invalid_filter",
            ),
            ("node=a/b", "invalid_filter"),
            ("knd=diversion", "invalid_filter"),
            ("kind=diversion&kind=data_gap", "invalid_filter"),
            ("sort=oldest", "invalid_filter"),
            ("limit=0", "invalid_limit"),
            ("limit=1001", "invalid_limit"),
            ("limit=ten", "invalid_limit"),
            ("cursor=garbage", "invalid_cursor"),
        ] {
            assert_eq!(
                parse(query).map(|_| ()).map_err(|e| e.code),
                Err(code),
                "{query}"
            );
        }
    }

    #[test]
    fn cursors_round_trip_and_belong_to_their_order() {
        let at = DateTime::from_timestamp_micros(1_759_276_800_123_456).expect("time");
        let newest = Position::Newest {
            detected_at: at,
            key: 7,
        };
        assert_eq!(Position::decode(&newest.encode()), Some(newest));
        let priority = Position::Priority {
            value: 515_123.600_000_1,
            key: 9,
        };
        assert_eq!(Position::decode(&priority.encode()), Some(priority));
        let cursor = priority.encode();
        assert!(parse(&format!("sort=priority&cursor={cursor}")).is_ok());
        assert_eq!(
            parse(&format!("cursor={cursor}"))
                .map(|_| ())
                .map_err(|e| e.code),
            Err("invalid_cursor")
        );
    }
}
