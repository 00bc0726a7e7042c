//! Memory backend: groups, members and super-group timelines.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::MemoryStore;
use crate::domain::{AppId, GroupId, Uid};
use crate::store::{Appended, GroupEvent, GroupRecord, MemberRecord, StoreResult};

pub(super) struct GroupRow {
    app: AppId,
    name: String,
    master: Uid,
    is_super: bool,
    members: BTreeMap<Uid, MemberRecord>,
}

impl MemoryStore {
    pub async fn create_group(&self, r: &GroupRecord) -> StoreResult<Option<GroupId>> {
        let mut id = r.id;
        if id.0 == 0 {
            loop {
                id = GroupId(self.next_group.fetch_add(1, Ordering::Relaxed));
                if !self.groups.contains_key(&id) {
                    break;
                }
            }
        }
        let row = GroupRow {
            app: r.app,
            name: r.name.clone(),
            master: r.master,
            is_super: r.is_super,
            members: r.members.iter().map(|m| (m.uid, m.clone())).collect(),
        };
        match self.groups.entry(id) {
            dashmap::Entry::Occupied(_) => Ok(None),
            dashmap::Entry::Vacant(v) => {
                v.insert(row);
                Ok(Some(id))
            }
        }
    }

    pub async fn load_group(&self, gid: GroupId) -> StoreResult<Option<GroupRecord>> {
        Ok(self.groups.get(&gid).map(|g| GroupRecord {
            id: gid,
            app: g.app,
            name: g.name.clone(),
            master: g.master,
            is_super: g.is_super,
            members: g.members.values().cloned().collect(),
        }))
    }

    pub async fn rename_group(&self, gid: GroupId, name: &str) -> StoreResult<()> {
        if let Some(mut g) = self.groups.get_mut(&gid) {
            g.name = name.to_string();
        }
        Ok(())
    }

    pub async fn upgrade_group(&self, gid: GroupId, _: &[GroupEvent]) -> StoreResult<()> {
        if let Some(mut g) = self.groups.get_mut(&gid) {
            g.is_super = true;
        }
        Ok(())
    }

    pub async fn delete_group(&self, gid: GroupId, _: &[GroupEvent]) -> StoreResult<()> {
        self.groups.remove(&gid);
        self.timelines.remove(&gid);
        Ok(())
    }

    pub async fn add_members(
        &self,
        gid: GroupId,
        members: &[MemberRecord],
        _: &[GroupEvent],
    ) -> StoreResult<()> {
        if let Some(mut g) = self.groups.get_mut(&gid) {
            for m in members {
                g.members.entry(m.uid).or_insert_with(|| m.clone());
            }
        }
        Ok(())
    }

    pub async fn remove_members(
        &self,
        gid: GroupId,
        members: &[Uid],
        _: &[GroupEvent],
    ) -> StoreResult<()> {
        if let Some(mut g) = self.groups.get_mut(&gid) {
            for m in members {
                g.members.remove(m);
            }
        }
        Ok(())
    }

    pub async fn update_member(
        &self,
        _: AppId,
        gid: GroupId,
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

    pub async fn member(&self, gid: GroupId, uid: Uid) -> StoreResult<Option<MemberRecord>> {
        Ok(self
            .groups
            .get(&gid)
            .and_then(|g| g.members.get(&uid).cloned()))
    }

    pub async fn append_timeline(
        &self,
        gid: GroupId,
        body: &str,
        idempotency: Option<(&str, u64)>,
    ) -> StoreResult<Appended> {
        self.append_with(None, idempotency, |id| {
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
        gid: GroupId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        Ok(self
            .timelines
            .get(&gid)
            .map(|t| t.after(after, u64::MAX, limit))
            .unwrap_or_default())
    }

    pub async fn timeline_seq(&self, gid: GroupId) -> StoreResult<u64> {
        Ok(self.timelines.get(&gid).map_or(0, |t| t.seq))
    }
}
