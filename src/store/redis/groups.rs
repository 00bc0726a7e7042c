//! Redis backend: group settings (`imd:group:*`), super-group timelines (`imd:gtl:*`) and the
//! original `group_manager_stream` events, written in the same script as each change.
//! Creation and membership are in `members.rs`.

use redis::AsyncCommands;

use super::RedisStore;
use super::group_scripts::{DELETE_GROUP, MEMBER, RENAME_GROUP, UPDATE_MEMBER, UPGRADE_GROUP};
use super::messages::parse_appended;
use super::scripts::INBOX_AFTER;
use crate::domain::{AppId, GroupId, Uid, UserKey, parse_id};
use crate::store::{Appended, GroupEvent, MemberRecord, StoreResult, keys};

fn events_json(gid: GroupId, events: &[GroupEvent]) -> String {
    let all: Vec<Vec<String>> = events.iter().map(|e| e.fields(gid)).collect();
    serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
}

impl RedisStore {
    pub async fn rename_group(&self, gid: GroupId, name: &str) -> StoreResult<()> {
        let mut inv = RENAME_GROUP.prepare_invoke();
        inv.key(keys::group(gid)).arg(name);
        let _: i64 = self.eval(&inv, false).await?;
        Ok(())
    }

    pub async fn upgrade_group(&self, gid: GroupId, events: &[GroupEvent]) -> StoreResult<()> {
        let mut inv = UPGRADE_GROUP.prepare_invoke();
        inv.key(keys::group(gid))
            .key(keys::group_members(gid))
            .arg(events_json(gid, events))
            .arg(gid.0);
        let _: i64 = self.eval(&inv, true).await?;
        Ok(())
    }

    pub async fn delete_group(&self, gid: GroupId, events: &[GroupEvent]) -> StoreResult<()> {
        let gone = format!("{}:gone", keys::staging(super::members::staging_token()));
        let mut inv = DELETE_GROUP.prepare_invoke();
        inv.key(keys::group(gid))
            .key(keys::group_members(gid))
            .key(keys::timeline(gid))
            .key(keys::timeline_seq(gid))
            .key(keys::group_journal(gid))
            .arg(events_json(gid, events))
            .arg(&gone)
            .arg(keys::MEMBER_BUCKETS);
        let (existed, app, is_super): (i64, String, String) = self.eval(&inv, false).await?;
        if existed == 1
            && is_super == "1"
            && let Ok(app) = parse_id(&app)
        {
            self.unindex(AppId(app), gid, &gone).await;
        }
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
        let mut inv = MEMBER.prepare_invoke();
        inv.key(keys::group(gid)).arg(gid.0).arg(uid.0);
        let v: Option<String> = self.eval(&inv, false).await?;
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
