//! Redis backend: group creation and membership changes of any size, paged member reads and
//! the per-user index of super groups.
//!
//! A change of up to `CHUNK` members is one script. A bigger one would hold Redis for too
//! long in one script (~7 µs a member with its index entry and stream event: 0.7 s for
//! 100,000), so it goes in three steps, all or nothing:
//! 1. **stage**: the members are written to a fresh `imd:staging:<token>` list (expiring),
//!    which nothing reads: a failure here leaves nothing applied;
//! 2. **commit**: one short script makes the list the group's journal
//!    (`imd:group:<gid>:journal`, and `journal` = the operation in the group hash);
//! 3. **apply**: scripts of `CHUNK` members each take their part off the journal and apply it
//!    (members, index, events); the last one clears the `journal` field.
//!
//! Once committed, a change is completed even if this process dies half-way: whoever loads
//! the group next (`group_meta`) applies the rest of the journal first. Readers of the group
//! go through its actor, which applies a change before it answers anything else, so nobody
//! sees a half-applied change. Chunks are idempotent (a member is added or removed once), so
//! two loaders finishing the same journal at once do no harm.

use futures_util::StreamExt;
use redis::AsyncCommands;

use super::RedisStore;
use super::group_scripts::{APPLY_JOURNAL, CHANGE_MEMBERS, COMMIT_MEMBERS, CREATE_GROUP};
use crate::domain::{AppId, GroupId, GroupKey, Uid, UserKey, parse_id};
use crate::store::{GroupRecord, MEMBERS_PAGE, MemberRecord, StoreError, StoreResult, keys};

/// Members one script changes at most: about 15 ms of Redis time.
const CHUNK: usize = 2000;

/// Entries per RPUSH while staging.
const STAGE: usize = 10_000;

/// Bucket reads of a super group in flight while it loads.
const IN_FLIGHT: usize = 4;

/// A staging list outlives a writer that died before committing by this much, then goes.
const STAGING_TTL_SECS: u64 = 3600;

/// Members from a flat `[uid, encoded, uid, encoded, …]` reply.
fn decode_members(flat: &[String]) -> Vec<MemberRecord> {
    flat.chunks_exact(2)
        .filter_map(|p| MemberRecord::decode(Uid(parse_id(&p[0]).ok()?), &p[1]))
        .collect()
}

/// A journal item of an add: `uid|encoded member`.
fn add_item(m: &MemberRecord) -> String {
    format!("{}|{}", m.uid, m.encode())
}

pub(super) fn staging_token() -> u64 {
    let mut b = [0u8; 8];
    // A clash needs two writers with the same 64 random bits; the clock is a fallback only.
    if getrandom::fill(&mut b).is_err() {
        return crate::domain::now_millis() ^ u64::from(std::process::id()) << 32;
    }
    u64::from_le_bytes(b)
}

impl RedisStore {
    pub async fn create_group(&self, r: &GroupRecord) -> StoreResult<Option<GroupId>> {
        let big = r.members.len() > CHUNK;
        let staging = match big {
            true => Some(self.stage(r.members.iter().map(add_item)).await?),
            false => None,
        };
        let mut inv = CREATE_GROUP.prepare_invoke();
        inv.key(keys::group_ids(r.app))
            .arg(r.id.0)
            .arg(r.app.0)
            .arg(&r.name)
            .arg(r.master.0)
            .arg(u8::from(r.is_super))
            .arg(staging.as_deref().unwrap_or(""));
        if !big {
            for m in &r.members {
                inv.arg(add_item(m));
            }
        }
        let id: u64 = self.eval(&inv, r.members.len() > 256).await?;
        if id == 0 {
            return Ok(None);
        }
        let gid = GroupId(id);
        if big {
            self.apply_journal(GroupKey::new(r.app, gid)).await?;
        }
        Ok(Some(gid))
    }

    pub async fn add_members(&self, gid: GroupKey, members: &[MemberRecord]) -> StoreResult<()> {
        let items: Vec<String> = members.iter().map(add_item).collect();
        self.change(gid, "add", items, None).await
    }

    pub async fn remove_members(
        &self,
        gid: GroupKey,
        members: &[Uid],
        master: Option<Uid>,
    ) -> StoreResult<()> {
        let items: Vec<String> = members.iter().map(|u| u.to_string()).collect();
        self.change(gid, "remove", items, master).await
    }

    /// One script for a small change; stage, commit, apply for a big one (module docs).
    async fn change(
        &self,
        gid: GroupKey,
        op: &str,
        items: Vec<String>,
        master: Option<Uid>,
    ) -> StoreResult<()> {
        let master = master.map_or_else(String::new, |m| m.to_string());
        if items.len() <= CHUNK {
            let mut inv = CHANGE_MEMBERS.prepare_invoke();
            inv.key(keys::group(gid)).arg(gid.id.0).arg(op).arg(&master);
            for item in &items {
                inv.arg(item);
            }
            let _: i64 = self.eval(&inv, items.len() > 256).await?;
            return Ok(());
        }
        let staging = self.stage(items.into_iter()).await?;
        for _ in 0..2 {
            let mut inv = COMMIT_MEMBERS.prepare_invoke();
            inv.key(keys::group(gid))
                .key(&staging)
                .key(keys::group_journal(gid))
                .arg(op)
                .arg(&master);
            match self.eval::<i64>(&inv, false).await? {
                1 => return self.apply_journal(gid).await,
                0 => return Ok(()), // no such group (any more)
                // An earlier change was committed but not finished: finish it, then commit.
                -1 => self.apply_journal(gid).await?,
                _ => break,
            }
        }
        Err(StoreError::Unavailable(format!(
            "group {gid}: the staged membership change could not be committed"
        )))
    }

    /// Writes `items` to a fresh staging list; its key.
    async fn stage(&self, items: impl Iterator<Item = String>) -> StoreResult<String> {
        let key = keys::staging(staging_token());
        let items: Vec<String> = items.collect();
        for (i, part) in items.chunks(STAGE).enumerate() {
            let mut pipe = redis::pipe();
            pipe.rpush(&key, part).ignore();
            if i == 0 {
                pipe.expire(&key, STAGING_TTL_SECS as i64).ignore();
            }
            let written: StoreResult<()> = self.bulk(&pipe).await;
            if let Err(e) = written {
                // Best effort: it expires anyway.
                let mut c = self.conn()?;
                let _: Result<i64, _> = c.del(&key).await;
                return Err(e);
            }
        }
        Ok(key)
    }

    /// Applies the group's committed journal, chunk by chunk, until it is done.
    async fn apply_journal(&self, gid: GroupKey) -> StoreResult<()> {
        loop {
            let mut inv = APPLY_JOURNAL.prepare_invoke();
            inv.key(keys::group(gid))
                .key(keys::group_journal(gid))
                .arg(gid.id.0)
                .arg(CHUNK);
            if self.eval::<i64>(&inv, true).await? == 0 {
                return Ok(());
            }
        }
    }

    pub async fn group_meta(&self, gid: GroupKey) -> StoreResult<Option<GroupRecord>> {
        let mut c = self.conn()?;
        let mut meta: std::collections::HashMap<String, String> =
            self.run(c.hgetall(keys::group(gid))).await?;
        if meta.contains_key("journal") {
            self.apply_journal(gid).await?;
            meta = self.run(c.hgetall(keys::group(gid))).await?;
        }
        if meta.is_empty() {
            return Ok(None);
        }
        let corrupt = |what: &str| StoreError::Corrupt(format!("group {gid}: {what}"));
        let field = |k: &str| meta.get(k).ok_or_else(|| corrupt(k));
        let app = parse_id(field("app")?).map_err(|_| corrupt("app"))?;
        if app != gid.app.0 {
            return Err(corrupt("app"));
        }
        let master = parse_id(field("master")?).map_err(|_| corrupt("master"))?;
        Ok(Some(GroupRecord {
            id: gid.id,
            app: AppId(app),
            name: meta.get("name").cloned().unwrap_or_default(),
            master: Uid(master),
            is_super: meta.get("super").is_some_and(|s| s == "1"),
            members: Vec::new(),
        }))
    }

    /// Every member, a page at a time, to `each`: a super group's buckets (HVALS: each value
    /// starts with its uid) with up to `IN_FLIGHT` reads pipelined (Redis reads the next
    /// while this thread decodes one), a normal group's one hash in HSCAN steps.
    pub async fn load_members(
        &self,
        gid: GroupKey,
        is_super: bool,
        mut each: impl FnMut(Vec<MemberRecord>),
    ) -> StoreResult<()> {
        if is_super {
            let mut pages = futures_util::stream::iter(0..keys::MEMBER_BUCKETS)
                .map(|b| self.hash_page(keys::member_bucket(gid, b)))
                .buffered(IN_FLIGHT);
            while let Some(page) = pages.next().await {
                each(page?);
            }
            return Ok(());
        }
        let mut c = self.conn()?;
        let mut cursor = 0u64;
        loop {
            let (next, flat): (u64, Vec<String>) = self
                .run(
                    redis::cmd("HSCAN")
                        .arg(keys::group_members(gid))
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(MEMBERS_PAGE)
                        .query_async(&mut c),
                )
                .await?;
            each(decode_members(&flat));
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The members held by one bucket (values `uid,joined_at,…`).
    async fn hash_page(&self, key: String) -> StoreResult<Vec<MemberRecord>> {
        let mut c = self.conn()?;
        let values: Vec<String> = self.run(c.hvals(key)).await?;
        Ok(values
            .iter()
            .filter_map(|v| {
                let (uid, rest) = v.split_once(',')?;
                MemberRecord::decode(Uid(parse_id(uid).ok()?), rest)
            })
            .collect())
    }

    pub async fn user_groups(&self, user: UserKey) -> StoreResult<Vec<GroupId>> {
        let mut c = self.conn()?;
        let ids: Vec<String> = self.run(c.smembers(keys::user_groups(user))).await?;
        let mut ids: Vec<GroupId> = ids
            .iter()
            .filter_map(|g| parse_id(g).ok().map(GroupId))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Takes the members of a deleted super group (its buckets, renamed to `gone:<b>`) out of
    /// their `imd:ugroups:` index, a bucket at a time, then drops the buckets. Best effort: an
    /// index entry left behind names a group that does not exist, which no fan-out acts on.
    pub(super) async fn unindex(&self, gid: GroupKey, gone: &str) {
        let outcome: StoreResult<()> = async {
            let mut c = self.conn()?;
            for b in 0..keys::MEMBER_BUCKETS {
                let bucket = format!("{gone}:{b}");
                let uids: Vec<String> = self.run(c.hkeys(&bucket)).await?;
                let mut pipe = redis::pipe();
                for uid in uids.iter().filter_map(|u| parse_id(u).ok()) {
                    pipe.srem(keys::user_groups(UserKey::new(gid.app, Uid(uid))), gid.id.0)
                        .ignore();
                }
                pipe.unlink(&bucket).ignore();
                self.bulk::<()>(&pipe).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(group = %gid, error = %e, "disbanded group: index not cleaned up");
        }
    }
}
