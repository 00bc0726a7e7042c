//! Memory backend: inboxes, message ids, idempotency records and acknowledged positions.

use std::time::{Duration, Instant};

use super::MemoryStore;
use crate::domain::{AppId, DeviceToken, UserKey};
use crate::ratelimit::SWEEP_ABOVE;
use crate::store::{Append, AppendEach, Appended, StoreResult, sort_tokens};

impl MemoryStore {
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

    pub async fn next_message_id(&self, app: AppId) -> StoreResult<u64> {
        Ok(self.next_id.take(app, 1))
    }

    /// Runs `store` (which appends with the message id, `id` or a new one, and returns the new
    /// seqs) unless the idempotency key was seen; holding the key's entry makes
    /// check-and-store atomic.
    pub(super) fn append_with(
        &self,
        app: AppId,
        id: Option<u64>,
        idempotency: Option<(&str, u64)>,
        store: impl FnOnce(u64) -> Vec<u64>,
    ) -> StoreResult<Appended> {
        let slot = match idempotency {
            Some((key, _)) => {
                if self.idempotency_sweep.due() && self.idempotency.len() > SWEEP_ABOVE {
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
                        elsewhere: Vec::new(),
                        stale: false,
                    });
                }
                Some(entry)
            }
            None => None,
        };
        let id = id.unwrap_or_else(|| self.next_id.take(app, 1));
        let seqs = store(id);
        let first_seq = seqs.first().copied().unwrap_or(0);
        if let (Some(entry), Some((_, ttl))) = (slot, idempotency) {
            entry.insert((id, first_seq, Instant::now() + Duration::from_secs(ttl)));
        }
        Ok(Appended {
            id,
            seqs,
            first_seq,
            replayed: false,
            elsewhere: Vec::new(),
            stale: false,
        })
    }

    pub async fn append(&self, a: &Append<'_>, id: Option<u64>) -> StoreResult<Appended> {
        let app = a.inboxes.first().map_or(AppId(0), |u| u.app);
        self.append_with(app, id, a.idempotency, |id| {
            a.inboxes
                .iter()
                .map(|u| {
                    self.inboxes
                        .entry(*u)
                        .or_default()
                        .push(id, "seq", a.body, self.inbox_len)
                })
                .collect()
        })
    }

    pub async fn append_each(&self, each: &AppendEach<'_>) -> StoreResult<Vec<(u64, u64)>> {
        let n = each.inboxes.len() as u64;
        let app = each.inboxes.first().map_or(AppId(0), |u| u.app);
        let first = self.next_id.take(app, n);
        Ok(each
            .inboxes
            .iter()
            .zip(first..)
            .map(|(u, id)| {
                let body = format!("{}{}{}", each.head, u.uid, each.tail);
                let seq =
                    self.inboxes
                        .entry(*u)
                        .or_default()
                        .push(id, "seq", &body, self.inbox_len);
                (id, seq)
            })
            .collect())
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
        Ok(self
            .inboxes
            .get(&user)
            .map(|i| i.after(after, upto, limit))
            .unwrap_or_default())
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
