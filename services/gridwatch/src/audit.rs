//! `gridwatch audit verify`: proves that no entry of the anomaly history was altered, inserted
//! or removed since it was written (CONTRACT.md section 4), or names the first that was.
//!
//! Each entry's hash is `sha256(prev_hash || payload)`, where the payload is the text
//! `gridwatch_history_payload(...)` makes of the entry (migration 2). Verification asks
//! PostgreSQL for that text row by row, so the canonical form is the database's own, and
//! recomputes the hash here. It walks the chain in `seq` order, in one read-only snapshot:
//!
//! - an entry whose content (or position: `seq` is hashed) no longer matches its hash was
//!   altered, reordered or forged;
//! - an entry whose `prev_hash` is not the previous entry's hash follows a removal, an
//!   insertion, or an entry rewritten together with its hash; which one is told apart by the
//!   hash it does link to and by gaps in `seq` (gaps alone are normal: a rolled-back
//!   transaction consumes a number);
//! - every anomaly's row must equal the snapshot of its last history entry, so that a status
//!   or an amount changed by direct SQL, or a deleted anomaly, shows.
//!
//! What a chain cannot show by itself: a chain recomputed wholesale from some entry on, or cut
//! short at its end, is consistent again. `--expect-head` closes that gap: given a head hash
//! recorded outside the database earlier, the chain must still contain it.

use std::fmt;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, IsolationLevel};

use crate::anomalies::query::hex;
use crate::anomalies::store::ANOMALY_JSON;
use crate::config::Config;

/// The text whose hash is the first entry's `prev_hash`.
pub const GENESIS: &[u8] = b"gridwatch anomaly history";

/// Entries read per query.
const BATCH: i64 = 5000;

/// Most anomaly rows reported as differing from their history.
const MAX_ROW_FINDINGS: i64 = 20;

/// `gridwatch audit verify`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// A head hash printed by an earlier run (64 hex digits), kept outside the database: the
    /// chain must still contain it, which also catches a chain recomputed or cut short since.
    #[arg(long, value_name = "HEX")]
    pub expect_head: Option<String>,
}

/// How the chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The entry no longer matches its hash: altered, moved to another `seq`, or forged.
    Altered,
    /// Entries before this one are missing: it links to a hash no remaining entry has.
    Removed,
    /// The entry was inserted: the next entry still links to the one before it.
    Inserted,
    /// The entry was rewritten together with its hash: the next entry does not link to it.
    Rewritten,
}

/// An entry, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    /// Its sequence number.
    pub seq: i64,
    /// The anomaly it belongs to.
    pub anomaly_id: String,
    /// `created`, `updated`, `transition`.
    pub action: String,
    /// When it says it was written.
    pub at: DateTime<Utc>,
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry seq {} (anomaly {}, {}, written {})",
            self.seq,
            self.anomaly_id,
            self.action,
            self.at.to_rfc3339_opts(SecondsFormat::Micros, true)
        )
    }
}

/// The first break of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// What happened.
    pub kind: BreakKind,
    /// The entry named (for `Removed`, the first entry after the gap).
    pub entry: EntryRef,
    /// The last entry verified before it, if any.
    pub after: Option<i64>,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.entry.seq;
        match (self.kind, self.after) {
            (BreakKind::Altered, _) => write!(
                f,
                "{} was ALTERED: its content no longer matches its hash (changed after it was \
                 written, moved from another position, or forged)",
                self.entry
            ),
            (BreakKind::Removed, None) => write!(
                f,
                "entries before {} were REMOVED: it does not link to the start of the chain",
                self.entry
            ),
            (BreakKind::Removed, Some(after)) if after + 2 == seq => write!(
                f,
                "entry seq {} was REMOVED: {} does not link to entry seq {after}, the one \
                 before it",
                after + 1,
                self.entry
            ),
            (BreakKind::Removed, Some(after)) => write!(
                f,
                "entries between seq {after} and seq {seq} were REMOVED (or seq {after} was \
                 rewritten): {} does not link to entry seq {after}",
                self.entry
            ),
            (BreakKind::Inserted, _) => write!(
                f,
                "{} was INSERTED: the entry after it still links to the entry before it",
                self.entry
            ),
            (BreakKind::Rewritten, _) => write!(
                f,
                "{} was REWRITTEN together with its hash: the entry after it does not link to it",
                self.entry
            ),
        }
    }
}

/// An anomaly whose row does not agree with its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFinding {
    /// The anomaly.
    pub anomaly_id: String,
    /// What is wrong, in words.
    pub problem: String,
}

/// What `--expect-head` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedHead {
    /// The recorded head is this entry; `appended` entries were written after it.
    Found {
        /// Its sequence number.
        seq: i64,
        /// Entries after it.
        appended: u64,
    },
    /// No entry of the chain has the recorded hash.
    Missing {
        /// The hash looked for, hex.
        hash: String,
    },
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries verified (up to the first break).
    pub entries: u64,
    /// The last verified entry and its hash, hex.
    pub head: Option<(EntryRef, String)>,
    /// The first break of the chain.
    pub first_break: Option<Break>,
    /// Anomalies whose row was compared with their last history entry.
    pub anomalies_checked: i64,
    /// Anomalies whose row disagrees with their history (at most 20).
    pub row_findings: Vec<RowFinding>,
    /// The outcome of `--expect-head`.
    pub expected_head: Option<ExpectedHead>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
            && self.row_findings.is_empty()
            && !matches!(self.expected_head, Some(ExpectedHead::Missing { .. }))
    }
}

/// Parses `--expect-head`.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Verifies the chain and the anomaly rows, in one read-only snapshot.
pub async fn verify(
    client: &mut Client,
    expect_head: Option<[u8; 32]>,
) -> Result<Report, tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut expected_prev: Vec<u8> = Sha256::digest(GENESIS).to_vec();
    // The hash the entry before the previous one had: tells an insertion from a removal.
    let mut before_previous: Option<Vec<u8>> = None;
    let mut previous: Option<EntryRef> = None;
    let mut entries = 0u64;
    let mut first_break = None;
    let mut found_head: Option<(i64, u64)> = None;
    let mut last_seq = i64::MIN;
    'walk: loop {
        let rows = tx
            .query(
                "SELECT seq, anomaly_id, action, at, prev_hash, hash,
                        gridwatch_history_payload(seq, anomaly_id, at, actor, action,
                                                  from_status, to_status, note, snapshot)
                 FROM anomaly_history WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&last_seq, &BATCH],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let entry = EntryRef {
                seq: row.get(0),
                anomaly_id: row.get(1),
                action: row.get(2),
                at: row.get(3),
            };
            last_seq = entry.seq;
            let prev_hash: &[u8] = row.get(4);
            let hash: &[u8] = row.get(5);
            let payload: &str = row.get(6);
            let mut hasher = Sha256::new();
            hasher.update(prev_hash);
            hasher.update(payload.as_bytes());
            if hasher.finalize().as_slice() != hash {
                first_break = Some(Break {
                    kind: BreakKind::Altered,
                    after: previous.as_ref().map(|p| p.seq),
                    entry,
                });
                break 'walk;
            }
            if prev_hash != expected_prev.as_slice() {
                let gap = previous.as_ref().is_some_and(|p| p.seq + 1 < entry.seq);
                let after = previous.as_ref().map(|p| p.seq);
                first_break = Some(match previous.take() {
                    Some(inserted) if before_previous.as_deref() == Some(prev_hash) => Break {
                        kind: BreakKind::Inserted,
                        after: None,
                        entry: inserted,
                    },
                    Some(rewritten) if !gap => Break {
                        kind: BreakKind::Rewritten,
                        after: None,
                        entry: rewritten,
                    },
                    _ => Break {
                        kind: BreakKind::Removed,
                        after,
                        entry,
                    },
                });
                break 'walk;
            }
            entries += 1;
            if let Some((_, appended)) = found_head.as_mut() {
                *appended += 1;
            } else if expect_head.is_some_and(|h| h.as_slice() == hash) {
                found_head = Some((entry.seq, 0));
            }
            before_previous = Some(std::mem::replace(&mut expected_prev, hash.to_vec()));
            previous = Some(entry);
        }
    }
    let head = match (&first_break, previous) {
        (None, Some(entry)) => Some((entry, hex(&expected_prev))),
        _ => None,
    };
    let (anomalies_checked, row_findings) = check_rows(&tx).await?;
    tx.commit().await?;
    let expected_head = expect_head.map(|hash| match found_head {
        Some((seq, appended)) => ExpectedHead::Found { seq, appended },
        None => ExpectedHead::Missing { hash: hex(&hash) },
    });
    Ok(Report {
        entries,
        head,
        first_break,
        anomalies_checked,
        row_findings,
        expected_head,
    })
}

/// Compares every anomaly's row with the snapshot of its last history entry.
async fn check_rows(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<(i64, Vec<RowFinding>), tokio_postgres::Error> {
    let checked: i64 = tx
        .query_one("SELECT count(*) FROM anomalies", &[])
        .await?
        .get(0);
    let rows = tx
        .query(
            &format!(
                "WITH last AS (
                     SELECT DISTINCT ON (anomaly_id) anomaly_id, seq, snapshot
                     FROM anomaly_history ORDER BY anomaly_id, seq DESC)
                 SELECT coalesce(a.id, l.anomaly_id), l.seq,
                        CASE WHEN a.id IS NULL THEN NULL ELSE {ANOMALY_JSON} END, l.snapshot
                 FROM anomalies a FULL JOIN last l ON l.anomaly_id = a.id
                 WHERE a.id IS NULL OR l.anomaly_id IS NULL OR {ANOMALY_JSON} IS DISTINCT FROM l.snapshot
                 ORDER BY 1 LIMIT $1"
            ),
            &[&MAX_ROW_FINDINGS],
        )
        .await?;
    let findings = rows
        .iter()
        .map(|row| {
            let anomaly_id: String = row.get(0);
            let seq: Option<i64> = row.get(1);
            let current: Option<serde_json::Value> = row.get(2);
            let snapshot: Option<serde_json::Value> = row.get(3);
            let problem = match (current, snapshot, seq) {
                (None, _, Some(seq)) => format!(
                    "its row was DELETED: the history (last entry seq {seq}) has it, the anomalies table does not"
                ),
                (Some(_), None, _) => {
                    "it has NO HISTORY: it was written without going through gridwatch".to_owned()
                }
                (Some(current), Some(snapshot), seq) => {
                    let changed: Vec<String> = current
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, v)| snapshot.get(k.as_str()) != Some(*v))
                        .map(|(k, v)| {
                            format!("{k} is {v} but the history says {}", snapshot.get(k.as_str()).unwrap_or(&serde_json::Value::Null))
                        })
                        .collect();
                    format!(
                        "its row was CHANGED outside its history (last entry seq {}): {}",
                        seq.unwrap_or_default(),
                        changed.join("; ")
                    )
                }
                (None, _, None) => "it is neither in the table nor in the history".to_owned(),
            };
            RowFinding {
                anomaly_id,
                problem,
            }
        })
        .collect();
    Ok((checked, findings))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_intact() {
            writeln!(f, "The anomaly history is intact.")?;
        } else {
            writeln!(f, "TAMPERING DETECTED in the anomaly history.")?;
        }
        if let Some(first) = &self.first_break {
            writeln!(f, "  First broken entry: {first}.")?;
            writeln!(f, "  Entries verified before it: {}.", self.entries)?;
        } else {
            writeln!(f, "  Entries verified: {}.", self.entries)?;
        }
        if let Some((entry, hash)) = &self.head {
            writeln!(f, "  Head: {entry}.")?;
            writeln!(f, "  Head hash: {hash}")?;
        }
        match &self.expected_head {
            Some(ExpectedHead::Found { seq, appended }) => writeln!(
                f,
                "  The recorded head is entry seq {seq}: nothing up to it changed; {appended} \
                 entries were written after it."
            )?,
            Some(ExpectedHead::Missing { hash }) => writeln!(
                f,
                "  The recorded head {hash} is NOT in the chain: entries up to it were \
                 rewritten, the chain was recomputed or cut short, or the hash belongs to \
                 another database."
            )?,
            None => {}
        }
        writeln!(
            f,
            "  Anomalies compared with their last history entry: {}; disagreeing: {}.",
            self.anomalies_checked,
            self.row_findings.len()
        )?;
        for finding in &self.row_findings {
            writeln!(f, "    anomaly {}: {}", finding.anomaly_id, finding.problem)?;
        }
        if self.is_intact() {
            if let Some((_, hash)) = &self.head {
                writeln!(
                    f,
                    "\nRecord the head hash where this database's administrators cannot change it \
                     (a ticket, an e-mail to the audit committee, a signed report). Later,\n  \
                     gridwatch audit verify --expect-head {hash}\nproves that no entry up to it \
                     was altered or removed, even by someone who recomputed the chain."
                )?;
            }
        } else {
            writeln!(
                f,
                "\nDo not repair anything. Keep a copy of the database as it is now \
                 (pg_dump -Fc), compare the entries named above with the last backup that \
                 verifies, and report it to the audit committee: someone with direct database \
                 access changed the record."
            )?;
        }
        Ok(())
    }
}

/// `gridwatch audit verify`: prints the report; exit 0 when intact, 1 when tampering was
/// found, 2 for a malformed `--expect-head`.
pub async fn run(args: VerifyArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let expect_head = match args.expect_head.as_deref() {
        None => None,
        Some(text) => match parse_hash(text) {
            Some(hash) => Some(hash),
            None => {
                eprintln!("gridwatch audit verify: --expect-head must be 64 hexadecimal digits (a head hash this command printed)");
                return Ok(ExitCode::from(2));
            }
        },
    };
    // Read only: an audited database (a restored backup, say) is neither created nor migrated.
    let mut client = crate::db::connect(&config.database_url)
        .await
        .map_err(|e| anyhow::anyhow!(crate::db::describe(&e)))
        .context("Failed to connect to the database (check GRIDWATCH_DATABASE_URL)")?;
    let report = verify(&mut client, expect_head)
        .await
        .map_err(|e| anyhow::anyhow!(crate::db::describe(&e)))
        .context("Failed to read the anomaly history")?;
    print!("{report}");
    Ok(if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_hashes_parse_as_64_hex_digits() {
        let hash = "ab".repeat(32);
        assert_eq!(parse_hash(&hash), Some([0xab; 32]));
        assert_eq!(parse_hash(&format!(" {hash}\n")), Some([0xab; 32]));
        assert_eq!(parse_hash(&hash[..62]), None);
        assert_eq!(parse_hash(&"zz".repeat(32)), None);
        assert_eq!(parse_hash(&"é".repeat(32)), None);
    }

    #[test]
    fn breaks_name_their_entry_in_words() {
        let entry = EntryRef {
            seq: 7,
            anomaly_id: "an_1".into(),
            action: "transition".into(),
            at: DateTime::from_timestamp(1_759_276_800, 0).expect("time"),
        };
        let removed = Break {
            kind: BreakKind::Removed,
            entry: entry.clone(),
            after: Some(5),
        };
        assert!(removed.to_string().starts_with("entry seq 6 was REMOVED"));
        let altered = Break {
            kind: BreakKind::Altered,
            entry,
            after: Some(6),
        };
        assert!(altered
            .to_string()
            .starts_with("entry seq 7 (anomaly an_1, transition, written 2025-10-01T00:00:00.000000Z) was ALTERED"));
    }
}
