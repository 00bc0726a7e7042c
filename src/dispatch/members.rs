//! A group's members in memory, compact: parallel sorted vectors (13 bytes per member: uid,
//! join time, flags) instead of one heap object per member; nicknames, which few members set,
//! in a side map.

use std::collections::HashMap;

use crate::domain::Uid;
use crate::store::MemberRecord;

const MUTE: u8 = 1;
const DND: u8 = 2;

#[derive(Default, Clone)]
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

/// Collects members page by page as a group loads (pages come in any order, possibly with
/// repeats), 16 bytes a member until `finish` sorts them into the compact table.
#[derive(Default)]
pub struct MembersBuilder {
    rows: Vec<(u64, u32, u8)>,
    nicknames: Vec<(u64, Box<str>)>,
}

impl MembersBuilder {
    pub fn extend(&mut self, page: Vec<MemberRecord>) {
        self.rows.reserve(page.len());
        for r in page {
            self.rows
                .push((r.uid.0, joined(r.joined_at), flags(r.mute, r.dnd)));
            if let Some(n) = r.nickname {
                self.nicknames.push((r.uid.0, n.into()));
            }
        }
    }

    pub fn finish(mut self) -> Members {
        self.rows.sort_unstable_by_key(|r| r.0);
        self.rows.dedup_by_key(|r| r.0);
        let mut m = Members {
            uids: self.rows.iter().map(|r| r.0).collect(),
            joined: self.rows.iter().map(|r| r.1).collect(),
            flags: self.rows.iter().map(|r| r.2).collect(),
            nicknames: None,
        };
        for (uid, n) in self.nicknames {
            m.nicknames_mut().insert(uid, n);
        }
        m
    }
}

impl Members {
    #[cfg(test)]
    pub fn from_records(records: Vec<MemberRecord>) -> Members {
        let mut b = MembersBuilder::default();
        b.extend(records);
        b.finish()
    }

    /// The uids of `sorted` (ascending) that are members, in order: a galloping merge, so
    /// 10,000 candidates against 1,000,000 members cost about 10,000 short searches in nearby
    /// memory, not 10,000 binary searches over the whole table.
    pub fn present<'a>(&'a self, sorted: &'a [u64]) -> impl Iterator<Item = Uid> + 'a {
        let mut from = 0;
        sorted.iter().filter_map(move |&uid| {
            let rest = &self.uids[from.min(self.uids.len())..];
            let mut step = 1;
            while step < rest.len() && rest[step] < uid {
                step *= 2;
            }
            let window = &rest[..rest.len().min(step + 1)];
            let at = window.partition_point(|u| *u < uid);
            from += at;
            (self.uids.get(from) == Some(&uid)).then_some(Uid(uid))
        })
    }

    /// Up to `limit` members with a uid above `after`, and whether more follow.
    pub fn page(&self, after: u64, limit: usize) -> (impl Iterator<Item = Member> + '_, bool) {
        let start = self.uids.partition_point(|u| *u <= after);
        let end = start.saturating_add(limit).min(self.uids.len());
        ((start..end).map(|i| self.at(i)), end < self.uids.len())
    }

    /// Who becomes master when the current one leaves with `leaving`: the longest-standing of
    /// the others (earliest join; on a tie the lowest uid). `None` when nobody stays.
    pub fn successor(&self, leaving: &[Uid]) -> Option<Uid> {
        let gone: std::collections::HashSet<u64> = leaving.iter().map(|u| u.0).collect();
        (0..self.uids.len())
            .filter(|i| !gone.contains(&self.uids[*i]))
            .min_by_key(|i| (self.joined[*i], self.uids[*i]))
            .map(|i| Uid(self.uids[i]))
    }

    fn nicknames_mut(&mut self) -> &mut HashMap<u64, Box<str>> {
        self.nicknames.get_or_insert_with(Default::default)
    }

    pub fn len(&self) -> usize {
        self.uids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
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
    #[cfg(test)]
    pub fn insert(&mut self, new: &[MemberRecord]) {
        *self = self.merged(new);
    }

    /// A copy with the new members in (existing ones are left as they are): what a group
    /// shares with its push streams is replaced, not copied and then changed.
    pub fn merged(&self, new: &[MemberRecord]) -> Members {
        let mut fresh: Vec<&MemberRecord> = new.iter().filter(|m| !self.contains(m.uid)).collect();
        fresh.sort_unstable_by_key(|m| m.uid);
        fresh.dedup_by_key(|m| m.uid);
        let mut out = Members {
            nicknames: self.nicknames.clone(),
            ..Members::default()
        };
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
            joined.push(self::joined(m.joined_at));
            fl.push(flags(m.mute, m.dnd));
            if let Some(n) = &m.nickname {
                out.nicknames_mut().insert(m.uid.0, n.as_str().into());
            }
        }
        uids.extend_from_slice(&self.uids[old..]);
        joined.extend_from_slice(&self.joined[old..]);
        fl.extend_from_slice(&self.flags[old..]);
        (out.uids, out.joined, out.flags) = (uids, joined, fl);
        out
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

/// Join time as stored in the table (seconds, saturating in 2106).
fn joined(at: u64) -> u32 {
    at.min(u64::from(u32::MAX)) as u32
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
    fn present_finds_exactly_the_members_among_sorted_candidates() {
        let m = Members::from_records((1..=1000).map(|u| rec(u * 3)).collect());
        let candidates: Vec<u64> = (0..=3100).collect();
        let found: Vec<u64> = m.present(&candidates).map(|u| u.0).collect();
        assert_eq!(found, (1..=1000).map(|u| u * 3).collect::<Vec<_>>());
        assert_eq!(m.present(&[1, 2, 4, 3001]).count(), 0);
        assert_eq!(
            m.present(&[3000]).map(|u| u.0).collect::<Vec<_>>(),
            vec![3000]
        );
    }

    #[test]
    fn pages_cover_the_members_once_and_the_successor_is_the_oldest() {
        let mut records: Vec<MemberRecord> = (1..=25).map(rec).collect();
        records[9].joined_at = 50; // uid 10 joined first
        let m = Members::from_records(records);
        let (mut after, mut seen) = (0, Vec::new());
        loop {
            let (page, more) = m.page(after, 10);
            let page: Vec<u64> = page.map(|x| x.uid.0).collect();
            after = *page.last().unwrap_or(&after);
            seen.extend(page);
            if !more {
                break;
            }
        }
        assert_eq!(seen, (1..=25).collect::<Vec<_>>());
        assert_eq!(m.successor(&[Uid(1)]), Some(Uid(10)));
        assert_eq!(
            m.successor(&[Uid(10)]),
            Some(Uid(1)),
            "ties: the lowest uid"
        );
        let all: Vec<Uid> = (1..=25).map(Uid).collect();
        assert_eq!(m.successor(&all), None);
    }

    #[test]
    fn a_large_group_costs_about_thirteen_bytes_a_member() {
        let m = Members::from_records((1..=100_000).map(rec).collect());
        assert_eq!(m.len(), 100_000);
        assert!(heap_bytes(&m) <= 100_000 * 13 + 64, "{}", heap_bytes(&m));
    }
}
