//! Persistence behind one interface with two backends that pass the same conformance suite:
//! `memory` (dashmap; the embedded default, nothing survives a restart) and `redis` (production;
//! GoBelieve's key layout where one exists, see `keys.rs`).
//!
//! `Store` is an enum rather than a trait object: two backends, static dispatch, no boxing of
//! futures on the hot path. Every method returns `StoreError` for a backend failure; the API
//! layer turns `Unavailable` and `OutcomeUnknown` into 503s that say which it was.

/// Forwards a `Store` method to whichever backend this is (both implement the same inherent
/// methods). Defined before the submodules so `customers` and `groups` share it.
macro_rules! backend {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Memory($s) => $call,
            Store::Redis($s) => $call,
        }
    };
}

pub mod cluster;
mod customers;
mod groups;
pub mod keys;
mod memory;
mod redis;

use std::sync::Arc;

use crate::config::{StoreKind, StoreSettings};
use crate::domain::{AppId, DeviceToken, GroupId, GroupKey, PushProvider, Uid, UserKey};

pub use self::customers::Supporter;
pub use self::groups::{GroupEvent, GroupRecord, MEMBERS_PAGE, MemberPatch, MemberRecord};
pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend refused the operation or could not be reached: nothing was done. Retryable,
    /// 503 `store_unavailable`.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The operation may have reached the backend, but no answer came (a timeout, a connection
    /// lost mid-request): it may or may not have taken effect. 503 `outcome_unknown`; a retry
    /// with the same idempotency key makes it happen exactly once.
    #[error("no answer from the store, the outcome is unknown: {0}")]
    OutcomeUnknown(String),
    /// The backend answered with data we cannot interpret.
    #[error("unreadable stored data: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// User settings changed by `POST /users/{uid}`; every `Some` field is applied, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub name: Option<String>,
    /// Customers' and supporters' avatar URL.
    pub avatar: Option<String>,
    /// (peer, on): do-not-disturb for messages from `peer`.
    pub do_not_disturb: Option<(Uid, bool)>,
    pub mute: Option<bool>,
    pub forbidden: Option<bool>,
}

impl UserPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.avatar.is_none()
            && self.do_not_disturb.is_none()
            && self.mute.is_none()
            && self.forbidden.is_none()
    }
}

/// What the store knows about one user: the settings a session needs in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub avatar: String,
    pub mute: bool,
    pub forbidden: bool,
    /// Peers whose messages are not pushed to this user, ascending.
    pub dnd_peers: Vec<Uid>,
    /// Bound push tokens, newest binding first.
    pub device_tokens: Vec<DeviceToken>,
}

/// One message to append to one or more inboxes, atomically, with one message id.
#[derive(Debug, Clone)]
pub struct Append<'a> {
    /// Inboxes that get a copy; `inboxes[0]`'s seq is the one remembered for an idempotent
    /// replay (the sender's for peer sends, the receiver's for system messages).
    pub inboxes: &'a [UserKey],
    /// The stored JSON after its opening brace and the `"id"`/`"seq"` fields, starting with
    /// `"kind":` and ending with `}` (see `dispatch::frame`).
    pub body: &'a str,
    /// Idempotency key (already namespaced) and how long it is remembered.
    pub idempotency: Option<(&'a str, u64)>,
}

/// One notification for several users, each copy naming its own user: inbox `i` stores
/// `head`, the uid of `inboxes[i]`, `tail` as its body, under a message id of its own.
#[derive(Debug, Clone)]
pub struct AppendEach<'a> {
    pub inboxes: &'a [UserKey],
    /// The body (as for `Append::body`) up to where the uid goes.
    pub head: &'a str,
    /// The body after the uid.
    pub tail: &'a str,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub id: u64,
    /// The new seq in each inbox, in `inboxes` order; empty for a replay.
    pub seqs: Vec<u64>,
    /// `inboxes[0]`'s seq (also for a replay).
    pub first_seq: u64,
    /// True when the idempotency key had been seen: nothing was stored this time.
    pub replayed: bool,
    /// Per inbox, in `inboxes` order: the user counts as online for push (SPEC §6) on another
    /// live node. Empty for a replay, the memory store and a store that is not a node.
    pub elsewhere: Vec<bool>,
    /// Nothing was stored: the sender's copy of the group is older than the stored group
    /// (`Store::append_in_group`); load it again and retry.
    pub stale: bool,
}

/// The store handle; cheap to clone.
#[derive(Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

impl Store {
    /// Builds the configured backend. Redis connects lazily and reconnects by itself; an
    /// unreachable Redis at start-up is reported, not fatal (`/readyz` says 503 until it is up).
    pub async fn open(settings: &StoreSettings, inbox_len: u64) -> anyhow::Result<Store> {
        Ok(match settings.kind {
            StoreKind::Memory => Store::Memory(Arc::new(MemoryStore::new(inbox_len))),
            StoreKind::Redis => {
                Store::Redis(Arc::new(RedisStore::open(settings, inbox_len).await?))
            }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// Round-trip to the backend (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        backend!(self, s => s.ping().await)
    }

    /// The user's permanent token: the existing one, or `fresh` if the user has none yet.
    /// A given `name` replaces the stored name. `None` (and nothing changed) while the user is
    /// blocked.
    pub async fn grant_token(
        &self,
        user: UserKey,
        name: Option<&str>,
        fresh: &str,
    ) -> StoreResult<Option<String>> {
        backend!(self, s => s.grant_token(user, name, fresh).await)
    }

    /// Blocks (no token is granted until unblocked) or unblocks a user; whether that changed
    /// anything. Revoking a customer blocks them: they could register again otherwise.
    pub async fn set_blocked(&self, user: UserKey, blocked: bool) -> StoreResult<bool> {
        backend!(self, s => s.set_blocked(user, blocked).await)
    }

    /// Who a bearer token belongs to, if anyone.
    pub async fn resolve_token(&self, token: &str) -> StoreResult<Option<UserKey>> {
        backend!(self, s => s.resolve_token(token).await)
    }

    /// Forgets the user's token (it stops authenticating at once); returns whether there was one.
    pub async fn revoke_token(&self, user: UserKey) -> StoreResult<bool> {
        backend!(self, s => s.revoke_token(user).await)
    }

    pub async fn update_user(&self, user: UserKey, patch: &UserPatch) -> StoreResult<()> {
        backend!(self, s => s.update_user(user, patch).await)
    }

    /// Stores each (provider, token) with bind time `now` (seconds).
    pub async fn bind_device_tokens(
        &self,
        user: UserKey,
        tokens: &[(PushProvider, String)],
        now: u64,
    ) -> StoreResult<()> {
        backend!(self, s => s.bind_device_tokens(user, tokens, now).await)
    }

    /// Removes each provider's token only where it equals the given one; returns how many went.
    pub async fn unbind_device_tokens(
        &self,
        user: UserKey,
        tokens: &[(PushProvider, String)],
    ) -> StoreResult<usize> {
        backend!(self, s => s.unbind_device_tokens(user, tokens).await)
    }

    pub async fn load_user(&self, user: UserKey) -> StoreResult<UserRecord> {
        backend!(self, s => s.load_user(user).await)
    }

    /// Bound device tokens of several users of one app (newest first each), in one round-trip.
    pub async fn device_tokens(&self, users: &[UserKey]) -> StoreResult<Vec<Vec<DeviceToken>>> {
        backend!(self, s => s.device_tokens(users).await)
    }

    /// A fresh message id (for messages that are not stored, e.g. notifications).
    pub async fn next_message_id(&self, app: AppId) -> StoreResult<u64> {
        backend!(self, s => s.next_message_id(app).await)
    }

    /// Stores one message in every listed inbox with a new id and the next seq of each inbox,
    /// trimming each inbox to the configured length; with an idempotency key seen before, stores
    /// nothing and returns the first result.
    pub async fn append(&self, append: &Append<'_>) -> StoreResult<Appended> {
        self.append_as(append, None).await
    }

    /// `append` of a group message from a copy of the group at version `ver` (the group's
    /// `ver` field, moved by every change): nothing is stored (`stale`) if the group changed
    /// since, so the recipients are always the members as stored.
    pub async fn append_in_group(
        &self,
        append: &Append<'_>,
        group: GroupKey,
        ver: u64,
    ) -> StoreResult<Appended> {
        match self {
            Store::Memory(s) => s.append(append, None).await,
            Store::Redis(s) => s.append_checked(append, None, Some((group, ver))).await,
        }
    }

    /// `append`, under the given message id (`Some`: from an earlier append or
    /// `next_message_id`) instead of a new one, so one message stored in several batches has
    /// one id everywhere (SPEC §5.2). `None` allocates one, as `append` does.
    pub async fn append_as(&self, append: &Append<'_>, id: Option<u64>) -> StoreResult<Appended> {
        let started = std::time::Instant::now();
        let result = backend!(self, s => s.append(append, id).await);
        metrics::histogram!("imd_store_op_duration_seconds", "op" => "append")
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Stores one copy per inbox (`AppendEach`); returns (message id, seq) of each, in
    /// `inboxes` order.
    pub async fn append_each(&self, each: &AppendEach<'_>) -> StoreResult<Vec<(u64, u64)>> {
        backend!(self, s => s.append_each(each).await)
    }

    /// The newest seq of the user's inbox (0 when empty).
    pub async fn latest_seq(&self, user: UserKey) -> StoreResult<u64> {
        backend!(self, s => s.latest_seq(user).await)
    }

    /// Stored messages with `after < seq <= upto`, oldest first, at most `limit`.
    pub async fn inbox_after(
        &self,
        user: UserKey,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let started = std::time::Instant::now();
        let result = backend!(self, s => s.inbox_after(user, after, upto, limit).await);
        metrics::histogram!("imd_store_op_duration_seconds", "op" => "inbox_after")
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// The newest `limit` stored messages with `seq < before` (any when `None`), oldest first.
    pub async fn inbox_latest(
        &self,
        user: UserKey,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        backend!(self, s => s.inbox_latest(user, before, limit).await)
    }

    /// Records that a device has everything up to `seq` (never moves backwards).
    pub async fn set_ack(&self, user: UserKey, device: &str, seq: u64) -> StoreResult<()> {
        backend!(self, s => s.set_ack(user, device, seq).await)
    }

    /// A binary client's confirmed sync key (0 if none): the personal one, or a super group's.
    pub async fn sync_key(&self, user: UserKey, group: Option<GroupId>) -> StoreResult<u64> {
        backend!(self, s => s.sync_key(user, group).await)
    }

    /// Records a confirmed sync key; it never moves backwards.
    pub async fn set_sync_key(
        &self,
        user: UserKey,
        group: Option<GroupId>,
        key: u64,
    ) -> StoreResult<()> {
        backend!(self, s => s.set_sync_key(user, group, key).await)
    }

    /// The unread count a client reported (UNREAD_COUNT; the original's `unread` field).
    pub async fn set_unread(&self, user: UserKey, count: i32) -> StoreResult<()> {
        backend!(self, s => s.set_unread(user, count).await)
    }

    /// Messages in the inbox after the device's acknowledged position.
    pub async fn unread_count(&self, user: UserKey, device: &str) -> StoreResult<u64> {
        backend!(self, s => s.unread_count(user, device).await)
    }
}

/// The seq of a stored message (its JSON starts with `{"id":N,"seq":M,` or, on a super-group
/// timeline, `{"id":N,"group_seq":M,`).
pub fn stored_seq(stored: &str) -> Option<u64> {
    let rest = &stored[stored.find("seq\":")? + 5..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// Device key of acknowledged positions: `<platform>:<device_id>`.
pub fn device_key(platform: u8, device_id: &str) -> String {
    format!("{platform}:{device_id}")
}

/// Sorts device tokens newest binding first (ties: provider order), as push jobs list them.
pub(crate) fn sort_tokens(tokens: &mut [DeviceToken]) {
    tokens.sort_by(|a, b| {
        b.bound_at.cmp(&a.bound_at).then_with(|| {
            let pos = |p: PushProvider| PushProvider::ALL.iter().position(|x| *x == p);
            pos(a.provider).cmp(&pos(b.provider))
        })
    });
}
