//! Redis backend: groups (`imd:group:*`), super-group timelines (`imd:gtl:*`) and the
//! original `group_manager_stream` events, written in the same script as each change.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::RedisStore;
use super::messages::parse_appended;
use super::scripts::{
    ADD_MEMBERS, CREATE_GROUP, DELETE_GROUP, INBOX_AFTER, REMOVE_MEMBERS, RENAME_GROUP,
    UPDATE_MEMBER, UPGRADE_GROUP,
};
use crate::domain::{AppId, GroupId, Uid, UserKey, parse_id};
use crate::store::{
    Appended, GroupEvent, GroupRecord, MemberRecord, StoreError, StoreResult, keys,
};

/// More members than this in one script go over a dedicated connection.
const BULK: usize = 256;

fn events_json(gid: GroupId, events: &[GroupEvent]) -> String {
    let all: Vec<Vec<String>> = events.iter().map(|e| e.fields(gid)).collect();
    serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
}

impl RedisStore {
    pub async fn create_group(&self, r: &GroupRecord) -> StoreResult<Option<GroupId>> {
        let mut inv = CREATE_GROUP.prepare_invoke();
        inv.key(keys::GROUP_IDS)
            .arg(r.id.0)
            .arg(r.app.0)
            .arg(&r.name)
            .arg(r.master.0)
            .arg(u8::from(r.is_super));
        for m in &r.members {
            inv.arg(m.uid.0).arg(m.encode());
        }
        let id: u64 = self.eval(&inv, r.members.len() > BULK).await?;
        Ok((id != 0).then_some(GroupId(id)))
    }

    pub async fn load_group(&self, gid: GroupId) -> StoreResult<Option<GroupRecord>> {
        let mut c = self.conn()?;
        let (meta, members): (HashMap<String, String>, HashMap<String, String>) = self
            .run(
                redis::pipe()
                    .hgetall(keys::group(gid))
                    .hgetall(keys::group_members(gid))
                    .query_async(&mut c),
            )
            .await?;
        if meta.is_empty() {
            return Ok(None);
        }
        let corrupt = |what: &str| StoreError::Corrupt(format!("group {gid}: {what}"));
        let field = |k: &str| meta.get(k).ok_or_else(|| corrupt(k));
        let app = parse_id(field("app")?).map_err(|_| corrupt("app"))?;
        let master = parse_id(field("master")?).map_err(|_| corrupt("master"))?;
        let mut list: Vec<MemberRecord> = members
            .iter()
            .filter_map(|(uid, v)| MemberRecord::decode(Uid(parse_id(uid).ok()?), v))
            .collect();
        list.sort_unstable_by_key(|m| m.uid);
        Ok(Some(GroupRecord {
            id: gid,
            app: AppId(app),
            name: meta.get("name").cloned().unwrap_or_default(),
            master: Uid(master),
            is_super: meta.get("super").is_some_and(|s| s == "1"),
            members: list,
        }))
    }

    pub async fn rename_group(&self, gid: GroupId, name: &str) -> StoreResult<()> {
        let mut inv = RENAME_GROUP.prepare_invoke();
        inv.key(keys::group(gid)).arg(name);
        let _: i64 = self.eval(&inv, false).await?;
        Ok(())
    }

    pub async fn upgrade_group(&self, gid: GroupId, events: &[GroupEvent]) -> StoreResult<()> {
        let mut inv = UPGRADE_GROUP.prepare_invoke();
        inv.key(keys::group(gid)).arg(events_json(gid, events));
        let _: i64 = self.eval(&inv, false).await?;
        Ok(())
    }

    pub async fn delete_group(&self, gid: GroupId, events: &[GroupEvent]) -> StoreResult<()> {
        let mut inv = DELETE_GROUP.prepare_invoke();
        inv.key(keys::group(gid))
            .key(keys::group_members(gid))
            .key(keys::timeline(gid))
            .key(keys::timeline_seq(gid))
            .arg(events_json(gid, events));
        let _: i64 = self.eval(&inv, false).await?;
        Ok(())
    }

    pub async fn add_members(
        &self,
        gid: GroupId,
        members: &[MemberRecord],
        events: &[GroupEvent],
    ) -> StoreResult<()> {
        let mut inv = ADD_MEMBERS.prepare_invoke();
        inv.key(keys::group(gid))
            .key(keys::group_members(gid))
            .arg(events_json(gid, events));
        for m in members {
            inv.arg(m.uid.0).arg(m.encode());
        }
        let _: i64 = self.eval(&inv, members.len() > BULK).await?;
        Ok(())
    }

    pub async fn remove_members(
        &self,
        gid: GroupId,
        members: &[Uid],
        events: &[GroupEvent],
    ) -> StoreResult<()> {
        let mut inv = REMOVE_MEMBERS.prepare_invoke();
        inv.key(keys::group(gid))
            .key(keys::group_members(gid))
            .arg(events_json(gid, events));
        for m in members {
            inv.arg(m.0);
        }
        let _: i64 = self.eval(&inv, members.len() > BULK).await?;
        Ok(())
    }

    pub async fn update_member(
        &self,
        app: AppId,
        gid: GroupId,
        member: &MemberRecord,
        events: &[GroupEvent],
    ) -> StoreResult<()> {
        let user = UserKey::new(app, member.uid);
        let mut inv = UPDATE_MEMBER.prepare_invoke();
        inv.key(keys::group(gid))
            .key(keys::group_members(gid))
            .key(keys::user(user))
            .key(keys::user_group_dnd(user))
            .key(keys::conversations_dnd(user))
            .arg(events_json(gid, events))
            .arg(member.uid.0)
            .arg(member.encode())
            .arg(gid.0)
            .arg(u8::from(member.dnd));
        let _: i64 = self.eval(&inv, false).await?;
        Ok(())
    }

    pub async fn member(&self, gid: GroupId, uid: Uid) -> StoreResult<Option<MemberRecord>> {
        let mut c = self.conn()?;
        let v: Option<String> = self.run(c.hget(keys::group_members(gid), uid.0)).await?;
        Ok(v.and_then(|v| MemberRecord::decode(uid, &v)))
    }

    pub async fn append_timeline(
        &self,
        gid: GroupId,
        body: &str,
        idempotency: Option<(&str, u64)>,
    ) -> StoreResult<Appended> {
        let timeline = std::iter::once((keys::timeline_seq(gid), keys::timeline(gid)));
        let inv = self.append_invocation(timeline, body, idempotency, "group_seq", None);
        parse_appended(self.eval(&inv, false).await?)
    }

    pub async fn timeline_after(
        &self,
        gid: GroupId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut inv = INBOX_AFTER.prepare_invoke();
        inv.key(keys::timeline_seq(gid))
            .key(keys::timeline(gid))
            .arg(after)
            .arg(u64::MAX / 2)
            .arg(limit);
        self.eval(&inv, false).await
    }

    pub async fn timeline_seq(&self, gid: GroupId) -> StoreResult<u64> {
        let mut c = self.conn()?;
        let v: Option<u64> = self.run(c.get(keys::timeline_seq(gid))).await?;
        Ok(v.unwrap_or(0))
    }
}
