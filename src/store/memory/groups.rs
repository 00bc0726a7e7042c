//! Memory backend: groups, members, the per-user index of super groups and super-group
//! timelines. Every operation runs under one table entry's lock, so each is atomic however
//! many members it touches.

use std::collections::{BTreeMap, BTreeSet};

use super::MemoryStore;
use crate::domain::{AppId, GroupId, GroupKey, Uid, UserKey};
use crate::store::{Appended, GroupEvent, GroupRecord, MEMBERS_PAGE, MemberRecord, StoreResult};

pub(super) struct GroupRow {
    app: AppId,
    name: String,
    master: Uid,
    is_super: bool,
    members: BTreeMap<Uid, MemberRecord>,
}

impl GroupRow {
    fn record(&self, gid: GroupKey) -> GroupRecord {
        GroupRecord {
            id: gid.id,
            app: self.app,
            name: self.name.clone(),
            master: self.master,
            is_super: self.is_super,
            members: Vec::new(),
        }
    }
}

impl MemoryStore {
    /// Enters (`on`) or removes `gid` in the `user_groups` of `uids`.
    fn index(&self, gid: GroupKey, uids: impl Iterator<Item = Uid>, on: bool) {
        let (app, gid) = (gid.app, gid.id);
        for uid in uids {
            let user = UserKey::new(app, uid);
            if on {
                self.user_groups.entry(user).or_default().insert(gid);
            } else if let dashmap::Entry::Occupied(mut e) = self.user_groups.entry(user) {
                e.get_mut().remove(&gid);
                if e.get().is_empty() {
                    e.remove();
                }
            }
        }
    }

    pub async fn create_group(&self, r: &GroupRecord) -> StoreResult<Option<GroupId>> {
        let mut id = GroupKey::new(r.app, r.id);
        if id.id.0 == 0 {
            loop {
                id.id = GroupId(self.next_group.take(r.app, 1));
                if !self.groups.contains_key(&id) {
                    break;
                }
            }
        }
        let mut members = BTreeMap::new();
        for m in &r.members {
            members.entry(m.uid).or_insert_with(|| m.clone()); // the first of a repeated uid
        }
        let row = GroupRow {
            app: r.app,
            name: r.name.clone(),
            master: r.master,
            is_super: r.is_super,
            members,
        };
        match self.groups.entry(id) {
            dashmap::Entry::Occupied(_) => Ok(None),
            dashmap::Entry::Vacant(v) => {
                if r.is_super {
                    self.index(id, row.members.keys().copied(), true);
                }
                v.insert(row);
                Ok(Some(id.id))
            }
        }
    }

    pub async fn group_meta(&self, gid: GroupKey) -> StoreResult<Option<GroupRecord>> {
        Ok(self.groups.get(&gid).map(|g| g.record(gid)))
    }

    /// Pages in uid order, each taken under the group's entry lock.
    pub async fn load_members(
        &self,
        gid: GroupKey,
        _: bool,
        mut each: impl FnMut(Vec<MemberRecord>),
    ) -> StoreResult<()> {
        let mut from = Uid(0);
        loop {
            let Some(g) = self.groups.get(&gid) else {
                return Ok(());
            };
            let mut rest = g.members.range(from..);
            let page: Vec<MemberRecord> = rest
                .by_ref()
                .take(MEMBERS_PAGE)
                .map(|(_, m)| m.clone())
                .collect();
            let next = rest.next().map(|(uid, _)| *uid);
            drop(g);
            each(page);
            match next {
                Some(uid) => from = uid,
                None => return Ok(()),
            }
        }
    }

    pub async fn rename_group(&self, gid: GroupKey, name: &str) -> StoreResult<()> {
        if let Some(mut g) = self.groups.get_mut(&gid) {
            g.name = name.to_string();
        }
        Ok(())
    }

    pub async fn upgrade_group(&self, gid: GroupKey, _: &[GroupEvent]) -> StoreResult<()> {
        if let Some(mut g) = self.groups.get_mut(&gid)
            && !g.is_super
        {
            g.is_super = true;
            self.index(gid, g.members.keys().copied(), true);
        }
        Ok(())
    }

    pub async fn delete_group(&self, gid: GroupKey, _: &[GroupEvent]) -> StoreResult<()> {
        if let Some((_, g)) = self.groups.remove(&gid)
            && g.is_super
        {
            self.index(gid, g.members.keys().copied(), false);
        }
        self.timelines.remove(&gid);
        Ok(())
    }

    pub async fn add_members(&self, gid: GroupKey, members: &[MemberRecord]) -> StoreResult<()> {
        if let Some(mut g) = self.groups.get_mut(&gid) {
            let mut added = Vec::new();
            for m in members {
                if let std::collections::btree_map::Entry::Vacant(v) = g.members.entry(m.uid) {
                    v.insert(m.clone());
                    added.push(m.uid);
                }
            }
            if g.is_super {
                self.index(gid, added.into_iter(), true);
            }
        }
        Ok(())
    }

    pub async fn remove_members(
        &self,
        gid: GroupKey,
        members: &[Uid],
        master: Option<Uid>,
    ) -> StoreResult<()> {
        if let Some(mut g) = self.groups.get_mut(&gid) {
            let removed: Vec<Uid> = members
                .iter()
                .filter(|u| g.members.remove(u).is_some())
                .copied()
                .collect();
            if let Some(master) = master {
                g.master = master;
            }
            if g.is_super {
                self.index(gid, removed.into_iter(), false);
            }
        }
        Ok(())
    }

    pub async fn user_groups(&self, user: UserKey) -> StoreResult<Vec<GroupId>> {
        Ok(self
            .user_groups
            .get(&user)
            .map(|g| g.iter().copied().collect())
            .unwrap_or_default())
    }

    pub async fn update_member(
        &self,
        gid: GroupKey,
        member: &MemberRecord,
        _: &[GroupEvent],
    ) -> StoreResult<()> {
        if let Some(mut g) = self.groups.get_mut(&gid)
            && let Some(m) = g.members.get_mut(&member.uid)
        {
            *m = member.clone();
        }
        Ok(())
    }

    pub async fn member(&self, gid: GroupKey, uid: Uid) -> StoreResult<Option<MemberRecord>> {
        Ok(self
            .groups
            .get(&gid)
            .and_then(|g| g.members.get(&uid).cloned()))
    }

    pub async fn append_timeline(
        &self,
        gid: GroupKey,
        body: &str,
        idempotency: Option<(&str, u64)>,
        _: Option<u64>,
    ) -> StoreResult<Appended> {
        self.append_with(gid.app, None, idempotency, |id| {
            vec![
                self.timelines
                    .entry(gid)
                    .or_default()
                    .push(id, "group_seq", body, self.inbox_len),
            ]
        })
    }

    pub async fn timeline_after(
        &self,
        gid: GroupKey,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        Ok(self
            .timelines
            .get(&gid)
            .map(|t| t.after(after, u64::MAX, limit))
            .unwrap_or_default())
    }

    pub async fn timeline_seq(&self, gid: GroupKey) -> StoreResult<u64> {
        Ok(self.timelines.get(&gid).map_or(0, |t| t.seq))
    }
}

/// The groups one user is in (the memory store's `user_groups` table).
pub(super) type UserGroups = BTreeSet<GroupId>;
