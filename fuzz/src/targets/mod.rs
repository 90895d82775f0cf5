//! The fuzz targets: each feeds one input to product code and checks what must hold whatever
//! the input (a panic is caught by the runner; a broken invariant is returned here).

mod calculator;
mod readings;
mod registry;

/// One thing an input did, coarsely (accepted, refused for which kind of reason, which error a
/// registry entry got). An input that does something no earlier input did joins the mutation
/// pool: a cheap stand-in for the coverage feedback that stable Rust lacks.
pub type Outcome = u64;

/// An invariant an input broke, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

/// A fuzz target. Its name is also its corpus folder (`fuzz/corpus/<name>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `parse_meter_payload`: one reading on a meter's topic.
    MeterPayload,
    /// `parse_gateway_payload`: an array of readings from a data concentrator.
    GatewayPayload,
    /// `parse_document` and `validate`, over nothing and over the contract's registry, then
    /// the detector's topology of whatever validates.
    Registry,
    /// The compliance calculator, under the shipped regulation or profiles in the input.
    Calculator,
}

impl Target {
    /// Every target, in the order the script runs them.
    pub const ALL: [Target; 4] = [
        Target::MeterPayload,
        Target::GatewayPayload,
        Target::Registry,
        Target::Calculator,
    ];

    /// The target's name, as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::MeterPayload => "meter_payload",
            Target::GatewayPayload => "gateway_payload",
            Target::Registry => "registry",
            Target::Calculator => "calculator",
        }
    }

    /// The target named `name`.
    pub fn parse(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs the target on `input`, returning what it did.
    pub fn run(self, input: &[u8]) -> Result<Vec<Outcome>, Violation> {
        match self {
            Target::MeterPayload => readings::meter_payload(input),
            Target::GatewayPayload => readings::gateway_payload(input),
            Target::Registry => registry::registry(input),
            Target::Calculator => calculator::calculator(input),
        }
    }
}

/// `Err` with `message` unless `holds`.
fn ensure(holds: bool, message: impl FnOnce() -> String) -> Result<(), Violation> {
    if holds {
        Ok(())
    } else {
        Err(Violation(message()))
    }
}

/// The shape of a message: its text up to the first quote, backtick or digit (where the
/// input's own values begin), so that messages differing only in those count as one.
pub fn shape(message: &str) -> &str {
    let end = message
        .find(|c: char| matches!(c, '"' | '`' | '\'') || c.is_ascii_digit())
        .unwrap_or(message.len());
    let end = (0..=end.min(64))
        .rev()
        .find(|&i| message.is_char_boundary(i))
        .unwrap_or(0);
    &message[..end]
}

/// FNV-1a over `parts`, with a separator so that ("ab", "c") and ("a", "bc") differ.
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
