//! Mutations of an input: byte-level ones (bit flips, insertions, deletions, duplications,
//! splices with other entries of the pool), JSON-aware ones on the text (a number or string
//! swapped for an edge case, deep nesting), and structural ones on a parsed document (fields
//! removed or added, entries duplicated or swapped, one value copied over another: how a
//! registry document gets dangling references, duplicates and cycles).

use serde_json::{Map, Value};

use crate::rng::Rng;

/// Longest input produced: the contract keeps at most 64 KiB of a payload.
pub const MAX_INPUT_LEN: usize = 64 * 1024;

/// Numbers as JSON text, chosen to sit on the edges of i64, u64 and f64 parsing.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1",
    "0.1",
    "1.5",
    "-0.0",
    "1e308",
    "1e309",
    "-1e309",
    "1e-400",
    "4.9e-324",
    "1.7976931348623157e308",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1E+2",
    "00",
    "1.",
    ".5",
    "-",
    "1e",
    "0x10",
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "\"NaN\"",
    "\"1\"",
    "null",
    "true",
];

/// Strings (raw, before JSON escaping) that probe identifiers, timestamps and free text.
const STRINGS: &[&str] = &[
    "",
    "\0",
    "a\0b",
    "\u{1}",
    "\u{FFFD}",
    "é",
    " ",
    "M-1",
    "M-000001",
    "bad id",
    "-dash",
    "NaN",
    "Infinity",
    "-1",
    "2025-10-01T00:15:00Z",
    "2025-10-01T00:15:00+06:00",
    "2025-10-01T00:15:00+25:00",
    "2025-10-01T00:15:00.123456789123Z",
    "2025-02-30T00:00:00Z",
    "2025-10-01T00:15:60Z",
    "2025-10-01T24:00:00Z",
    "9999-12-31T23:59:59-23:59",
    "0000-01-01T00:00:00+23:59",
    "+275760-09-13T00:00:00Z",
    "2025-10-01",
    "2023-06-01",
    "262143-12-31",
    "input",
    "consumer",
    "boundary",
    "mining",
    "substation",
];

/// Keys of the payloads and documents the targets read, and one they do not know.
const KEYS: &[&str] = &[
    "ts",
    "energy_wh",
    "power_w",
    "meter_id",
    "id",
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
    "name",
    "tariff_kzt_per_kwh",
    "regions",
    "nodes",
    "meters",
    "licences",
    "consumption_mwh",
    "revenue_kzt",
    "costs_kzt",
    "mined_assets",
    "asset_value_kzt",
    "date",
    "profiles",
    "effective_from",
    "purchase_cap_wh",
    "profit_tax_pct",
    "aifc_share_pct",
    "source",
    "x",
];

/// Applies one to four mutations to `input`, drawing splice partners from `pool`.
pub fn mutate(input: &mut Vec<u8>, rng: &mut Rng, pool: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(13) {
            0 => flip_bit(input, rng),
            1 => set_byte(input, rng),
            2 => insert_bytes(input, rng),
            3 => delete_range(input, rng),
            4 => duplicate_range(input, rng),
            5 => splice(input, rng, pool),
            6 => replace_token(input, rng, Token::Number),
            7 => replace_token(input, rng, Token::String),
            8 => nest_deeply(input, rng),
            _ => {
                if !restructure(input, rng, pool) {
                    set_byte(input, rng);
                }
            }
        }
    }
    input.truncate(MAX_INPUT_LEN);
}

/// Random bytes, of random length: what a broken client or a wrong topic sends.
pub fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(256);
    (0..len).map(|_| rng.byte()).collect()
}

fn flip_bit(input: &mut [u8], rng: &mut Rng) {
    if !input.is_empty() {
        let i = rng.below(input.len());
        input[i] ^= 1 << rng.below(8);
    }
}

/// A byte that means something to a JSON parser, or any byte.
fn some_byte(rng: &mut Rng) -> u8 {
    const SPECIAL: &[u8] = b"{}[]\",:0123456789-+.eE \\\0\xff\xc3\n";
    if rng.one_in(2) {
        *rng.pick(SPECIAL)
    } else {
        rng.byte()
    }
}

fn set_byte(input: &mut Vec<u8>, rng: &mut Rng) {
    if input.is_empty() {
        input.push(some_byte(rng));
    } else {
        let i = rng.below(input.len());
        input[i] = some_byte(rng);
    }
}

fn insert_bytes(input: &mut Vec<u8>, rng: &mut Rng) {
    let at = rng.below(input.len() + 1);
    let bytes: Vec<u8> = (0..1 + rng.below(8)).map(|_| some_byte(rng)).collect();
    input.splice(at..at, bytes);
}

fn delete_range(input: &mut Vec<u8>, rng: &mut Rng) {
    if !input.is_empty() {
        let start = rng.below(input.len());
        let end = (start + 1 + rng.below(16)).min(input.len());
        input.drain(start..end);
    }
}

fn duplicate_range(input: &mut Vec<u8>, rng: &mut Rng) {
    if !input.is_empty() {
        let start = rng.below(input.len());
        let end = (start + 1 + rng.below(64)).min(input.len());
        let copy = input[start..end].to_vec();
        let at = rng.below(input.len() + 1);
        input.splice(at..at, copy);
    }
}

/// The head of `input` followed by the tail of another entry of the pool.
fn splice(input: &mut Vec<u8>, rng: &mut Rng, pool: &[Vec<u8>]) {
    if pool.is_empty() {
        return;
    }
    let other = rng.pick(pool);
    let cut = rng.below(input.len() + 1);
    let from = rng.below(other.len() + 1);
    input.truncate(cut);
    input.extend_from_slice(&other[from..]);
}

#[derive(Clone, Copy, PartialEq)]
enum Token {
    Number,
    String,
}

/// Byte ranges of the numbers and the strings (quotes included) in JSON text, found by a
/// scan that tolerates broken text.
fn tokens(input: &[u8], kind: Token) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < input.len() && input[i] != b'"' {
                    i += if input[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(input.len());
                if kind == Token::String {
                    found.push(start..i);
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < input.len()
                    && matches!(input[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                if kind == Token::Number {
                    found.push(start..i);
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// A string as JSON text, sometimes with escapes and bytes no valid JSON holds.
fn string_text(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 => b"\"\\ud800\"".to_vec(),
        1 => b"\"\\udc00\\ud800\"".to_vec(),
        2 => b"\"\\x\"".to_vec(),
        3 => b"\"\xff\xfe\"".to_vec(),
        4 => format!(
            "\"{}\"",
            "a".repeat([63, 64, 65, 200, 201, 5000][rng.below(6)])
        )
        .into_bytes(),
        _ => Value::String((*rng.pick(STRINGS)).to_owned())
            .to_string()
            .into_bytes(),
    }
}

fn replace_token(input: &mut Vec<u8>, rng: &mut Rng, kind: Token) {
    let found = tokens(input, kind);
    if found.is_empty() {
        return;
    }
    let range = rng.pick(&found).clone();
    let replacement = match kind {
        Token::Number if rng.one_in(8) => "9".repeat(400).into_bytes(),
        Token::Number => rng.pick(NUMBERS).as_bytes().to_vec(),
        Token::String => string_text(rng),
    };
    input.splice(range, replacement);
}

/// Wraps the input in, or inserts, brackets deeper than the parsers' recursion limit (128).
fn nest_deeply(input: &mut Vec<u8>, rng: &mut Rng) {
    let depth = [64, 127, 128, 129, 200, 1000, 20_000][rng.below(7)];
    match rng.below(3) {
        0 => {
            let mut nested = b"[".repeat(depth);
            nested.append(input);
            nested.extend(b"]".repeat(depth));
            *input = nested;
        }
        1 => {
            let mut nested = b"{\"a\":".repeat(depth);
            nested.append(input);
            nested.extend(b"}".repeat(depth));
            *input = nested;
        }
        _ => {
            let at = rng.below(input.len() + 1);
            input.splice(at..at, b"[".repeat(depth));
        }
    }
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count).sum(),
        Value::Object(map) => map.values().map(count).sum(),
        _ => 0,
    }
}

/// The `n`-th value of `v` in pre-order (`v` itself is the 0th).
fn nth_mut<'a>(v: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
    if *n == 0 {
        return Some(v);
    }
    *n -= 1;
    match v {
        Value::Array(items) => items.iter_mut().find_map(|item| nth_mut(item, n)),
        Value::Object(map) => map.values_mut().find_map(|item| nth_mut(item, n)),
        _ => None,
    }
}

fn nth(v: &Value, n: &mut usize) -> Option<Value> {
    if *n == 0 {
        return Some(v.clone());
    }
    *n -= 1;
    match v {
        Value::Array(items) => items.iter().find_map(|item| nth(item, n)),
        Value::Object(map) => map.values().find_map(|item| nth(item, n)),
        _ => None,
    }
}

fn strings_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings_of(item, out)),
        Value::Object(map) => map.values().for_each(|item| strings_of(item, out)),
        _ => {}
    }
}

fn edge_value(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::Array(Vec::new()),
        3 => Value::Object(Map::new()),
        4 => Value::String((*rng.pick(STRINGS)).to_owned()),
        _ => {
            let numbers = [
                serde_json::json!(0),
                serde_json::json!(-1),
                serde_json::json!(-0.0),
                serde_json::json!(0.5),
                serde_json::json!(i64::MAX),
                serde_json::json!(i64::MIN),
                serde_json::json!(u64::MAX),
                serde_json::json!(u32::MAX),
                serde_json::json!(1e15),
                serde_json::json!(1e16),
                serde_json::json!(f64::MAX),
                serde_json::json!(f64::MIN_POSITIVE),
                serde_json::json!(5e-324),
            ];
            rng.pick(&numbers).clone()
        }
    }
}

/// Edits a parsed document and writes it back; false when `input` is not JSON.
fn restructure(input: &mut Vec<u8>, rng: &mut Rng, pool: &[Vec<u8>]) -> bool {
    let Ok(mut doc) = serde_json::from_slice::<Value>(input) else {
        return false;
    };
    // Values to copy in: this document's own (references that resolve, or make a cycle or a
    // duplicate) and those of another entry of the pool.
    let mut strings = Vec::new();
    strings_of(&doc, &mut strings);
    let donor = (!pool.is_empty())
        .then(|| serde_json::from_slice::<Value>(rng.pick::<Vec<u8>>(pool)).ok())
        .flatten();
    if let Some(donor) = &donor {
        strings_of(donor, &mut strings);
    }
    let mut pick = rng.below(count(&doc));
    let copied = match &donor {
        Some(d) if rng.one_in(2) => nth(d, &mut rng.below(count(d))),
        _ => nth(&doc, &mut rng.below(count(&doc))),
    };
    let Some(target) = nth_mut(&mut doc, &mut pick) else {
        return false;
    };
    match rng.below(8) {
        0 => *target = edge_value(rng),
        1 if !strings.is_empty() => *target = Value::String(rng.pick(&strings).clone()),
        2 => match target {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(rng.below(map.len())).cloned();
                key.map(|k| map.remove(&k));
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            _ => *target = Value::Null,
        },
        3 => {
            if let Value::Object(map) = target {
                let value = copied.unwrap_or_else(|| edge_value(rng));
                map.insert((*rng.pick(KEYS)).to_owned(), value);
            }
        }
        4 => {
            if let Value::Array(items) = target {
                if !items.is_empty() {
                    let item = items[rng.below(items.len())].clone();
                    let times = if rng.one_in(8) { 64 } else { 1 };
                    items.extend(std::iter::repeat_n(item, times));
                }
            }
        }
        5 => {
            if let Value::Array(items) = target {
                if !items.is_empty() {
                    let (a, b) = (rng.below(items.len()), rng.below(items.len()));
                    items.swap(a, b);
                }
            }
        }
        6 => {
            if let Some(value) = copied {
                *target = value;
            }
        }
        _ => {
            let inner = target.take();
            *target = if rng.one_in(2) {
                Value::Array(vec![inner])
            } else {
                Value::String(inner.to_string())
            };
        }
    }
    *input = serde_json::to_vec(&doc).unwrap_or_default();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_find_numbers_and_strings_in_broken_text() {
        let text = br#"{"a": -1.5e3, "b": "x\"y", "c": [7"#;
        let numbers: Vec<&[u8]> = tokens(text, Token::Number)
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(numbers, [&b"-1.5e3"[..], b"7"]);
        let strings = tokens(text, Token::String);
        assert_eq!(&text[strings[2].clone()], br#""x\"y""#);
    }

    #[test]
    fn mutations_stay_within_the_size_limit_and_are_deterministic() {
        let pool = vec![br#"{"ts":"2025-10-01T00:15:00Z","energy_wh":1}"#.to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut input = pool[0].clone();
            for _ in 0..500 {
                mutate(&mut input, &mut rng, &pool);
                assert!(input.len() <= MAX_INPUT_LEN);
            }
            input
        };
        assert_eq!(run(3), run(3));
    }
}
