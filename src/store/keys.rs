//! Every Redis key name in one place.
//!
//! Names GoBelieve used keep their exact spelling and field names (SPEC §7), so tokens and
//! settings written by an existing deployment keep working and its push daemon can read ours.

use crate::domain::{AppId, GroupId, Uid, UserKey};

/// Hash `{user_id, app_id, user_name, notification_on}`: bearer token → user (original).
pub fn access_token(token: &str) -> String {
    format!("access_token_{token}")
}

/// Hash of one user's settings (original): `access_token`, `name`, `mute`, `forbidden`,
/// `peer_<uid>`, `group_<gid>`, `<provider>_device_token`, `<provider>_timestamp`.
pub fn user(u: UserKey) -> String {
    format!("users_{}_{}", u.app, u.uid)
}

/// Set of peer uids on do-not-disturb (original API's second representation).
pub fn user_peer_dnd(u: UserKey) -> String {
    format!("users_{}_{}_peer_do_not_disturb", u.app, u.uid)
}

/// Set of `p:<uid>` / `g:<gid>` the current GoBelieve push daemon reads for do-not-disturb.
pub fn conversations_dnd(u: UserKey) -> String {
    format!("conversations_donotdisturb_{}_{}", u.app, u.uid)
}

/// Pub/sub channel the original im server listens on for `forbidden` changes.
pub const SPEAK_FORBIDDEN: &str = "speak_forbidden";

/// HyperLogLog of users that were ever granted a token (original statistics key).
pub fn statistics_users(app: AppId) -> String {
    format!("statistics_users_{app}")
}

/// The user-hash field of a binary client's confirmed sync key (original names): `sync_key`,
/// or `group_sync_key_<gid>` for a super group.
pub fn sync_key_field(group: Option<GroupId>) -> String {
    match group {
        None => "sync_key".to_string(),
        Some(g) => format!("group_sync_key_{g}"),
    }
}

/// `peer_<uid>` field of the user hash.
pub fn peer_field(peer: Uid) -> String {
    format!("peer_{peer}")
}

/// Counter of message ids (all kinds, all apps).
pub const MESSAGE_ID: &str = "imd:msgid";

/// List of a user's stored messages (JSON), oldest first, trimmed to `limits.inbox_len`.
pub fn inbox(u: UserKey) -> String {
    format!("imd:inbox:{}:{}", u.app, u.uid)
}

/// Newest seq assigned in a user's inbox (INCR).
pub fn inbox_seq(u: UserKey) -> String {
    format!("imd:seq:{}:{}", u.app, u.uid)
}

/// Hash `<platform>:<device_id>` → acknowledged seq.
pub fn acks(u: UserKey) -> String {
    format!("imd:acks:{}:{}", u.app, u.uid)
}

/// First result (`<id>:<seq>`) of a send with an idempotency key; expires.
pub fn idempotency(key: &str) -> String {
    format!("imd:idem:{key}")
}

/// Hash `{app, name, master, super}` of a group.
pub fn group(gid: GroupId) -> String {
    format!("imd:group:{gid}")
}

/// Hash uid → `joined_at,join_seq,mute,dnd,nickname`: a normal group's members.
pub fn group_members(gid: GroupId) -> String {
    format!("imd:group:{gid}:members")
}

/// Buckets a super group's members are spread over (`member_bucket`).
pub const MEMBER_BUCKETS: u64 = 100;

/// A super group's members live in `MEMBER_BUCKETS` hashes by uid % 100 (the uid's last two
/// decimal digits, which the Lua scripts read off the uid's text), uid →
/// `uid,joined_at,join_seq,mute,dnd,nickname` (the uid again, so a bucket loads with HVALS): a
/// 1,000,000-member group loads as 100 pipelined reads of ~10,000 members, none holding Redis
/// for long, instead of a walk with HSCAN (2.5 times the Redis time per member, and unpipelined).
pub fn member_bucket(gid: GroupId, bucket: u64) -> String {
    format!("imd:group:{gid}:members:{bucket}")
}

/// List: a committed membership change still being applied in chunks (`redis/members.rs`);
/// the group hash's `journal` field names the operation while it exists.
pub fn group_journal(gid: GroupId) -> String {
    format!("imd:group:{gid}:journal")
}

/// List: a big membership change being written before it is committed; expires if the writer
/// goes away before the commit.
pub fn staging(token: u64) -> String {
    format!("imd:staging:{token:016x}")
}

/// Set of the super-group ids a user is a member of. The membership scripts build this name
/// themselves (`imd:ugroups:` .. app .. `:` .. uid): keep them in step.
pub fn user_groups(u: UserKey) -> String {
    format!("imd:ugroups:{}:{}", u.app, u.uid)
}

/// Counter for allocated group ids (ids named by the app are skipped over).
pub const GROUP_IDS: &str = "imd:group:ids";

/// List: a super group's timeline of stored JSON, oldest first.
pub fn timeline(gid: GroupId) -> String {
    format!("imd:gtl:{gid}")
}

/// Newest `group_seq` of a super group's timeline.
pub fn timeline_seq(gid: GroupId) -> String {
    format!("imd:gseq:{gid}")
}

/// Set of group ids on do-not-disturb (original API's copy).
pub fn user_group_dnd(u: UserKey) -> String {
    format!("users_{}_{}_group_do_not_disturb", u.app, u.uid)
}

/// Customer uid of an app's customer id (original key; holds the uid).
pub fn customer(app: AppId, customer_id: &str) -> String {
    format!("customer_users_{app}_{customer_id}")
}

/// Counter behind customer uids (original key).
pub const CUSTOMER_COUNTER: &str = "customer_client_id";

/// Hash supporter uid → `{"name","avatar"}` of a customer-service store.
pub fn supporters(store_id: u64) -> String {
    format!("imd:store:{store_id}:supporters")
}

/// Hash supporter uid → customers assigned.
pub fn supporter_load(store_id: u64) -> String {
    format!("imd:store:{store_id}:load")
}
