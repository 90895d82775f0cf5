//! The registry document of CONTRACT.md section 1 (regions, grid nodes, meters, licences) and
//! the one validator that both `PUT /api/v1/registry` and `gridwatch registry import` use.
//!
//! A document is an upsert: its entries are merged over the registry already stored, and the
//! merged registry must be whole (every reference resolves, the tree has no cycle, every input
//! meter sits on its node). Any error rejects the whole document.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{GatewayId, LicenceId, MeterId, NodeId, RegionId};

/// Highest tariff accepted, in KZT per kWh (about 100 times today's): above is a typing error.
pub const MAX_TARIFF_KZT_PER_KWH: f64 = 1000.0;
/// Worst meter accuracy accepted, in percent (IEC classes go from 0.2 to 2).
pub const MAX_ACCURACY_PCT: f64 = 20.0;
/// Most machines one licence may register (the whole country registered 415,000).
pub const MAX_REGISTERED_MACHINES: u32 = 10_000_000;
/// Highest rated power of one mining machine, in watts (an S19 draws 3,250 W).
pub const MAX_MACHINE_RATED_W: u32 = 100_000;
/// Longest free-text field (names, holders, kinds), in characters.
pub const MAX_TEXT_LEN: usize = 200;

/// A whole registry document, or a part of one to upsert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryDocument {
    /// Regions: tariff and the 70/30 share apply per region.
    #[serde(default, deserialize_with = "objects")]
    pub regions: Vec<Region>,
    /// Nodes of the grid tree.
    #[serde(default, deserialize_with = "objects")]
    pub nodes: Vec<Node>,
    /// Meters, each on a node.
    #[serde(default, deserialize_with = "objects")]
    pub meters: Vec<Meter>,
    /// Mining licences.
    #[serde(default, deserialize_with = "objects")]
    pub licences: Vec<Licence>,
}

/// A value that must be written as a JSON object. Serde's derived structs also accept an array
/// of their fields in order (`["east-kz", "East", 10.3]`), which would bypass the field names
/// and so `deny_unknown_fields`: a document must name every field it sets.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with named fields")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Visitor(std::marker::PhantomData))
            .map(ObjectOnly)
    }
}

/// A list of entries, each a JSON object.
fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let entries = Vec::<ObjectOnly<T>>::deserialize(deserializer)?;
    Ok(entries.into_iter().map(|entry| entry.0).collect())
}

/// A region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Its identifier.
    pub id: RegionId,
    /// Its name, for people.
    pub name: String,
    /// Energy tariff in KZT per kWh: what a stolen kWh costs.
    pub tariff_kzt_per_kwh: f64,
    /// IANA time zone whose local days the daily analyses use (`None`: UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl Region {
    /// The region's time zone (UTC when it names none or an unknown one, which validation
    /// rejects).
    pub fn zone(&self) -> chrono_tz::Tz {
        self.timezone
            .as_deref()
            .and_then(crate::days::zone)
            .unwrap_or(chrono_tz::UTC)
    }
}

/// A node of the grid tree: a substation, a feeder, a transformer...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Its identifier.
    pub id: NodeId,
    /// The node that feeds it; `null` for a root.
    pub parent: Option<NodeId>,
    /// Its region.
    pub region: RegionId,
    /// Free text: substation, feeder, transformer...
    pub kind: String,
    /// The meter measuring what enters the node, if it has one (role `input`, on this node).
    #[serde(default)]
    pub input_meter: Option<MeterId>,
}

/// What a meter measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterRole {
    /// Energy entering a node (an observer meter at the boundary).
    Input,
    /// A customer's consumption.
    Consumer,
}

/// The kind of connection a meter serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterClass {
    /// A boundary (observer) meter of the grid itself.
    Boundary,
    /// A household.
    Household,
    /// Shops, offices, bakeries...
    Commercial,
    /// Industrial premises.
    Industrial,
    /// A mining farm.
    Mining,
}

impl MeterRole {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MeterRole::Input => "input",
            MeterRole::Consumer => "consumer",
        }
    }
}

impl MeterClass {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MeterClass::Boundary => "boundary",
            MeterClass::Household => "household",
            MeterClass::Commercial => "commercial",
            MeterClass::Industrial => "industrial",
            MeterClass::Mining => "mining",
        }
    }

    /// Parses the contract's spelling.
    pub fn parse(s: &str) -> Option<MeterClass> {
        [
            MeterClass::Boundary,
            MeterClass::Household,
            MeterClass::Commercial,
            MeterClass::Industrial,
            MeterClass::Mining,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl MeterRole {
    /// Parses the contract's spelling.
    pub fn parse(s: &str) -> Option<MeterRole> {
        [MeterRole::Input, MeterRole::Consumer]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// A meter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meter {
    /// Its identifier (also its MQTT topic level).
    pub id: MeterId,
    /// The node it is attached to.
    pub node: NodeId,
    /// Input (observer) or consumer.
    pub role: MeterRole,
    /// The connection's class.
    pub class: MeterClass,
    /// Accuracy class in percent (0.5 for 0.5S, 1 or 2 for customers).
    pub accuracy_pct: f64,
    /// The mining licence it meters, for a licensed farm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<LicenceId>,
    /// The data concentrator that uploads its readings, when known: readings of this meter
    /// arriving through another gateway are rejected as `topic_mismatch` (an extension of the
    /// contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayId>,
}

/// A mining licence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Licence {
    /// Its identifier.
    pub id: LicenceId,
    /// Who holds it.
    pub holder: String,
    /// The accredited mining pool it mines for.
    #[serde(default)]
    pub pool: Option<String>,
    /// Machines registered under it.
    pub registered_machines: u32,
    /// Rated power of one machine, in watts.
    pub machine_rated_w: u32,
}

/// One reason a document is refused, naming the offending entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    /// The entry, such as `meters[3] (M-000017)` or `nodes (EK-F-001)`.
    pub entry: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.entry, self.message)
    }
}

/// Parses a document from JSON, naming the path of the first error
/// (`meters[3].accuracy_pct: invalid type...`).
pub fn parse_document(json: &[u8]) -> Result<RegistryDocument, RegistryError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let document: RegistryDocument = serde_path_to_error::deserialize(&mut deserializer)
        .map(|document: ObjectOnly<RegistryDocument>| document.0)
        .map_err(|e| {
            let path = e.path().to_string();
            RegistryError {
                // An unknown field named "" at the top has the empty path.
                entry: if path == "." || path.is_empty() {
                    "document".into()
                } else {
                    path
                },
                message: e.into_inner().to_string(),
            }
        })?;
    deserializer.end().map_err(|e| RegistryError {
        entry: "document".into(),
        message: e.to_string(),
    })?;
    Ok(document)
}

fn text_ok(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= MAX_TEXT_LEN && !s.chars().any(char::is_control)
}

/// Validates `document` merged over `existing` (the registry already stored; empty for a first
/// import). Returns every error found, each naming its entry.
pub fn validate(
    document: &RegistryDocument,
    existing: &RegistryDocument,
) -> Result<(), Vec<RegistryError>> {
    let mut errors = Vec::new();
    let mut err = |entry: String, message: String| errors.push(RegistryError { entry, message });

    // Duplicates within the document itself.
    fn duplicates<'a, T>(
        items: &'a [T],
        id: impl Fn(&'a T) -> &'a str,
        kind: &str,
        err: &mut impl FnMut(String, String),
    ) {
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            if !seen.insert(id(item)) {
                err(
                    format!("{kind}[{i}] ({})", id(item)),
                    "duplicate id in the document".into(),
                );
            }
        }
    }
    duplicates(&document.regions, |r| r.id.as_str(), "regions", &mut err);
    duplicates(&document.nodes, |n| n.id.as_str(), "nodes", &mut err);
    duplicates(&document.meters, |m| m.id.as_str(), "meters", &mut err);
    duplicates(&document.licences, |l| l.id.as_str(), "licences", &mut err);

    // Values.
    for (i, r) in document.regions.iter().enumerate() {
        let entry = || format!("regions[{i}] ({})", r.id);
        if !text_ok(&r.name) {
            err(
                entry(),
                format!("name must be 1 to {MAX_TEXT_LEN} printable characters"),
            );
        }
        if !r.tariff_kzt_per_kwh.is_finite()
            || r.tariff_kzt_per_kwh < 0.0
            || r.tariff_kzt_per_kwh > MAX_TARIFF_KZT_PER_KWH
        {
            err(
                entry(),
                format!(
                    "tariff_kzt_per_kwh {} must be between 0 and {MAX_TARIFF_KZT_PER_KWH}",
                    r.tariff_kzt_per_kwh
                ),
            );
        }
        if let Some(zone) = &r.timezone {
            if crate::days::zone(zone).is_none() {
                err(
                    entry(),
                    format!("timezone {zone:?} is not an IANA time zone (e.g. \"Asia/Almaty\")"),
                );
            }
        }
    }
    for (i, n) in document.nodes.iter().enumerate() {
        if !text_ok(&n.kind) {
            err(
                format!("nodes[{i}] ({})", n.id),
                format!("kind must be 1 to {MAX_TEXT_LEN} printable characters"),
            );
        }
    }
    for (i, m) in document.meters.iter().enumerate() {
        if !m.accuracy_pct.is_finite() || m.accuracy_pct <= 0.0 || m.accuracy_pct > MAX_ACCURACY_PCT
        {
            err(
                format!("meters[{i}] ({})", m.id),
                format!(
                    "accuracy_pct {} must be above 0 and at most {MAX_ACCURACY_PCT}",
                    m.accuracy_pct
                ),
            );
        }
    }
    for (i, l) in document.licences.iter().enumerate() {
        let entry = || format!("licences[{i}] ({})", l.id);
        if !text_ok(&l.holder) {
            err(
                entry(),
                format!("holder must be 1 to {MAX_TEXT_LEN} printable characters"),
            );
        }
        if l.pool.as_deref().is_some_and(|p| !text_ok(p)) {
            err(
                entry(),
                format!("pool must be 1 to {MAX_TEXT_LEN} printable characters"),
            );
        }
        if l.registered_machines > MAX_REGISTERED_MACHINES {
            err(
                entry(),
                format!(
                    "registered_machines {} exceeds {MAX_REGISTERED_MACHINES}",
                    l.registered_machines
                ),
            );
        }
        if l.machine_rated_w == 0 || l.machine_rated_w > MAX_MACHINE_RATED_W {
            err(
                entry(),
                format!(
                    "machine_rated_w {} must be between 1 and {MAX_MACHINE_RATED_W}",
                    l.machine_rated_w
                ),
            );
        }
    }

    // The merged registry: the document's entries override the stored ones with the same id.
    let regions: HashSet<&str> = existing
        .regions
        .iter()
        .chain(&document.regions)
        .map(|r| r.id.as_str())
        .collect();
    let licences: HashSet<&str> = existing
        .licences
        .iter()
        .chain(&document.licences)
        .map(|l| l.id.as_str())
        .collect();
    let mut nodes: HashMap<&str, &Node> =
        existing.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    nodes.extend(document.nodes.iter().map(|n| (n.id.as_str(), n)));
    let mut meters: HashMap<&str, &Meter> =
        existing.meters.iter().map(|m| (m.id.as_str(), m)).collect();
    meters.extend(document.meters.iter().map(|m| (m.id.as_str(), m)));

    // References. Entries of the document are named by position; stored entries that the
    // document broke (a node whose input meter moved away) by id.
    // Sets and positions, not scans: a national document holds millions of meters.
    let document_nodes: HashSet<&str> = document.nodes.iter().map(|n| n.id.as_str()).collect();
    let document_meters: HashSet<&str> = document.meters.iter().map(|m| m.id.as_str()).collect();
    let node_positions: HashMap<&str, usize> = document
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let node_entry = |id: &str| match node_positions.get(id) {
        Some(i) => format!("nodes[{i}] ({id})"),
        None => format!("stored node {id}"),
    };
    for node in nodes.values() {
        let touched = document_nodes.contains(node.id.as_str())
            || node
                .input_meter
                .as_ref()
                .is_some_and(|m| document_meters.contains(m.as_str()));
        if !touched {
            continue;
        }
        let entry = node_entry(node.id.as_str());
        if !regions.contains(node.region.as_str()) {
            err(
                entry.clone(),
                format!("region {} does not exist", node.region),
            );
        }
        if let Some(parent) = &node.parent {
            if !nodes.contains_key(parent.as_str()) {
                err(entry.clone(), format!("parent {parent} does not exist"));
            }
        }
        if let Some(input) = &node.input_meter {
            match meters.get(input.as_str()) {
                None => err(entry, format!("input_meter {input} does not exist")),
                Some(m) if m.role != MeterRole::Input => err(
                    entry,
                    format!(
                        "input_meter {input} has role {}, not input",
                        m.role.as_str()
                    ),
                ),
                Some(m) if m.node != node.id => err(
                    entry,
                    format!(
                        "input_meter {input} is on node {}, not on this node",
                        m.node
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    for (i, m) in document.meters.iter().enumerate() {
        let entry = || format!("meters[{i}] ({})", m.id);
        if !nodes.contains_key(m.node.as_str()) {
            err(entry(), format!("node {} does not exist", m.node));
        }
        if let Some(licence) = &m.licence {
            if !licences.contains(licence.as_str()) {
                err(entry(), format!("licence {licence} does not exist"));
            }
        }
    }

    // Cycles: follow parents from every node of the document.
    for id in &document_nodes {
        let mut seen = HashSet::new();
        let mut current = Some(*id);
        while let Some(node_id) = current {
            if !seen.insert(node_id) {
                err(
                    node_entry(id),
                    format!("the tree has a cycle through {node_id}"),
                );
                break;
            }
            current = nodes
                .get(node_id)
                .and_then(|n| n.parent.as_ref())
                .map(NodeId::as_str);
        }
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"{
      "regions":  [{"id": "east-kz", "name": "East Kazakhstan", "tariff_kzt_per_kwh": 10.3}],
      "nodes":    [{"id": "EK-SUB-01", "parent": null,        "region": "east-kz", "kind": "substation", "input_meter": "EK-SUB-01-IN"},
                   {"id": "EK-F-001",  "parent": "EK-SUB-01", "region": "east-kz", "kind": "feeder",     "input_meter": "EK-F-001-IN"}],
      "meters":   [{"id": "EK-SUB-01-IN", "node": "EK-SUB-01", "role": "input",    "class": "boundary",  "accuracy_pct": 0.5},
                   {"id": "EK-F-001-IN",  "node": "EK-F-001",  "role": "input",    "class": "boundary",  "accuracy_pct": 0.5},
                   {"id": "M-000001",     "node": "EK-F-001",  "role": "consumer", "class": "household", "accuracy_pct": 1.0},
                   {"id": "FARM-042",     "node": "EK-F-001",  "role": "consumer", "class": "mining",    "accuracy_pct": 0.5, "licence": "KZ-MIN-042"}],
      "licences": [{"id": "KZ-MIN-042", "holder": "Qazaq Hash LLP", "pool": "pool-3", "registered_machines": 1200, "machine_rated_w": 3250}]
    }"#;

    fn example() -> RegistryDocument {
        parse_document(CONTRACT_EXAMPLE.as_bytes()).expect("the contract's example parses")
    }

    fn errors_of(doc: &RegistryDocument, existing: &RegistryDocument) -> Vec<String> {
        validate(doc, existing)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_contract_example_is_valid() {
        assert_eq!(validate(&example(), &RegistryDocument::default()), Ok(()));
    }

    #[test]
    fn unknown_fields_and_bad_identifiers_name_their_path() {
        let e = parse_document(br#"{"meters":[{"id":"M-1","node":"N","role":"consumer","class":"household","accuracy_pct":1,"colour":"red"}]}"#)
            .expect_err("unknown field");
        assert!(e.entry.starts_with("meters[0]"), "{e}");
        assert!(e.message.contains("colour"), "{e}");
        let e =
            parse_document(br#"{"regions":[{"id":"bad id","name":"x","tariff_kzt_per_kwh":1}]}"#)
                .expect_err("bad id");
        assert!(e.entry.starts_with("regions[0]"), "{e}");
        assert!(parse_document(br#"{"zones":[]}"#).is_err());
        // Entries and the document must name their fields.
        assert!(parse_document(b"[]").is_err());
        let e =
            parse_document(br#"{"regions":[["east-kz","East",10.3]]}"#).expect_err("array entry");
        assert!(e.entry.starts_with("regions[0]"), "{e}");
        assert!(parse_document(br#"{} {}"#).is_err());
    }

    #[test]
    fn dangling_references_are_named() {
        let mut doc = example();
        doc.meters[2].node = NodeId::parse("NOWHERE").expect("id");
        doc.meters[3].licence = Some(LicenceId::parse("KZ-NONE").expect("id"));
        doc.nodes[1].region = RegionId::parse("west").expect("id");
        let errors = errors_of(&doc, &RegistryDocument::default()).join("\n");
        assert!(
            errors.contains("meters[2] (M-000001): node NOWHERE does not exist"),
            "{errors}"
        );
        assert!(
            errors.contains("meters[3] (FARM-042): licence KZ-NONE does not exist"),
            "{errors}"
        );
        assert!(
            errors.contains("nodes[1] (EK-F-001): region west does not exist"),
            "{errors}"
        );
    }

    #[test]
    fn cycles_are_refused() {
        let mut doc = example();
        doc.nodes[0].parent = Some(NodeId::parse("EK-F-001").expect("id"));
        let errors = errors_of(&doc, &RegistryDocument::default()).join("\n");
        assert!(errors.contains("cycle"), "{errors}");
    }

    #[test]
    fn an_input_meter_must_be_an_input_on_its_node() {
        let mut doc = example();
        doc.nodes[1].input_meter = Some(MeterId::parse("M-000001").expect("id"));
        let errors = errors_of(&doc, &RegistryDocument::default()).join("\n");
        assert!(errors.contains("has role consumer, not input"), "{errors}");
        let mut doc = example();
        doc.nodes[1].input_meter = Some(MeterId::parse("EK-SUB-01-IN").expect("id"));
        let errors = errors_of(&doc, &RegistryDocument::default()).join("\n");
        assert!(
            errors.contains("is on node EK-SUB-01, not on this node"),
            "{errors}"
        );
    }

    #[test]
    fn duplicates_and_absurd_numbers_are_refused() {
        let mut doc = example();
        doc.meters.push(doc.meters[2].clone());
        doc.regions[0].tariff_kzt_per_kwh = -1.0;
        doc.meters[0].accuracy_pct = 0.0;
        doc.licences[0].machine_rated_w = 0;
        let errors = errors_of(&doc, &RegistryDocument::default()).join("\n");
        assert!(
            errors.contains("meters[4] (M-000001): duplicate id"),
            "{errors}"
        );
        assert!(errors.contains("tariff_kzt_per_kwh -1"), "{errors}");
        assert!(errors.contains("accuracy_pct 0"), "{errors}");
        assert!(errors.contains("machine_rated_w 0"), "{errors}");
    }

    #[test]
    fn a_partial_document_may_reference_the_stored_registry() {
        let stored = example();
        let addition = parse_document(
            br#"{"meters":[{"id":"M-2","node":"EK-F-001","role":"consumer","class":"household","accuracy_pct":2}]}"#,
        )
        .expect("valid");
        assert_eq!(validate(&addition, &stored), Ok(()));
        // Moving the feeder's input meter away breaks the stored feeder.
        let moved = parse_document(
            br#"{"meters":[{"id":"EK-F-001-IN","node":"EK-SUB-01","role":"input","class":"boundary","accuracy_pct":0.5}]}"#,
        )
        .expect("valid");
        let errors = errors_of(&moved, &stored).join("\n");
        assert!(errors.contains("stored node EK-F-001"), "{errors}");
    }
}
