//! The in-process store: dashmap tables, nothing on disk. The default for trying the service out
//! and for benchmarks of the dispatcher alone; it forgets everything on restart.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{StoreResult, UserPatch, UserRecord, sort_tokens};

mod customers;
mod groups;
mod messages;
mod sync_keys;
use crate::domain::{AppId, DeviceToken, GroupKey, PushProvider, Uid, UserKey};
use crate::ratelimit::Throttle;

#[derive(Default)]
struct UserRow {
    token: Option<String>,
    name: String,
    avatar: String,
    /// Customer-service assignment: (store id, supporter).
    assignment: Option<(u64, Uid)>,
    mute: bool,
    forbidden: bool,
    /// No token is granted while set (a revoked customer).
    blocked: bool,
    dnd_peers: BTreeSet<Uid>,
    device_tokens: Vec<DeviceToken>,
}

#[derive(Default)]
struct Inbox {
    /// Newest seq ever assigned (survives trimming).
    seq: u64,
    /// Stored JSON of the newest messages, oldest first; `entries[i]` has seq
    /// `seq - entries.len() + 1 + i`.
    entries: VecDeque<Box<str>>,
    /// Acknowledged position per device key.
    acks: HashMap<String, u64>,
}

impl Inbox {
    /// Appends a stored record with the next seq (`field` names it: `seq` or `group_seq`),
    /// trimming to `keep` entries; returns the seq.
    fn push(&mut self, id: u64, field: &str, body: &str, keep: u64) -> u64 {
        self.seq += 1;
        let mut text = String::with_capacity(body.len() + 40);
        text.push_str("{\"id\":");
        text.push_str(itoa::Buffer::new().format(id));
        text.push_str(",\"");
        text.push_str(field);
        text.push_str("\":");
        text.push_str(itoa::Buffer::new().format(self.seq));
        text.push(',');
        text.push_str(body);
        self.entries.push_back(text.into());
        while self.entries.len() as u64 > keep {
            self.entries.pop_front();
        }
        self.seq
    }

    /// Records with `after < seq <= upto`, oldest first, at most `limit`.
    fn after(&self, after: u64, upto: u64, limit: usize) -> Vec<String> {
        let first = self.seq + 1 - self.entries.len() as u64;
        let start = after.saturating_add(1).max(first);
        let end = upto.min(self.seq);
        if start > end {
            return Vec::new();
        }
        let skip = (start - first) as usize;
        let take = ((end - start + 1) as usize).min(limit);
        self.entries
            .iter()
            .skip(skip)
            .take(take)
            .map(|s| s.to_string())
            .collect()
    }
}

/// Per-app counters (message ids, group ids): one app's numbers say nothing of another's
/// traffic. Each starts at 1.
#[derive(Default)]
pub(super) struct Counters(DashMap<AppId, u64>);

impl Counters {
    /// The first of `n` fresh numbers of `app`.
    pub(super) fn take(&self, app: AppId, n: u64) -> u64 {
        let mut next = self.0.entry(app).or_insert(1);
        let first = *next;
        *next += n;
        first
    }
}

pub struct MemoryStore {
    /// Customer uids handed out: `base + n`.
    next_customer: AtomicU64,
    /// `<app>:<customer_id>` → customer uid.
    customers: DashMap<String, Uid>,
    /// Store id → supporter uid → (name, avatar, customers assigned).
    supporters: DashMap<u64, std::collections::BTreeMap<Uid, customers::SupporterRow>>,
    /// Group ids handed out when a create does not name one, per app.
    next_group: Counters,
    /// Groups with their members.
    groups: DashMap<GroupKey, groups::GroupRow>,
    /// Super-group timelines (acks unused).
    timelines: DashMap<GroupKey, Inbox>,
    /// The super groups each user is in (`Store::user_groups`).
    user_groups: DashMap<UserKey, groups::UserGroups>,
    /// Message ids per app, shared by every kind of message.
    next_id: Counters,
    /// Per-user inboxes.
    inboxes: DashMap<UserKey, Inbox>,
    /// Idempotency key → (first result, expiry).
    idempotency: DashMap<String, (u64, u64, Instant)>,
    /// Expired idempotency records are swept at most once a second, when there are many.
    idempotency_sweep: Throttle,
    /// Bearer token → owner. Written by grant, removed by revoke.
    tokens: DashMap<String, UserKey>,
    /// Per-user settings and token.
    users: DashMap<UserKey, UserRow>,
    /// Binary-protocol clients' confirmed sync keys: (user, 0 or a group id) → key.
    sync_keys: DashMap<(UserKey, u64), u64>,
    /// Binary-protocol clients' reported unread counts.
    unread: DashMap<UserKey, i32>,
    /// Messages kept per inbox (older ones are trimmed).
    inbox_len: u64,
}

impl MemoryStore {
    pub fn new(inbox_len: u64) -> Self {
        MemoryStore {
            next_customer: AtomicU64::new(1),
            customers: DashMap::new(),
            supporters: DashMap::new(),
            next_group: Counters::default(),
            groups: DashMap::new(),
            timelines: DashMap::new(),
            user_groups: DashMap::new(),
            next_id: Counters::default(),
            inboxes: DashMap::new(),
            idempotency: DashMap::new(),
            idempotency_sweep: Throttle::new(Duration::from_secs(1)),
            tokens: DashMap::new(),
            users: DashMap::new(),
            sync_keys: DashMap::new(),
            unread: DashMap::new(),
            inbox_len,
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    pub async fn grant_token(
        &self,
        user: UserKey,
        name: Option<&str>,
        fresh: &str,
    ) -> StoreResult<Option<String>> {
        let mut row = self.users.entry(user).or_default();
        if row.blocked {
            return Ok(None);
        }
        if let Some(name) = name {
            row.name = name.to_string();
        }
        let token = match &row.token {
            Some(t) => t.clone(),
            None => {
                row.token = Some(fresh.to_string());
                fresh.to_string()
            }
        };
        self.tokens.insert(token.clone(), user);
        Ok(Some(token))
    }

    pub async fn set_blocked(&self, user: UserKey, blocked: bool) -> StoreResult<bool> {
        let mut row = self.users.entry(user).or_default();
        let changed = row.blocked != blocked;
        row.blocked = blocked;
        Ok(changed)
    }

    pub async fn resolve_token(&self, token: &str) -> StoreResult<Option<UserKey>> {
        Ok(self.tokens.get(token).map(|e| *e.value()))
    }

    pub async fn revoke_token(&self, user: UserKey) -> StoreResult<bool> {
        let old = self
            .users
            .get_mut(&user)
            .and_then(|mut row| row.token.take());
        if let Some(old) = &old {
            self.tokens.remove(old);
        }
        Ok(old.is_some())
    }

    pub async fn update_user(&self, user: UserKey, patch: &UserPatch) -> StoreResult<()> {
        let mut row = self.users.entry(user).or_default();
        if let Some(name) = &patch.name {
            row.name = name.clone();
        }
        if let Some(avatar) = &patch.avatar {
            row.avatar = avatar.clone();
        }
        if let Some((peer, on)) = patch.do_not_disturb {
            if on {
                row.dnd_peers.insert(peer);
            } else {
                row.dnd_peers.remove(&peer);
            }
        }
        if let Some(mute) = patch.mute {
            row.mute = mute;
        }
        if let Some(forbidden) = patch.forbidden {
            row.forbidden = forbidden;
        }
        Ok(())
    }

    pub async fn bind_device_tokens(
        &self,
        user: UserKey,
        tokens: &[(PushProvider, String)],
        now: u64,
    ) -> StoreResult<()> {
        let mut row = self.users.entry(user).or_default();
        for (provider, token) in tokens {
            row.device_tokens.retain(|t| t.provider != *provider);
            row.device_tokens.push(DeviceToken {
                provider: *provider,
                token: token.clone(),
                bound_at: now,
            });
        }
        Ok(())
    }

    pub async fn unbind_device_tokens(
        &self,
        user: UserKey,
        tokens: &[(PushProvider, String)],
    ) -> StoreResult<usize> {
        let Entry::Occupied(mut row) = self.users.entry(user) else {
            return Ok(0);
        };
        let row = row.get_mut();
        let before = row.device_tokens.len();
        row.device_tokens.retain(|t| {
            !tokens
                .iter()
                .any(|(p, tok)| t.provider == *p && t.token == *tok)
        });
        Ok(before - row.device_tokens.len())
    }

    pub async fn load_user(&self, user: UserKey) -> StoreResult<UserRecord> {
        let Some(row) = self.users.get(&user) else {
            return Ok(UserRecord::default());
        };
        let mut device_tokens = row.device_tokens.clone();
        sort_tokens(&mut device_tokens);
        Ok(UserRecord {
            name: row.name.clone(),
            avatar: row.avatar.clone(),
            mute: row.mute,
            forbidden: row.forbidden,
            dnd_peers: row.dnd_peers.iter().copied().collect(),
            device_tokens,
        })
    }
}
