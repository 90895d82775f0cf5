//! The registry: parsing, validation (alone and as an upsert over a stored registry), and the
//! detector's topology built from whatever validates.

use std::collections::HashSet;
use std::sync::OnceLock;

use gridwatch_core::registry::{parse_document, validate, MeterRole, RegistryDocument};
use gridwatch_detect::topology::Topology;

use super::{ensure, fingerprint, shape, Outcome, Violation};

/// The contract's example registry (also a seed of the corpus), standing for the registry
/// already stored when a document is an upsert.
fn stored() -> &'static RegistryDocument {
    static STORED: OnceLock<RegistryDocument> = OnceLock::new();
    STORED.get_or_init(|| {
        parse_document(include_bytes!(
            "../../corpus/registry/contract_example.json"
        ))
        .expect("the contract's example parses")
    })
}

/// `doc`'s entries over `stored`'s, replacing those with the same id: the registry an upsert
/// leaves behind.
fn merged(stored: &RegistryDocument, doc: &RegistryDocument) -> RegistryDocument {
    fn upsert<T: Clone>(stored: &[T], doc: &[T], id: impl Fn(&T) -> &str) -> Vec<T> {
        let replaced: HashSet<&str> = doc.iter().map(&id).collect();
        stored
            .iter()
            .filter(|e| !replaced.contains(id(e)))
            .chain(doc)
            .cloned()
            .collect()
    }
    RegistryDocument {
        regions: upsert(&stored.regions, &doc.regions, |r| r.id.as_str()),
        nodes: upsert(&stored.nodes, &doc.nodes, |n| n.id.as_str()),
        meters: upsert(&stored.meters, &doc.meters, |m| m.id.as_str()),
        licences: upsert(&stored.licences, &doc.licences, |l| l.id.as_str()),
    }
}

/// What the detector relies on in a valid registry's topology: balance terms that name an
/// input meter on its own node and fed meters that exist, once each; parents before children.
fn check_topology(doc: &RegistryDocument) -> Result<(), Violation> {
    let topology = Topology::from_registry(doc);
    for node in 0..topology.nodes.len() {
        let Some(terms) = topology.balance_terms(node) else {
            ensure(topology.nodes[node].input_meter.is_none(), || {
                format!(
                    "node {} has an input meter but no balance",
                    topology.nodes[node].id
                )
            })?;
            continue;
        };
        let input = &topology.meters[terms.input];
        ensure(input.role == MeterRole::Input && input.node == node, || {
            format!(
                "node {}'s input meter {} is not an input on it",
                topology.nodes[node].id, input.id
            )
        })?;
        let fed: HashSet<usize> = terms.fed.iter().copied().collect();
        ensure(
            fed.len() == terms.fed.len() && !fed.contains(&terms.input),
            || {
                format!(
                    "node {}'s fed meters repeat or include its input: {:?}",
                    topology.nodes[node].id, terms.fed
                )
            },
        )?;
        ensure(terms.fed.iter().all(|&m| m < topology.meters.len()), || {
            format!(
                "node {} feeds a meter that does not exist",
                topology.nodes[node].id
            )
        })?;
    }
    for region in &doc.regions {
        let order = topology.balanced_nodes(region.id.as_str());
        for (position, &node) in order.iter().enumerate() {
            if let Some(parent) = topology.nodes[node].parent {
                ensure(!order[position..].contains(&parent), || {
                    format!(
                        "node {} is balanced before its parent",
                        topology.nodes[node].id
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// The fields a parse error's path goes through (`meters.accuracy_pct` for
/// `meters[3].accuracy_pct`), anything else as `?` (unknown keys are the input's own text), at
/// most three deep.
fn path_fields(path: &str) -> String {
    const FIELDS: &[&str] = &[
        "document",
        "regions",
        "nodes",
        "meters",
        "licences",
        "id",
        "name",
        "tariff_kzt_per_kwh",
        "parent",
        "region",
        "kind",
        "input_meter",
        "node",
        "role",
        "class",
        "accuracy_pct",
        "licence",
        "gateway",
        "holder",
        "pool",
        "registered_machines",
        "machine_rated_w",
    ];
    path.split(['[', ']', '.'])
        .filter(|part| !part.is_empty() && !part.bytes().all(|b| b.is_ascii_digit()))
        .map(|part| if FIELDS.contains(&part) { part } else { "?" })
        .fold(Vec::new(), |mut parts, part| {
            // An unknown key may itself hold dots and brackets: one `?` stands for it.
            if parts.last() != Some(&part) && parts.len() < 3 {
                parts.push(part);
            }
            parts
        })
        .join(".")
}

/// The validator's words in `message`, without the identifiers and values it names (unquoted:
/// `region west does not exist`).
fn skeleton(message: &str) -> String {
    const WORDS: &[&str] = &[
        "a",
        "above",
        "and",
        "at",
        "be",
        "between",
        "characters",
        "consumer",
        "cycle",
        "does",
        "duplicate",
        "exceeds",
        "exist",
        "has",
        "holder",
        "id",
        "in",
        "input",
        "input_meter",
        "is",
        "kind",
        "licence",
        "machine_rated_w",
        "most",
        "must",
        "name",
        "node",
        "not",
        "on",
        "parent",
        "pool",
        "printable",
        "region",
        "registered_machines",
        "role",
        "tariff_kzt_per_kwh",
        "accuracy_pct",
        "the",
        "this",
        "through",
        "to",
        "tree",
    ];
    message
        .split_whitespace()
        .filter(|word| WORDS.contains(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The target.
pub fn registry(input: &[u8]) -> Result<Vec<Outcome>, Violation> {
    let doc = match parse_document(input) {
        Ok(doc) => doc,
        Err(e) => {
            ensure(!e.entry.is_empty() && !e.message.is_empty(), || {
                format!("a parse error that names nothing: {e:?}")
            })?;
            return Ok(vec![fingerprint([
                "unparsed",
                &path_fields(&e.entry),
                shape(&e.message),
            ])]);
        }
    };
    let empty = RegistryDocument::default();
    let alone = validate(&doc, &empty);
    let upsert = validate(&doc, stored());
    for errors in [&alone, &upsert]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
    {
        ensure(!errors.is_empty(), || "refused without a reason".into())?;
        ensure(
            errors
                .iter()
                .all(|e| !e.entry.is_empty() && !e.message.is_empty()),
            || format!("an error that names nothing: {errors:?}"),
        )?;
    }
    // An upsert is accepted exactly when the registry it leaves is whole.
    let after = merged(stored(), &doc);
    let whole = validate(&after, &empty);
    ensure(upsert.is_ok() == whole.is_ok(), || {
        format!("the upsert gives {upsert:?} but the registry it leaves gives {whole:?}")
    })?;
    // What is accepted is written back and read again unchanged (in what it names).
    if alone.is_ok() {
        check_topology(&doc)?;
        let text =
            serde_json::to_vec(&doc).map_err(|e| Violation(format!("unserialisable: {e}")))?;
        let again =
            parse_document(&text).map_err(|e| Violation(format!("does not parse back: {e}")))?;
        ensure(validate(&again, &empty).is_ok(), || {
            "valid, but not once written back".into()
        })?;
    }
    if whole.is_ok() {
        check_topology(&after)?;
    }
    let mut outcomes = vec![fingerprint([
        if alone.is_ok() { "valid" } else { "invalid" },
        if upsert.is_ok() {
            "upsert ok"
        } else {
            "upsert refused"
        },
    ])];
    for (mode, result) in [("alone", &alone), ("upsert", &upsert)] {
        for e in result.as_ref().err().into_iter().flatten() {
            let kind = e.entry.split(['[', ' ']).next().unwrap_or_default();
            outcomes.push(fingerprint([mode, kind, &skeleton(&e.message)]));
        }
    }
    Ok(outcomes)
}
