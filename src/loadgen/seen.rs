//! One receiver's record of the sequence numbers it has had, to tell a first delivery from a
//! duplicate on every receipt.
//!
//! A run numbers its messages 0, 1, 2, … so a receiver of a group sees a dense range: a bitset,
//! one bit a message, is a word index and a mask per receipt (a hash set spent more CPU on this
//! than the rest of the accounting). A receiver that gets only a sparse few of many messages (a
//! peer run's) must not pay a bit for every message of the run, so the bitset grows only while
//! it holds at least one number per word on average; numbers beyond it go to a hash set, and
//! move into the bitset when it grows over them.

use std::collections::HashSet;

/// Words the bitset may always grow to (4,096 messages), however sparse.
const FREE_WORDS: usize = 64;

#[derive(Debug, Default)]
pub struct Seen {
    /// Bit `n % 64` of word `n / 64` is message `n`.
    words: Vec<u64>,
    /// The numbers beyond `words`.
    beyond: HashSet<u64>,
    /// Numbers recorded, in either.
    count: usize,
}

impl Seen {
    /// Records `n`; false if it was already there.
    pub fn insert(&mut self, n: u64) -> bool {
        let word = usize::try_from(n / 64).unwrap_or(usize::MAX);
        if word >= self.words.len() && word < FREE_WORDS.max(self.count) {
            self.grow(word + 1);
        }
        let fresh = match self.words.get_mut(word) {
            Some(w) => {
                let bit = 1u64 << (n % 64);
                let fresh = *w & bit == 0;
                *w |= bit;
                fresh
            }
            None => self.beyond.insert(n),
        };
        self.count += usize::from(fresh);
        fresh
    }

    /// At least `words` words, taking in the numbers of `beyond` they cover.
    fn grow(&mut self, words: usize) {
        self.words.resize(words.next_power_of_two(), 0);
        let covered = self.words.len() as u64 * 64;
        let words = &mut self.words;
        self.beyond.retain(|&n| {
            let inside = n < covered;
            if inside {
                words[(n / 64) as usize] |= 1 << (n % 64);
            }
            !inside
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_new_once() {
        let mut s = Seen::default();
        assert!(s.insert(0) && s.insert(63) && s.insert(64) && s.insert(4095));
        assert!(!s.insert(0) && !s.insert(63) && !s.insert(64) && !s.insert(4095));
        assert!(s.beyond.is_empty());
    }

    #[test]
    fn far_numbers_stay_known_as_the_bitset_grows_over_them() {
        let mut s = Seen::default();
        assert!(s.insert(u64::MAX) && s.insert(10_000));
        assert_eq!(
            s.beyond.len(),
            2,
            "a sparse receiver does not grow the bitset"
        );
        // Dense numbers up to 9,000 grow it over 10,000: that one moves in, still known.
        assert!((0..9_000).all(|n| s.insert(n)));
        assert!(s.words.len() * 64 > 10_000 && s.beyond.len() == 1);
        assert!(!s.insert(10_000) && !s.insert(u64::MAX) && !s.insert(8_999));
        assert!(s.insert(10_001));
    }
}
