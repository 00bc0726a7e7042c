//! Redis backend: group settings (`imd:group:*`), super-group timelines (`imd:gtl:*`) and the
//! original `group_manager_stream` events, written in the same script as each change.
//! Creation and membership are in `members.rs`.

use redis::AsyncCommands;

use super::RedisStore;
use super::batch::Call;
use super::group_scripts::{DELETE_GROUP, MEMBER, RENAME_GROUP, UPDATE_MEMBER, UPGRADE_GROUP};
use super::messages::{check_group, parse_appended};
use super::scripts::INBOX_AFTER;
use crate::domain::{GroupKey, Uid, UserKey};
use crate::store::{Append, Appended, GroupEvent, MemberRecord, StoreResult, keys};

fn events_json(gid: GroupKey, events: &[GroupEvent]) -> String {
    let all: Vec<Vec<String>> = events.iter().map(|e| e.fields(gid.id)).collect();
    serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())
}

impl RedisStore {
    pub async fn rename_group(&self, gid: GroupKey, name: &str) -> StoreResult<()> {
        let mut inv = RENAME_GROUP.prepare_invoke();
        inv.key(keys::group(gid))
            .arg(name)
            .arg(gid.app.0)
            .arg(gid.id.0);
        let _: i64 = self.eval(&inv, false).await?;
        Ok(())
    }

    pub async fn upgrade_group(&self, gid: GroupKey, events: &[GroupEvent]) -> StoreResult<()> {
        let mut inv = UPGRADE_GROUP.prepare_invoke();
        inv.key(keys::group(gid))
            .key(keys::group_members(gid))
            .arg(events_json(gid, events))
            .arg(gid.id.0);
        let _: i64 = self.eval(&inv, true).await?;
        Ok(())
    }

    pub async fn delete_group(&self, gid: GroupKey, events: &[GroupEvent]) -> StoreResult<()> {
        let gone = format!("{}:gone", keys::staging(super::members::staging_token()));
        let mut inv = DELETE_GROUP.prepare_invoke();
        inv.key(keys::group(gid))
            .key(keys::group_members(gid))
            .key(keys::timeline(gid))
            .key(keys::timeline_seq(gid))
            .key(keys::group_journal(gid))
            .arg(events_json(gid, events))
            .arg(&gone)
            .arg(keys::MEMBER_BUCKETS)
            .arg(gid.id.0);
        let (existed, _app, is_super): (i64, String, String) = self.eval(&inv, false).await?;
        if existed == 1 && is_super == "1" {
            self.unindex(gid, &gone).await;
        }
        Ok(())
    }

    pub async fn update_member(
        &self,
        gid: GroupKey,
        member: &MemberRecord,
        events: &[GroupEvent],
    ) -> StoreResult<()> {
        let user = UserKey::new(gid.app, member.uid);
        let mut inv = UPDATE_MEMBER.prepare_invoke();
        inv.key(keys::group(gid))
            .key(keys::user(user))
            .key(keys::user_group_dnd(user))
            .key(keys::conversations_dnd(user))
            .arg(events_json(gid, events))
            .arg(member.uid.0)
            .arg(member.encode())
            .arg(gid.id.0)
            .arg(u8::from(member.dnd))
            .arg(gid.app.0);
        let _: i64 = self.eval(&inv, false).await?;
        Ok(())
    }

    pub async fn member(&self, gid: GroupKey, uid: Uid) -> StoreResult<Option<MemberRecord>> {
        let mut inv = MEMBER.prepare_invoke();
        inv.key(keys::group(gid))
            .arg(gid.id.0)
            .arg(uid.0)
            .arg(gid.app.0);
        let v: Option<String> = self.eval(&inv, false).await?;
        Ok(v.and_then(|v| MemberRecord::decode(uid, &v)))
    }

    pub async fn append_timeline(
        &self,
        gid: GroupKey,
        body: &str,
        idempotency: Option<(&str, u64)>,
        ver: Option<u64>,
    ) -> StoreResult<Appended> {
        let call = self.timeline_call(gid, body, idempotency, ver);
        parse_appended(self.eval(&call.invocation(), false).await?)
    }

    fn timeline_call(
        &self,
        gid: GroupKey,
        body: &str,
        idempotency: Option<(&str, u64)>,
        ver: Option<u64>,
    ) -> Call {
        let timeline = std::iter::once((keys::timeline_seq(gid), keys::timeline(gid)));
        let mut call = self.append_call(gid.app, timeline, body, idempotency, "group_seq", None);
        check_group(&mut call, ver.map(|v| (gid, v)));
        call
    }

    /// A group's messages, in order and in one round-trip: each on the timeline (`is_super`)
    /// or in its inboxes, each checked against `ver` (`Store::append_group_batch`).
    pub async fn append_group_batch(
        &self,
        gid: GroupKey,
        is_super: bool,
        ver: Option<u64>,
        batch: &[Append<'_>],
    ) -> Vec<StoreResult<Appended>> {
        let calls: Vec<Call> = batch
            .iter()
            .map(|a| match is_super {
                true => self.timeline_call(gid, a.body, a.idempotency, ver),
                false => {
                    let lists = a
                        .inboxes
                        .iter()
                        .map(|u| (keys::inbox_seq(*u), keys::inbox(*u)));
                    let mut call =
                        self.append_call(gid.app, lists, a.body, a.idempotency, "seq", None);
                    check_group(&mut call, ver.map(|v| (gid, v)));
                    call
                }
            })
            .collect();
        // As `append_checked`: many inbox writes take a dedicated connection.
        let bulk = batch.iter().map(|a| a.inboxes.len()).sum::<usize>() > 64;
        let replies = self.eval_all(&calls, bulk).await;
        replies
            .into_iter()
            .map(|r| r.and_then(parse_appended))
            .collect()
    }

    /// The group's `ver` (moved by every change; 0 before the first).
    pub async fn group_version(&self, gid: GroupKey) -> StoreResult<u64> {
        let mut c = self.conn()?;
        let v: Option<u64> = self.run(c.hget(keys::group(gid), "ver")).await?;
        Ok(v.unwrap_or(0))
    }

    pub async fn timeline_after(
        &self,
        gid: GroupKey,
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

    pub async fn timeline_seq(&self, gid: GroupKey) -> StoreResult<u64> {
        let mut c = self.conn()?;
        let v: Option<u64> = self.run(c.get(keys::timeline_seq(gid))).await?;
        Ok(v.unwrap_or(0))
    }
}
