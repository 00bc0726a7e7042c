//! Every Redis key name in one place.
//!
//! Names GoBelieve used keep their exact spelling and field names (SPEC §7), so tokens and
//! settings written by an existing deployment keep working and its push daemon can read ours.
//!
//! Our own `imd:` keys carry a Redis Cluster hash tag: `{<app>:<uid>}` on everything of one
//! user (inbox, seq, acks, super-group index), `{<app>:<gid>}` on everything of one group
//! (settings, members, buckets, journal, timeline), `{<app>}` on an app's counters. A
//! script that touches one user or one group then stays in one slot when the store moves to
//! a cluster (README "Running several nodes", the Redis Cluster plan). Group ids and message
//! ids are per app: one app cannot take, find or count another's.

use crate::domain::{AppId, GroupId, GroupKey, Uid, UserKey};

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

/// Counter of an app's message ids (all kinds).
pub fn message_id(app: AppId) -> String {
    format!("imd:msgid:{{{app}}}")
}

/// List of a user's stored messages (JSON), oldest first, trimmed to `limits.inbox_len`.
pub fn inbox(u: UserKey) -> String {
    format!("imd:inbox:{{{}:{}}}", u.app, u.uid)
}

/// Newest seq assigned in a user's inbox (INCR).
pub fn inbox_seq(u: UserKey) -> String {
    format!("imd:seq:{{{}:{}}}", u.app, u.uid)
}

/// Hash `<platform>:<device_id>` → acknowledged seq.
pub fn acks(u: UserKey) -> String {
    format!("imd:acks:{{{}:{}}}", u.app, u.uid)
}

/// First result (`<id>:<seq>`) of a send with an idempotency key; expires.
pub fn idempotency(key: &str) -> String {
    format!("imd:idem:{key}")
}

/// Hash `{app, name, master, super}` of a group. The group scripts build this name (and the
/// names below that start with it) themselves, `gkey(app, gid)`: keep them in step.
pub fn group(g: GroupKey) -> String {
    format!("imd:group:{{{}:{}}}", g.app, g.id)
}

/// Hash uid → `joined_at,join_seq,mute,dnd,nickname`: a normal group's members.
pub fn group_members(g: GroupKey) -> String {
    format!("{}:members", group(g))
}

/// Buckets a super group's members are spread over (`member_bucket`).
pub const MEMBER_BUCKETS: u64 = 100;

/// A super group's members live in `MEMBER_BUCKETS` hashes by uid % 100 (the uid's last two
/// decimal digits, which the Lua scripts read off the uid's text), uid →
/// `uid,joined_at,join_seq,mute,dnd,nickname` (the uid again, so a bucket loads with HVALS): a
/// 1,000,000-member group loads as 100 pipelined reads of ~10,000 members, none holding Redis
/// for long, instead of a walk with HSCAN (2.5 times the Redis time per member, and unpipelined).
pub fn member_bucket(g: GroupKey, bucket: u64) -> String {
    format!("{}:members:{bucket}", group(g))
}

/// List: a committed membership change still being applied in chunks (`redis/members.rs`);
/// the group hash's `journal` field names the operation while it exists.
pub fn group_journal(g: GroupKey) -> String {
    format!("{}:journal", group(g))
}

/// List: a big membership change being written before it is committed; expires if the writer
/// goes away before the commit.
pub fn staging(token: u64) -> String {
    format!("imd:staging:{token:016x}")
}

/// Set of the super-group ids a user is a member of. The membership scripts build this name
/// themselves (`uindex(app, uid)`): keep them in step.
pub fn user_groups(u: UserKey) -> String {
    format!("imd:ugroups:{{{}:{}}}", u.app, u.uid)
}

/// Counter for an app's allocated group ids (ids named by the app are skipped over).
pub fn group_ids(app: AppId) -> String {
    format!("imd:group:ids:{{{app}}}")
}

/// List: a super group's timeline of stored JSON, oldest first.
pub fn timeline(g: GroupKey) -> String {
    format!("imd:gtl:{{{}:{}}}", g.app, g.id)
}

/// Newest `group_seq` of a super group's timeline.
pub fn timeline_seq(g: GroupKey) -> String {
    format!("imd:gseq:{{{}:{}}}", g.app, g.id)
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

/// Hash `<node>` → the user's connections on that node, `<node>:m` → the mobile ones among
/// them (SPEC §6: what counts as online for push). Read by the append scripts, which route
/// each message to the nodes holding the user's connections (README "Running several nodes").
/// The scripts build this name from an inbox key's hash tag: keep them in step.
pub fn location(u: UserKey) -> String {
    format!("imd:loc:{{{}:{}}}", u.app, u.uid)
}

/// Set of `<app>:<uid>` with connections on a node: what the reaper clears when it dies.
pub fn node_users(node: &str) -> String {
    format!("imd:nusers:{node}")
}

/// Present (expiring) while a node is alive; the scripts skip nodes without it.
pub fn node_alive(node: &str) -> String {
    format!("imd:alive:{node}")
}

/// Taken by the one node that reaps a dead node's locations.
pub fn node_reap(node: &str) -> String {
    format!("imd:reap:{node}")
}

/// Set of every node that has announced itself (the reaper's list).
pub const NODES: &str = "imd:nodes";

/// Pub/sub channel of one node: inbox messages for its connections (`m` frames).
pub fn node_channel(node: &str) -> String {
    format!("imd:n:{node}")
}

/// Pub/sub channel every node subscribes to: super-group messages (`g` frames).
pub const SUPER_CHANNEL: &str = "imd:sg";

/// Pub/sub channel every node subscribes to: heartbeats and cache invalidations.
pub const CONTROL_CHANNEL: &str = "imd:ctl";
