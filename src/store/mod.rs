//! Persistence behind one interface with two backends that pass the same conformance suite:
//! `memory` (dashmap; the embedded default, nothing survives a restart) and `redis` (production;
//! GoBelieve's key layout where one exists, see `keys.rs`).
//!
//! `Store` is an enum rather than a trait object: two backends, static dispatch, no boxing of
//! futures on the hot path. Every method returns `StoreError` for a backend failure; the API
//! layer turns `Unavailable` into a 503.

pub mod keys;
mod memory;
mod redis;

use std::sync::Arc;

use crate::config::{StoreKind, StoreSettings};
use crate::domain::{DeviceToken, PushProvider, Uid, UserKey};

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time: retryable, 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with data we cannot interpret.
    #[error("unreadable stored data: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// User settings changed by `POST /users/{uid}`; every `Some` field is applied, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub name: Option<String>,
    /// (peer, on): do-not-disturb for messages from `peer`.
    pub do_not_disturb: Option<(Uid, bool)>,
    pub mute: Option<bool>,
    pub forbidden: Option<bool>,
}

impl UserPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.do_not_disturb.is_none()
            && self.mute.is_none()
            && self.forbidden.is_none()
    }
}

/// What the store knows about one user: the settings a session needs in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub mute: bool,
    pub forbidden: bool,
    /// Peers whose messages are not pushed to this user, ascending.
    pub dnd_peers: Vec<Uid>,
    /// Bound push tokens, newest binding first.
    pub device_tokens: Vec<DeviceToken>,
}

/// The store handle; cheap to clone.
#[derive(Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

/// Forwards a call to whichever backend this is.
macro_rules! backend {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Memory($s) => $call,
            Store::Redis($s) => $call,
        }
    };
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
    /// A given `name` replaces the stored name.
    pub async fn grant_token(
        &self,
        user: UserKey,
        name: Option<&str>,
        fresh: &str,
    ) -> StoreResult<String> {
        backend!(self, s => s.grant_token(user, name, fresh).await)
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
