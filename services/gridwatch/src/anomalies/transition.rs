//! An anomaly's life cycle (CONTRACT.md section 4): which status changes are allowed, and
//! applying one with its history entry in the same transaction.
//!
//! | from            | to              | note     |
//! |-----------------|-----------------|----------|
//! | `open`          | `investigating` | optional |
//! | `investigating` | `confirmed`     | optional |
//! | `investigating` | `dismissed`     | required |
//! | `investigating` | `open`          | required |
//! | `confirmed`     | `open`          | required |
//! | `dismissed`     | `open`          | required |
//!
//! `withdrawn` is the detector's alone (CONTRACT.md section 4): no transition leads to or from
//! it. Everything else (staying put, skipping `investigating`, confirming a dismissed flag) is
//! refused. A note is required wherever a flag stops being worked on without a finding
//! (dismissal) or a decision is undone (back to `open`): those are the moves an insider would
//! use to make a flag vanish, so the history must say why.

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::store::ANOMALY_JSON;

/// Longest note kept, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

pub use gridwatch_core::anomaly::Status;

/// Whether a transition needs a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// A note may be given.
    Optional,
    /// A note must be given.
    Required,
}

/// The allowed transitions (the table of this module's documentation).
pub const TRANSITIONS: &[(Status, Status, Note)] = &[
    (Status::Open, Status::Investigating, Note::Optional),
    (Status::Investigating, Status::Confirmed, Note::Optional),
    (Status::Investigating, Status::Dismissed, Note::Required),
    (Status::Investigating, Status::Open, Note::Required),
    (Status::Confirmed, Status::Open, Note::Required),
    (Status::Dismissed, Status::Open, Note::Required),
];

/// The statuses an anomaly in `from` may move to.
pub fn allowed_from(from: Status) -> Vec<Status> {
    TRANSITIONS
        .iter()
        .filter(|(f, _, _)| *f == from)
        .map(|(_, to, _)| *to)
        .collect()
}

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not in the table (HTTP 409 `invalid_transition`).
    #[error("an anomaly cannot go from {from} to {to}; from {from} it can go to {}", list(.allowed))]
    Invalid {
        /// Its status now.
        from: Status,
        /// The status asked for.
        to: Status,
        /// Where it could go.
        allowed: Vec<Status>,
    },
    /// Allowed, but only with a note (HTTP 422 `note_required`).
    #[error("going from {from} to {to} needs a note saying why")]
    NoteRequired {
        /// Its status now.
        from: Status,
        /// The status asked for.
        to: Status,
    },
}

fn list(statuses: &[Status]) -> String {
    if statuses.is_empty() {
        return "nothing".into();
    }
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Checks a transition against the table; `note` is already trimmed (`None` when blank).
pub fn check(from: Status, to: Status, note: Option<&str>) -> Result<(), Refusal> {
    match TRANSITIONS.iter().find(|(f, t, _)| *f == from && *t == to) {
        None => Err(Refusal::Invalid {
            from,
            to,
            allowed: allowed_from(from),
        }),
        Some((_, _, Note::Required)) if note.is_none() => Err(Refusal::NoteRequired { from, to }),
        Some(_) => Ok(()),
    }
}

/// A note as kept: trimmed, `None` when blank; refused when too long or holding a NUL (which
/// PostgreSQL text cannot store).
pub fn clean_note(note: Option<&str>) -> Result<Option<String>, String> {
    let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if note.contains('\0') {
        return Err("note may not contain NUL characters".into());
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("note is longer than {MAX_NOTE_CHARS} characters"));
    }
    Ok(Some(note.to_owned()))
}

/// A transition made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transitioned {
    /// The status before.
    pub from: Status,
    /// The status now.
    pub to: Status,
    /// The history entry recording it.
    pub seq: i64,
}

/// Why [`apply`] did not change anything.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// No anomaly has this id.
    #[error("no anomaly has this id")]
    NotFound,
    /// The table refuses it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// Moves anomaly `id` to `to`, recording who (`actor`), when (the database's clock) and why
/// (`note`, already cleaned by [`clean_note`]) in its history, in one transaction.
///
/// The row is locked first (`FOR UPDATE`), so of two concurrent transitions from the same
/// status one wins and the other sees the new status and is refused. A deadlock with the
/// detector (which locks anomalies and the history's advisory lock in its own order) is
/// resolved by PostgreSQL aborting one side; this side then retries, twice at most.
pub async fn apply(
    client: &mut Client,
    id: &str,
    to: Status,
    note: Option<&str>,
    actor: &str,
) -> Result<Transitioned, TransitionError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_apply(client, id, to, note, actor).await {
            Err(TransitionError::Database(error)) if attempt < 3 && is_retryable(&error) => {
                tracing::info!(anomaly = id, error = %crate::db::describe(&error), "Retrying a transition.");
            }
            other => return other,
        }
    }
}

fn is_retryable(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

async fn try_apply(
    client: &mut Client,
    id: &str,
    to: Status,
    note: Option<&str>,
    actor: &str,
) -> Result<Transitioned, TransitionError> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT status FROM anomalies WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .ok_or(TransitionError::NotFound)?;
    let current: String = row.get(0);
    // The table's CHECK constraint keeps status to the four values.
    let from = Status::parse(&current).unwrap_or(Status::Open);
    check(from, to, note)?;
    tx.execute(
        "UPDATE anomalies SET status = $2, updated_at = now() WHERE id = $1",
        &[&id, &to.as_str()],
    )
    .await?;
    let seq: i64 = tx
        .query_one(
            &format!(
                "SELECT gridwatch_record_history(a.id, $2, 'transition', $3, $4, $5, {ANOMALY_JSON})
                 FROM anomalies a WHERE a.id = $1"
            ),
            &[&id, &actor, &from.as_str(), &to.as_str(), &note],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(Transitioned { from, to, seq })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn the_contracts_path_is_allowed_and_shortcuts_are_not() {
        assert_eq!(check(Open, Investigating, None), Ok(()));
        assert_eq!(check(Investigating, Confirmed, None), Ok(()));
        assert_eq!(check(Investigating, Dismissed, Some("meter fault")), Ok(()));
        for (from, to) in [
            (Open, Confirmed),
            (Open, Dismissed),
            (Open, Open),
            (Confirmed, Dismissed),
            (Dismissed, Confirmed),
            (Confirmed, Investigating),
            (Investigating, Investigating),
        ] {
            assert!(
                matches!(check(from, to, Some("n")), Err(Refusal::Invalid { .. })),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn withdrawn_is_the_detectors_alone() {
        for from in [Open, Investigating, Confirmed, Dismissed] {
            assert!(
                matches!(
                    check(from, Withdrawn, Some("no theft")),
                    Err(Refusal::Invalid { .. })
                ),
                "{from} to withdrawn"
            );
        }
        assert!(allowed_from(Withdrawn).is_empty());
        assert_eq!(Status::parse("withdrawn"), Some(Withdrawn));
    }

    #[test]
    fn dismissal_and_reopening_need_a_note() {
        for (from, to) in [
            (Investigating, Dismissed),
            (Investigating, Open),
            (Confirmed, Open),
            (Dismissed, Open),
        ] {
            assert_eq!(
                check(from, to, None),
                Err(Refusal::NoteRequired { from, to })
            );
            assert_eq!(check(from, to, Some("why")), Ok(()));
        }
    }

    #[test]
    fn refusals_name_from_and_to_and_what_is_possible() {
        let message = check(Open, Confirmed, None)
            .expect_err("refused")
            .to_string();
        assert_eq!(
            message,
            "an anomaly cannot go from open to confirmed; from open it can go to investigating"
        );
        let message = check(Dismissed, Confirmed, None)
            .expect_err("refused")
            .to_string();
        assert!(message.contains("dismissed to confirmed") && message.ends_with("to open"));
    }

    #[test]
    fn notes_are_trimmed_and_bounded() {
        assert_eq!(clean_note(None), Ok(None));
        assert_eq!(clean_note(Some("  \n ")), Ok(None));
        assert_eq!(clean_note(Some(" visit ")), Ok(Some("visit".into())));
        assert!(clean_note(Some("a\0b")).is_err());
        assert!(clean_note(Some(&"x".repeat(MAX_NOTE_CHARS + 1))).is_err());
        assert!(clean_note(Some(&"ж".repeat(MAX_NOTE_CHARS))).is_ok());
    }
}
