//! The in-process store: dashmap tables, nothing on disk. The default for trying the service out
//! and for benchmarks of the dispatcher alone; it forgets everything on restart.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{Append, Appended, StoreResult, UserPatch, UserRecord, sort_tokens};
use crate::domain::{DeviceToken, PushProvider, Uid, UserKey};

#[derive(Default)]
struct UserRow {
    token: Option<String>,
    name: String,
    mute: bool,
    forbidden: bool,
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

pub struct MemoryStore {
    /// Message ids, shared by every kind of message.
    next_id: AtomicU64,
    /// Per-user inboxes.
    inboxes: DashMap<UserKey, Inbox>,
    /// Idempotency key → (first result, expiry).
    idempotency: DashMap<String, (u64, u64, Instant)>,
    /// Bearer token → owner. Written by grant, removed by revoke.
    tokens: DashMap<String, UserKey>,
    /// Per-user settings and token.
    users: DashMap<UserKey, UserRow>,
    /// Messages kept per inbox (older ones are trimmed).
    inbox_len: u64,
}

impl MemoryStore {
    pub fn new(inbox_len: u64) -> Self {
        MemoryStore {
            next_id: AtomicU64::new(1),
            inboxes: DashMap::new(),
            idempotency: DashMap::new(),
            tokens: DashMap::new(),
            users: DashMap::new(),
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
    ) -> StoreResult<String> {
        let mut row = self.users.entry(user).or_default();
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
        Ok(token)
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
            mute: row.mute,
            forbidden: row.forbidden,
            dnd_peers: row.dnd_peers.iter().copied().collect(),
            device_tokens,
        })
    }

    pub async fn device_tokens(&self, users: &[UserKey]) -> StoreResult<Vec<Vec<DeviceToken>>> {
        Ok(users
            .iter()
            .map(|u| {
                let mut t = self
                    .users
                    .get(u)
                    .map(|r| r.device_tokens.clone())
                    .unwrap_or_default();
                sort_tokens(&mut t);
                t
            })
            .collect())
    }

    pub async fn next_message_id(&self) -> StoreResult<u64> {
        Ok(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    pub async fn append(&self, a: &Append<'_>) -> StoreResult<Appended> {
        // Holding the idempotency entry makes check-and-store atomic for that key.
        let mut slot = match a.idempotency {
            Some((key, _)) => {
                if self.idempotency.len() > 100_000 {
                    let now = Instant::now();
                    self.idempotency.retain(|_, v| v.2 > now);
                }
                let entry = self.idempotency.entry(key.to_string());
                if let dashmap::Entry::Occupied(e) = &entry
                    && e.get().2 > Instant::now()
                {
                    let (id, first_seq, _) = *e.get();
                    return Ok(Appended {
                        id,
                        seqs: Vec::new(),
                        first_seq,
                        replayed: true,
                    });
                }
                Some(entry)
            }
            None => None,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut seqs = Vec::with_capacity(a.inboxes.len());
        let mut text = String::new();
        for user in a.inboxes {
            let mut inbox = self.inboxes.entry(*user).or_default();
            inbox.seq += 1;
            let seq = inbox.seq;
            text.clear();
            text.push_str("{\"id\":");
            text.push_str(itoa::Buffer::new().format(id));
            text.push_str(",\"seq\":");
            text.push_str(itoa::Buffer::new().format(seq));
            text.push(',');
            text.push_str(a.body);
            inbox.entries.push_back(text.as_str().into());
            while inbox.entries.len() as u64 > self.inbox_len {
                inbox.entries.pop_front();
            }
            seqs.push(seq);
        }
        let first_seq = seqs.first().copied().unwrap_or(0);
        if let (Some(entry), Some((_, ttl))) = (slot.take(), a.idempotency) {
            entry.insert((id, first_seq, Instant::now() + Duration::from_secs(ttl)));
        }
        Ok(Appended {
            id,
            seqs,
            first_seq,
            replayed: false,
        })
    }

    pub async fn latest_seq(&self, user: UserKey) -> StoreResult<u64> {
        Ok(self.inboxes.get(&user).map_or(0, |i| i.seq))
    }

    pub async fn inbox_after(
        &self,
        user: UserKey,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let Some(inbox) = self.inboxes.get(&user) else {
            return Ok(Vec::new());
        };
        let first = inbox.seq + 1 - inbox.entries.len() as u64;
        let start = after.saturating_add(1).max(first);
        let end = upto.min(inbox.seq);
        if start > end {
            return Ok(Vec::new());
        }
        let skip = (start - first) as usize;
        let take = ((end - start + 1) as usize).min(limit);
        Ok(inbox
            .entries
            .iter()
            .skip(skip)
            .take(take)
            .map(|s| s.to_string())
            .collect())
    }

    pub async fn inbox_latest(
        &self,
        user: UserKey,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let Some(inbox) = self.inboxes.get(&user) else {
            return Ok(Vec::new());
        };
        let first = inbox.seq + 1 - inbox.entries.len() as u64;
        let end = match before {
            Some(b) => (b.saturating_sub(first) as usize).min(inbox.entries.len()),
            None => inbox.entries.len(),
        };
        let start = end.saturating_sub(limit);
        Ok(inbox
            .entries
            .range(start..end)
            .map(|s| s.to_string())
            .collect())
    }

    pub async fn set_ack(&self, user: UserKey, device: &str, seq: u64) -> StoreResult<()> {
        let mut inbox = self.inboxes.entry(user).or_default();
        let seq = seq.min(inbox.seq);
        let slot = inbox.acks.entry(device.to_string()).or_insert(0);
        *slot = (*slot).max(seq);
        Ok(())
    }

    pub async fn unread_count(&self, user: UserKey, device: &str) -> StoreResult<u64> {
        let Some(inbox) = self.inboxes.get(&user) else {
            return Ok(0);
        };
        let acked = inbox.acks.get(device).copied().unwrap_or(0);
        Ok(inbox
            .seq
            .saturating_sub(acked)
            .min(inbox.entries.len() as u64))
    }
}
