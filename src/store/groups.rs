//! Groups in the store: the record, its members with their settings, the super-group timeline
//! and the `group_manager_stream` events the original im server consumes.

use super::{Append, Appended, Store, StoreResult};
use crate::domain::{AppId, GroupId, GroupKey, Uid, UserKey};

/// One member as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub uid: Uid,
    /// Seconds since the epoch.
    pub joined_at: u64,
    /// The super-group timeline seq at join: a member syncs only what came after.
    pub join_seq: u64,
    /// May not send to this group.
    pub mute: bool,
    /// Do-not-disturb for this group: no push.
    pub dnd: bool,
    pub nickname: Option<String>,
}

impl MemberRecord {
    pub fn new(uid: Uid, joined_at: u64, join_seq: u64) -> Self {
        MemberRecord {
            uid,
            joined_at,
            join_seq,
            mute: false,
            dnd: false,
            nickname: None,
        }
    }

    /// `joined_at,join_seq,mute,dnd,nickname` (nickname last: it may contain commas).
    pub(crate) fn encode(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.joined_at,
            self.join_seq,
            u8::from(self.mute),
            u8::from(self.dnd),
            self.nickname.as_deref().unwrap_or("")
        )
    }

    pub(crate) fn decode(uid: Uid, s: &str) -> Option<Self> {
        let mut parts = s.splitn(5, ',');
        let joined_at = parts.next()?.parse().ok()?;
        let join_seq = parts.next()?.parse().ok()?;
        let mute = parts.next()? == "1";
        let dnd = parts.next()? == "1";
        let nickname = parts.next().filter(|n| !n.is_empty()).map(str::to_string);
        Some(MemberRecord {
            uid,
            joined_at,
            join_seq,
            mute,
            dnd,
            nickname,
        })
    }
}

/// A whole group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: GroupId,
    pub app: AppId,
    pub name: String,
    pub master: Uid,
    pub is_super: bool,
    /// Ascending by uid.
    pub members: Vec<MemberRecord>,
}

impl GroupRecord {
    pub fn key(&self) -> GroupKey {
        GroupKey::new(self.app, self.id)
    }
}

/// Member settings to change; every `Some` is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberPatch {
    pub mute: Option<bool>,
    pub dnd: Option<bool>,
    pub nickname: Option<String>,
}

/// A `group_manager_stream` entry in the original event format (reference §5). The store adds
/// `previous_action_id` and `action_id`; `group_member_add` / `group_member_remove` are written
/// by the membership scripts themselves, one per member changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    Disband,
    Upgrade { app: AppId },
    MemberMute(Uid, bool),
}

impl GroupEvent {
    /// `[name, <event>, field, value, …]` as the stream entry's fields.
    pub(crate) fn fields(&self, gid: GroupId) -> Vec<String> {
        let g = gid.to_string();
        let v = |pairs: &[(&str, String)], name: &str| {
            let mut out = vec![
                "name".to_string(),
                name.to_string(),
                "group_id".to_string(),
                g.clone(),
            ];
            for (k, val) in pairs {
                out.push((*k).to_string());
                out.push(val.clone());
            }
            out
        };
        match self {
            GroupEvent::Disband => v(&[], "group_disband"),
            GroupEvent::Upgrade { app } => v(
                &[("app_id", app.to_string()), ("super", "1".into())],
                "group_upgrade",
            ),
            GroupEvent::MemberMute(m, on) => v(
                &[
                    ("member_id", m.to_string()),
                    ("mute", u8::from(*on).to_string()),
                ],
                "group_member_mute",
            ),
        }
    }
}

/// Members read per page when a normal group (or a memory store's group) is loaded.
pub const MEMBERS_PAGE: usize = 20_000;

impl Store {
    /// Creates a group with `record.id`, or a fresh id when it is 0. `None`: the id is taken.
    /// Any number of members: a big group is written in chunks, all or nothing (see
    /// `redis/members.rs`).
    pub async fn create_group(&self, record: &GroupRecord) -> StoreResult<Option<GroupId>> {
        backend!(self, s => s.create_group(record).await)
    }

    /// The group's record without its members (`members` empty; read them with
    /// `load_members`). A membership change that was committed but interrupted (the process
    /// died half-way) is completed first.
    pub async fn group_meta(&self, gid: GroupKey) -> StoreResult<Option<GroupRecord>> {
        backend!(self, s => s.group_meta(gid).await)
    }

    /// Hands the group's members to `each` a page at a time (pages in no particular order, a
    /// member possibly twice); `group` is the record from `group_meta`.
    pub async fn load_members(
        &self,
        group: &GroupRecord,
        each: impl FnMut(Vec<MemberRecord>),
    ) -> StoreResult<()> {
        backend!(self, s => s.load_members(group.key(), group.is_super, each).await)
    }

    /// The whole group, members ascending by uid (paged reads).
    pub async fn load_group(&self, gid: GroupKey) -> StoreResult<Option<GroupRecord>> {
        let Some(mut group) = self.group_meta(gid).await? else {
            return Ok(None);
        };
        let mut members = Vec::new();
        self.load_members(&group, |page| members.extend(page))
            .await?;
        members.sort_unstable_by_key(|m| m.uid);
        members.dedup_by_key(|m| m.uid);
        group.members = members;
        Ok(Some(group))
    }

    pub async fn rename_group(&self, gid: GroupKey, name: &str) -> StoreResult<()> {
        backend!(self, s => s.rename_group(gid, name).await)
    }

    /// Makes the group super (and enters every member in their `user_groups`).
    pub async fn upgrade_group(&self, gid: GroupKey, events: &[GroupEvent]) -> StoreResult<()> {
        backend!(self, s => s.upgrade_group(gid, events).await)
    }

    /// Removes the group, its members and its timeline.
    pub async fn delete_group(&self, gid: GroupKey, events: &[GroupEvent]) -> StoreResult<()> {
        backend!(self, s => s.delete_group(gid, events).await)
    }

    /// Adds members (callers pass only new ones; existing entries are never overwritten), with
    /// a `group_member_add` event each; any number, all or nothing.
    pub async fn add_members(&self, gid: GroupKey, members: &[MemberRecord]) -> StoreResult<()> {
        backend!(self, s => s.add_members(gid, members).await)
    }

    /// Removes members, with a `group_member_remove` event each; any number, all or nothing.
    /// `master`: the group's new master, set in the same change (the old one is leaving).
    pub async fn remove_members(
        &self,
        gid: GroupKey,
        members: &[Uid],
        master: Option<Uid>,
    ) -> StoreResult<()> {
        backend!(self, s => s.remove_members(gid, members, master).await)
    }

    /// The super groups `user` is a member of, ascending: what a session reads when its user
    /// comes online, to be found by those groups' fan-out (`dispatch/online.rs`). Written by
    /// every membership change of a super group, in the same atomic step.
    pub async fn user_groups(&self, user: UserKey) -> StoreResult<Vec<GroupId>> {
        backend!(self, s => s.user_groups(user).await)
    }

    /// Stores a member's new settings (`member` is the full updated record); DND is also
    /// written where the original components read it (`users_<app>_<uid>` `group_<gid>`, …).
    pub async fn update_member(
        &self,
        gid: GroupKey,
        member: &MemberRecord,
        events: &[GroupEvent],
    ) -> StoreResult<()> {
        backend!(self, s => s.update_member(gid, member, events).await)
    }

    /// A member's stored record, if a member.
    pub async fn member(&self, gid: GroupKey, uid: Uid) -> StoreResult<Option<MemberRecord>> {
        backend!(self, s => s.member(gid, uid).await)
    }

    /// Appends to a super group's timeline (`group_seq`), with optional idempotency.
    pub async fn append_timeline(
        &self,
        gid: GroupKey,
        body: &str,
        idempotency: Option<(&str, u64)>,
    ) -> StoreResult<Appended> {
        self.append_timeline_in_group(gid, body, idempotency, None)
            .await
    }

    /// `append_timeline` from a copy of the group at version `ver` (`Some`): nothing is
    /// stored (`Appended::stale`) if the group changed since (see `append_in_group`).
    pub async fn append_timeline_in_group(
        &self,
        gid: GroupKey,
        body: &str,
        idempotency: Option<(&str, u64)>,
        ver: Option<u64>,
    ) -> StoreResult<Appended> {
        let started = std::time::Instant::now();
        let r = backend!(self, s => s.append_timeline(gid, body, idempotency, ver).await);
        metrics::histogram!("imd_store_op_duration_seconds", "op" => "append_timeline")
            .record(started.elapsed().as_secs_f64());
        r
    }

    /// A group's messages in order, in one round-trip where the store has them: each as
    /// `append_timeline_in_group` (`is_super`; `inboxes` unused) or `append_in_group` (`ver`
    /// `None`: unchecked, as `append`) would store it alone, with a result of its own.
    pub async fn append_group_batch(
        &self,
        gid: GroupKey,
        is_super: bool,
        ver: Option<u64>,
        batch: &[Append<'_>],
    ) -> Vec<StoreResult<Appended>> {
        let started = std::time::Instant::now();
        let results = match self {
            Store::Redis(s) => s.append_group_batch(gid, is_super, ver, batch).await,
            Store::Memory(_) => {
                let mut results = Vec::with_capacity(batch.len());
                for a in batch {
                    results.push(match is_super {
                        true => {
                            self.append_timeline_in_group(gid, a.body, a.idempotency, ver)
                                .await
                        }
                        false => self.append(a).await,
                    });
                }
                results
            }
        };
        metrics::histogram!("imd_store_op_duration_seconds", "op" => "append_group_batch")
            .record(started.elapsed().as_secs_f64());
        results
    }

    /// The group's version (every change moves it; 0 for the memory store, which one node
    /// alone uses).
    pub async fn group_version(&self, gid: GroupKey) -> StoreResult<u64> {
        match self {
            Store::Memory(_) => Ok(0),
            Store::Redis(s) => s.group_version(gid).await,
        }
    }

    /// Timeline entries with `group_seq > after`, oldest first, at most `limit`.
    pub async fn timeline_after(
        &self,
        gid: GroupKey,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        backend!(self, s => s.timeline_after(gid, after, limit).await)
    }

    /// The newest `group_seq` (0 when empty).
    pub async fn timeline_seq(&self, gid: GroupKey) -> StoreResult<u64> {
        backend!(self, s => s.timeline_seq(gid).await)
    }
}
