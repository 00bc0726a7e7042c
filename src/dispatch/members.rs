//! A group's members in memory, compact: parallel sorted vectors (13 bytes per member: uid,
//! join time, flags) instead of one heap object per member; nicknames, which few members set,
//! in a side map.

use std::collections::HashMap;

use crate::domain::Uid;
use crate::store::MemberRecord;

const MUTE: u8 = 1;
const DND: u8 = 2;

#[derive(Default)]
pub struct Members {
    /// Ascending.
    uids: Vec<u64>,
    /// Join time (seconds since the epoch), parallel to `uids`.
    joined: Vec<u32>,
    /// `MUTE` | `DND`, parallel to `uids`.
    flags: Vec<u8>,
    /// Allocated only once some member has a nickname (most groups have none). Boxed: an
    /// empty `HashMap` is 48 bytes inline in every loaded group, the box 8.
    #[allow(clippy::box_collection)]
    nicknames: Option<Box<HashMap<u64, Box<str>>>>,
}

/// One member as the group sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub uid: Uid,
    pub joined_at: u64,
    pub mute: bool,
    pub dnd: bool,
}

impl Members {
    pub fn from_records(mut records: Vec<MemberRecord>) -> Members {
        records.sort_unstable_by_key(|m| m.uid);
        records.dedup_by_key(|m| m.uid);
        let mut m = Members::default();
        m.uids.reserve_exact(records.len());
        m.joined.reserve_exact(records.len());
        m.flags.reserve_exact(records.len());
        for r in records {
            m.uids.push(r.uid.0);
            m.joined.push(r.joined_at.min(u64::from(u32::MAX)) as u32);
            m.flags.push(flags(r.mute, r.dnd));
            if let Some(n) = r.nickname {
                m.nicknames_mut().insert(r.uid.0, n.into());
            }
        }
        m
    }

    fn nicknames_mut(&mut self) -> &mut HashMap<u64, Box<str>> {
        self.nicknames.get_or_insert_with(Default::default)
    }

    pub fn len(&self) -> usize {
        self.uids.len()
    }

    fn find(&self, uid: Uid) -> Option<usize> {
        self.uids.binary_search(&uid.0).ok()
    }

    pub fn contains(&self, uid: Uid) -> bool {
        self.find(uid).is_some()
    }

    pub fn get(&self, uid: Uid) -> Option<Member> {
        self.find(uid).map(|i| self.at(i))
    }

    fn at(&self, i: usize) -> Member {
        Member {
            uid: Uid(self.uids[i]),
            joined_at: u64::from(self.joined[i]),
            mute: self.flags[i] & MUTE != 0,
            dnd: self.flags[i] & DND != 0,
        }
    }

    pub fn nickname(&self, uid: Uid) -> Option<&str> {
        self.nicknames.as_ref()?.get(&uid.0).map(|n| &**n)
    }

    pub fn iter(&self) -> impl Iterator<Item = Member> + '_ {
        (0..self.uids.len()).map(|i| self.at(i))
    }

    pub fn uids(&self) -> impl Iterator<Item = Uid> + '_ {
        self.uids.iter().map(|u| Uid(*u))
    }

    /// Inserts new members (existing ones are left as they are).
    pub fn insert(&mut self, new: &[MemberRecord]) {
        let mut fresh: Vec<&MemberRecord> = new.iter().filter(|m| !self.contains(m.uid)).collect();
        fresh.sort_unstable_by_key(|m| m.uid);
        fresh.dedup_by_key(|m| m.uid);
        if fresh.is_empty() {
            return;
        }
        // Merge two sorted runs: O(n + k) for a batch, not O(n·k).
        let total = self.uids.len() + fresh.len();
        let (mut uids, mut joined, mut fl) = (
            Vec::with_capacity(total),
            Vec::with_capacity(total),
            Vec::with_capacity(total),
        );
        let mut old = 0;
        for m in fresh {
            while old < self.uids.len() && self.uids[old] < m.uid.0 {
                uids.push(self.uids[old]);
                joined.push(self.joined[old]);
                fl.push(self.flags[old]);
                old += 1;
            }
            uids.push(m.uid.0);
            joined.push(m.joined_at.min(u64::from(u32::MAX)) as u32);
            fl.push(flags(m.mute, m.dnd));
            if let Some(n) = &m.nickname {
                self.nicknames_mut().insert(m.uid.0, n.as_str().into());
            }
        }
        uids.extend_from_slice(&self.uids[old..]);
        joined.extend_from_slice(&self.joined[old..]);
        fl.extend_from_slice(&self.flags[old..]);
        (self.uids, self.joined, self.flags) = (uids, joined, fl);
    }

    /// Removes members; returns the ones that were members.
    pub fn remove(&mut self, gone: &[Uid]) -> Vec<Uid> {
        let mut removed: Vec<Uid> = gone.iter().copied().filter(|u| self.contains(*u)).collect();
        removed.sort_unstable();
        removed.dedup();
        if removed.is_empty() {
            return removed;
        }
        let mut keep = 0;
        for i in 0..self.uids.len() {
            if removed.binary_search(&Uid(self.uids[i])).is_err() {
                self.uids[keep] = self.uids[i];
                self.joined[keep] = self.joined[i];
                self.flags[keep] = self.flags[i];
                keep += 1;
            }
        }
        self.uids.truncate(keep);
        self.joined.truncate(keep);
        self.flags.truncate(keep);
        for u in &removed {
            if let Some(n) = &mut self.nicknames {
                n.remove(&u.0);
            }
        }
        removed
    }

    /// Applies new settings to a member.
    pub fn set(&mut self, uid: Uid, mute: bool, dnd: bool, nickname: Option<&str>) {
        if let Some(i) = self.find(uid) {
            self.flags[i] = flags(mute, dnd);
            match nickname {
                Some(n) => self.nicknames_mut().insert(uid.0, n.into()),
                None => self.nicknames.as_mut().and_then(|m| m.remove(&uid.0)),
            };
        }
    }
}

fn flags(mute: bool, dnd: bool) -> u8 {
    (if mute { MUTE } else { 0 }) | (if dnd { DND } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(uid: u64) -> MemberRecord {
        MemberRecord::new(Uid(uid), 100, 0)
    }

    /// Heap bytes held: what the compact layout is for.
    fn heap_bytes(m: &Members) -> usize {
        m.uids.capacity() * 8
            + m.joined.capacity() * 4
            + m.flags.capacity()
            + m.nicknames.as_ref().map_or(0, |n| {
                48 + n.capacity() * 32 + n.values().map(|v| v.len()).sum::<usize>()
            })
    }

    #[test]
    fn insert_merges_keeps_order_and_ignores_existing() {
        let mut m = Members::from_records(vec![rec(5), rec(1), rec(9)]);
        let mut again = rec(5);
        again.mute = true;
        m.insert(&[rec(7), again, rec(2), rec(7)]);
        assert_eq!(
            m.uids().map(|u| u.0).collect::<Vec<_>>(),
            vec![1, 2, 5, 7, 9]
        );
        assert!(
            !m.get(Uid(5)).unwrap().mute,
            "existing members are not overwritten"
        );
        assert_eq!(m.remove(&[Uid(2), Uid(3), Uid(9)]), vec![Uid(2), Uid(9)]);
        assert_eq!(m.uids().map(|u| u.0).collect::<Vec<_>>(), vec![1, 5, 7]);
        m.set(Uid(7), true, true, Some("seven"));
        assert_eq!(m.get(Uid(7)).map(|x| (x.mute, x.dnd)), Some((true, true)));
        assert_eq!(m.nickname(Uid(7)), Some("seven"));
    }

    #[test]
    fn a_large_group_costs_about_thirteen_bytes_a_member() {
        let m = Members::from_records((1..=100_000).map(rec).collect());
        assert_eq!(m.len(), 100_000);
        assert!(heap_bytes(&m) <= 100_000 * 13 + 64, "{}", heap_bytes(&m));
    }
}
