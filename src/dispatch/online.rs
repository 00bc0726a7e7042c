//! Which members of each super group are online: the index a super group's fan-out walks, so a
//! message to a 1,000,000-member group with 10,000 members online touches those 10,000, not
//! the million.
//!
//! Kept current from both sides, in an order that never misses an online member:
//! - **a user comes online**: its session publishes the first connection, then the user's super
//!   groups are read from the store (`Store::user_groups`, written by every membership script)
//!   and the user `enter`s them;
//! - **a member is added** (or a group created or upgraded): the store is written first, then
//!   the group `join`s the member if it has a connection. Either the user's read sees the new
//!   membership, or the add sees the connection — or both, which is harmless;
//! - **a member is removed**: the group takes it out (`leave`). A session that read its groups
//!   just before the removal may still enter the group afterwards, so the index is a superset:
//!   the group checks every candidate against its own member table at fan-out, and a removed
//!   member never receives a message;
//! - **the last connection closes**: the session takes the user out of every group (`leave_all`).
//!
//! `enter` and `join` check that the user still has a connection under the index's lock, the
//! same lock `leave_all` takes after the session dropped its last one: an entry is never left
//! behind for a user who went offline.
//!
//! One mutex over both tables: every operation is a few map updates, and a fan-out takes its
//! group's set as a shared sorted slice (made once after each change) instead of holding the
//! lock while it delivers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::{GroupId, GroupKey, Uid, UserKey};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One group's members online.
#[derive(Default)]
struct Online {
    uids: BTreeSet<u64>,
    /// `uids` as a sorted slice, made by the first fan-out after a change and shared by the
    /// ones after it: a message to a group whose online members did not change copies nothing.
    snapshot: Option<Arc<[u64]>>,
}

#[derive(Default)]
struct Tables {
    /// Super group → uids of its members with a live connection (and possibly a few former
    /// members, see the module docs). Groups with nobody online have no entry.
    groups: FastMap<GroupKey, Online>,
    /// User → the groups it was entered in, so that going offline takes it out of all of them.
    users: FastMap<UserKey, Vec<GroupKey>>,
}

#[derive(Default)]
pub struct OnlineIndex {
    tables: Mutex<Tables>,
}

impl OnlineIndex {
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `user` is online with these super groups (read after its first connection was
    /// published); ignored if `connected` says it has gone offline since.
    pub fn enter(&self, user: UserKey, gids: &[GroupId], connected: impl Fn() -> bool) {
        if gids.is_empty() {
            return;
        }
        let mut t = self.lock();
        if !connected() {
            return;
        }
        for gid in gids {
            t.add(GroupKey::new(user.app, *gid), user);
        }
    }

    /// `user` was just made a member of `gid`: entered if it has a connection.
    pub fn join(&self, gid: GroupKey, user: UserKey, connected: impl Fn() -> bool) {
        let mut t = self.lock();
        if connected() {
            t.add(gid, user);
        }
    }

    /// `user` is no longer a member of `gid`.
    pub fn leave(&self, gid: GroupKey, user: UserKey) {
        let mut t = self.lock();
        if let Some(groups) = t.users.get_mut(&user) {
            groups.retain(|g| *g != gid);
            if groups.is_empty() {
                t.users.remove(&user);
            }
        }
        t.remove(gid, user.uid);
    }

    /// `user` has no connection left.
    pub fn leave_all(&self, user: UserKey) {
        let mut t = self.lock();
        for gid in t.users.remove(&user).unwrap_or_default() {
            t.remove(gid, user.uid);
        }
    }

    /// The group is gone (its members' entries of it are dropped as they go offline).
    pub fn drop_group(&self, gid: GroupKey) {
        self.lock().groups.remove(&gid);
    }

    /// The online candidates of `gid`, ascending.
    pub fn snapshot(&self, gid: GroupKey) -> Arc<[u64]> {
        let mut t = self.lock();
        let Some(online) = t.groups.get_mut(&gid) else {
            return Arc::from(Vec::new());
        };
        online
            .snapshot
            .get_or_insert_with(|| online.uids.iter().copied().collect())
            .clone()
    }
}

impl Tables {
    fn add(&mut self, gid: GroupKey, user: UserKey) {
        let online = self.groups.entry(gid).or_default();
        if online.uids.insert(user.uid.0) {
            online.snapshot = None;
            self.users.entry(user).or_default().push(gid);
        }
    }

    fn remove(&mut self, gid: GroupKey, uid: Uid) {
        if let Some(online) = self.groups.get_mut(&gid)
            && online.uids.remove(&uid.0)
        {
            online.snapshot = None;
            if online.uids.is_empty() {
                self.groups.remove(&gid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AppId;

    fn user(uid: u64) -> UserKey {
        UserKey::new(AppId(7), Uid(uid))
    }

    fn g(gid: u64) -> GroupKey {
        GroupKey::new(AppId(7), GroupId(gid))
    }

    #[test]
    fn going_offline_leaves_every_group_however_it_was_entered() {
        let index = OnlineIndex::default();
        index.enter(user(1), &[GroupId(10), GroupId(11)], || true);
        index.join(g(12), user(1), || true);
        index.join(g(12), user(2), || false);
        index.enter(user(3), &[GroupId(10)], || true);
        assert_eq!(&*index.snapshot(g(10)), [1, 3]);
        assert_eq!(&*index.snapshot(g(12)), [1], "2 has no connection");
        let before = index.snapshot(g(10));
        assert!(
            Arc::ptr_eq(&before, &index.snapshot(g(10))),
            "shared while unchanged"
        );
        index.leave(g(10), user(3));
        assert_eq!(&*index.snapshot(g(10)), [1]);
        index.leave_all(user(1));
        for gid in [10, 11, 12] {
            assert!(index.snapshot(g(gid)).is_empty());
        }
        assert!(index.lock().users.is_empty());
    }
}
