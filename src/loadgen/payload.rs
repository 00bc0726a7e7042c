//! What travels inside a message's `content`: the send time, a sequence number and the sender,
//! so a receiver can measure latency and detect loss and duplicates without any other channel.
//!
//! The server stores `content` as a string and delivers it back unchanged, so the payload is the
//! JSON text `{"t":<unix µs>,"n":<seq>,"s":<sender>,"r":<run id>}`; `r` keeps messages of
//! another run (or a group notification) from being counted as ours.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// One message as the generator sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Payload {
    /// Send time, microseconds since the Unix epoch (the same clock the receiver reads).
    pub t: u64,
    /// Sequence number, unique within a run: the key for loss and duplicate accounting.
    pub n: u64,
    /// Sending uid.
    pub s: u64,
    /// Run id.
    pub r: u64,
}

impl Payload {
    pub fn encode(&self) -> String {
        format!(
            r#"{{"t":{},"n":{},"s":{},"r":{}}}"#,
            self.t, self.n, self.s, self.r
        )
    }

    /// `content` read as a payload: by a byte scan when it is in the shape `encode` writes,
    /// by serde_json otherwise.
    pub fn decode(content: &str) -> Option<Payload> {
        super::scan::plain_payload(content.as_bytes())
            .or_else(|| serde_json::from_str(content).ok())
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A small, fast, non-cryptographic generator (SplitMix64) for picking random pairs and
/// members; each sender task seeds its own, so there is no shared state.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_survives_the_round_trip() {
        let p = Payload {
            t: 1_700_000_000_000_000,
            n: 42,
            s: 7,
            r: 9,
        };
        assert_eq!(Payload::decode(&p.encode()), Some(p));
        assert_eq!(Payload::decode(r#"{"create":{}}"#), None);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(10) < 10));
        assert_eq!(r.below(0), 0);
    }
}
