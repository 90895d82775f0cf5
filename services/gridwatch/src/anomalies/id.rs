//! Anomaly identifiers: `an_` and 26 characters of Crockford base32, ULID-like: 48 bits of
//! milliseconds since the Unix epoch, then 80 random bits. They sort by creation time as text,
//! and two processes creating anomalies at once never collide in practice.

use rand::RngCore;

/// Crockford's base32 alphabet (no I, L, O, U).
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new anomaly identifier, such as `an_01JABCDEF...`.
pub fn new_anomaly_id() -> String {
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u128;
    let mut random = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    let random = random
        .iter()
        .fold(0u128, |acc, byte| (acc << 8) | u128::from(*byte));
    format!("an_{}", encode((millis & ((1 << 48) - 1)) << 80 | random))
}

/// 128 bits as 26 base32 characters, most significant first (the top two bits are zero).
fn encode(value: u128) -> String {
    (0..26)
        .rev()
        .map(|i| char::from(CROCKFORD[((value >> (5 * i)) & 0x1f) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_shape_and_sort_by_time() {
        let id = new_anomaly_id();
        assert_eq!(id.len(), 29, "{id}");
        assert!(id.starts_with("an_01") || id.starts_with("an_02"), "{id}");
        assert!(id[3..].bytes().all(|b| CROCKFORD.contains(&b)), "{id}");
        assert_ne!(new_anomaly_id(), new_anomaly_id());
        assert_eq!(encode(0), "0".repeat(26));
        assert_eq!(encode(u128::MAX), format!("7{}", "Z".repeat(25)));
        let earlier = encode(1 << 80);
        let later = encode(2 << 80);
        assert!(earlier < later);
    }
}
