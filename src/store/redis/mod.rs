//! The Redis backend (redis 1.x).
//!
//! Request-path commands go over one multiplexed `ConnectionManager`: concurrent requests are
//! pipelined on it automatically and it reconnects by itself after Redis restarts. Bulk work
//! (group fan-out writes) takes a dedicated connection from a bb8 pool so a long pipeline never
//! queues in front of small request-path commands. Multi-step writes are Lua scripts: one
//! round-trip, atomic, nothing half-written.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError};

use self::scripts::{GRANT, REVOKE, UNBIND, UPDATE_USER};

mod batch;
mod bus;
mod customers;
mod group_scripts;
mod groups;
mod live;
mod members;
mod messages;
mod node_scripts;
mod nodes;
mod scripts;
mod sync_keys;

use super::{StoreError, StoreResult, UserPatch, UserRecord, keys, sort_tokens};
use crate::config::StoreSettings;
use crate::domain::{DeviceToken, PushProvider, Uid, UserKey};

pub struct RedisStore {
    /// Tells this store's per-thread connections apart from another store's.
    id: u64,
    client: redis::Client,
    config: redis::aio::ConnectionManagerConfig,
    /// Dedicated connections for bulk pipelines.
    pool: bb8::Pool<redis::Client>,
    /// Bound on every operation; past it the request gets a 503.
    timeout: Duration,
    /// Messages kept per inbox.
    inbox_len: u64,
    /// This node's name once it has joined the nodes sharing this Redis (`nodes.rs`); unset,
    /// the append scripts route nothing (a store used by tools and tests alone).
    node: std::sync::OnceLock<String>,
    /// Where the subscriber connects, when not `client` (`node.pubsub_url`).
    pubsub: std::sync::OnceLock<redis::Client>,
    /// Set by a graceful shutdown: the heartbeat stops (`nodes.rs`).
    leaving: std::sync::atomic::AtomicBool,
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// What a Redis error means for the operation: `Unavailable` only when it certainly did not run
/// (Redis refused it, or was never reached); anything that may have reached Redis without an
/// answer coming back (timeouts, a connection lost mid-request) is `OutcomeUnknown`.
pub(super) fn map_err(e: RedisError) -> StoreError {
    use redis::ErrorKind as K;
    match e.kind() {
        K::UnexpectedReturnType | K::Parse => StoreError::Corrupt(e.to_string()),
        // Redis answered with an error (OOM, BUSY, LOADING, READONLY, …): it did not run.
        K::Server(_)
        | K::Extension
        | K::AuthenticationFailed
        | K::InvalidClientConfig
        | K::Client => StoreError::Unavailable(e.to_string()),
        _ if e.is_connection_refusal() => StoreError::Unavailable(e.to_string()),
        _ => StoreError::OutcomeUnknown(e.to_string()),
    }
}

impl RedisStore {
    pub async fn open(settings: &StoreSettings, inbox_len: u64) -> anyhow::Result<RedisStore> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = redis::Client::open(settings.redis_url.as_str()).map_err(|e| {
            let url = crate::config::redacted(&settings.redis_url);
            anyhow::anyhow!("store.redis_url {url:?}: {e}")
        })?;
        // Two reconnect attempts, 100 and 200 ms apart: a refused connection is reported
        // (`store_unavailable`) about 0.3 s after the command, within `timeout` unless that is
        // set shorter; past `timeout` nothing can tell refused from stalled (`outcome_unknown`).
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        // Checked once here; threads then build their own from the same client and config.
        ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| anyhow::anyhow!("redis connection manager: {e}"))?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pool = bb8::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .build_unchecked(client.clone());
        Ok(RedisStore {
            id,
            client: client.clone(),
            config,
            pool,
            timeout,
            inbox_len,
            node: std::sync::OnceLock::new(),
            pubsub: std::sync::OnceLock::new(),
            leaving: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// This thread's multiplexed, self-reconnecting connection for request-path commands.
    ///
    /// One per thread rather than one per process: the connection's I/O task then runs on the
    /// thread that issued the command, so a store call never wakes another thread (on two cores,
    /// cross-thread wake-ups cost more than the Redis round-trip itself). Commands of one
    /// thread stay in order on its connection.
    fn conn(&self) -> StoreResult<ConnectionManager> {
        thread_local! {
            static CONNS: std::cell::RefCell<Vec<(u64, ConnectionManager)>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        CONNS.with(|conns| {
            let mut conns = conns.borrow_mut();
            if let Some((_, c)) = conns.iter().find(|(id, _)| *id == self.id) {
                return Ok(c.clone());
            }
            let conn =
                ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
                    .map_err(map_err)?;
            conns.push((self.id, conn.clone()));
            Ok(conn)
        })
    }

    /// Runs one operation under the store timeout, mapping failures.
    async fn run<T>(&self, op: impl Future<Output = Result<T, RedisError>>) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_err(e)),
            Err(_) => Err(self.no_answer()),
        }
    }

    /// A timed-out command: it may be queued in Redis (a stall, a long script) and still run.
    fn no_answer(&self) -> StoreError {
        StoreError::OutcomeUnknown(format!(
            "no answer from redis within {} ms",
            self.timeout.as_millis()
        ))
    }

    /// A read on this thread's connection, sent again once if the connection turns out to
    /// have dropped: a Redis restarted while this thread's connection sat idle fails the first
    /// command on it (which starts the reconnect), and a connection thread's first command is
    /// often a WebSocket's token check. Reads only: a write that may have run is not repeated.
    async fn read<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        let mut c = self.conn()?;
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut c)).await {
            Ok(Err(e)) if e.is_unrecoverable_error() => self.run(cmd.query_async(&mut c)).await,
            Ok(r) => r.map_err(map_err),
            Err(_) => Err(self.no_answer()),
        }
    }

    /// Runs a script, on a dedicated pooled connection when `bulk` (long scripts must not hold
    /// up the small commands queued behind them on the multiplexed connection).
    async fn eval<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
        bulk: bool,
    ) -> StoreResult<T> {
        if bulk {
            let mut c = self.checkout().await?;
            self.run(inv.invoke_async(&mut *c)).await
        } else {
            let mut c = self.conn()?;
            self.run(inv.invoke_async(&mut c)).await
        }
    }

    /// Runs a pipeline on a dedicated pooled connection (bulk work).
    async fn bulk<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> StoreResult<T> {
        let mut c = self.checkout().await?;
        self.run(pipe.query_async(&mut *c)).await
    }

    /// A dedicated connection from the pool. No connection means nothing was sent: a failed
    /// checkout is a plain refusal (`Unavailable`), never an unknown outcome.
    async fn checkout(&self) -> StoreResult<bb8::PooledConnection<'_, redis::Client>> {
        match tokio::time::timeout(self.timeout, self.pool.get()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(bb8::RunError::User(e))) => Err(StoreError::Unavailable(e.to_string())),
            Ok(Err(bb8::RunError::TimedOut)) | Err(_) => Err(StoreError::Unavailable(
                "no pooled redis connection in time".into(),
            )),
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        let mut c = self.conn()?;
        let _: String = self.run(redis::cmd("PING").query_async(&mut c)).await?;
        Ok(())
    }

    pub async fn grant_token(
        &self,
        user: UserKey,
        name: Option<&str>,
        fresh: &str,
    ) -> StoreResult<Option<String>> {
        let mut c = self.conn()?;
        let mut inv = GRANT.prepare_invoke();
        inv.key(keys::user(user))
            .arg(fresh)
            .arg(user.app.0)
            .arg(user.uid.0)
            .arg(flag(name.is_some()))
            .arg(name.unwrap_or(""));
        self.run(inv.invoke_async(&mut c)).await
    }

    pub async fn resolve_token(&self, token: &str) -> StoreResult<Option<UserKey>> {
        let mut hmget = redis::cmd("HMGET");
        hmget
            .arg(keys::access_token(token))
            .arg("user_id")
            .arg("app_id");
        let (uid, app): (Option<String>, Option<String>) = self.read(&hmget).await?;
        let parse = |s: Option<String>| s.and_then(|s| crate::domain::parse_id(&s).ok());
        Ok(match (parse(app), parse(uid)) {
            (Some(app), Some(uid)) => Some(UserKey::new(crate::domain::AppId(app), Uid(uid))),
            _ => None,
        })
    }

    pub async fn revoke_token(&self, user: UserKey) -> StoreResult<bool> {
        let mut c = self.conn()?;
        let mut inv = REVOKE.prepare_invoke();
        inv.key(keys::user(user));
        let n: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(n == 1)
    }

    pub async fn set_blocked(&self, user: UserKey, blocked: bool) -> StoreResult<bool> {
        let mut c = self.conn()?;
        let changed: i64 = if blocked {
            self.run(c.hset(keys::user(user), "blocked", "1")).await?
        } else {
            self.run(c.hdel(keys::user(user), "blocked")).await?
        };
        Ok(changed == 1)
    }

    pub async fn update_user(&self, user: UserKey, patch: &UserPatch) -> StoreResult<()> {
        let mut c = self.conn()?;
        let mut inv = UPDATE_USER.prepare_invoke();
        let (dnd_peer, dnd_on) = patch.do_not_disturb.unwrap_or((Uid(0), false));
        inv.key(keys::user(user))
            .key(keys::user_peer_dnd(user))
            .key(keys::conversations_dnd(user))
            .arg(user.app.0)
            .arg(user.uid.0)
            .arg(flag(patch.name.is_some()))
            .arg(patch.name.as_deref().unwrap_or(""))
            .arg(flag(patch.do_not_disturb.is_some()))
            .arg(dnd_peer.0)
            .arg(flag(dnd_on))
            .arg(flag(patch.mute.is_some()))
            .arg(flag(patch.mute.unwrap_or(false)))
            .arg(flag(patch.forbidden.is_some()))
            .arg(flag(patch.forbidden.unwrap_or(false)))
            .arg(flag(patch.avatar.is_some()))
            .arg(patch.avatar.as_deref().unwrap_or(""));
        let _: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(())
    }

    pub async fn bind_device_tokens(
        &self,
        user: UserKey,
        tokens: &[(PushProvider, String)],
        now: u64,
    ) -> StoreResult<()> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut c = self.conn()?;
        let mut cmd = redis::cmd("HSET");
        cmd.arg(keys::user(user));
        for (provider, token) in tokens {
            cmd.arg(provider.token_field()).arg(token);
            cmd.arg(provider.timestamp_field()).arg(now);
        }
        let _: i64 = self.run(cmd.query_async(&mut c)).await?;
        Ok(())
    }

    pub async fn unbind_device_tokens(
        &self,
        user: UserKey,
        tokens: &[(PushProvider, String)],
    ) -> StoreResult<usize> {
        if tokens.is_empty() {
            return Ok(0);
        }
        let mut c = self.conn()?;
        let mut inv = UNBIND.prepare_invoke();
        inv.key(keys::user(user));
        for (provider, token) in tokens {
            inv.arg(provider.token_field()).arg(token);
        }
        let n: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(n.max(0) as usize)
    }

    pub async fn load_user(&self, user: UserKey) -> StoreResult<UserRecord> {
        let mut c = self.conn()?;
        let fields: HashMap<String, String> = self.run(c.hgetall(keys::user(user))).await?;
        Ok(parse_user(&fields))
    }
}

/// Reads the original user hash layout.
pub(super) fn parse_user(fields: &HashMap<String, String>) -> UserRecord {
    let truthy = |k: &str| fields.get(k).is_some_and(|v| v == "1" || v == "true");
    let mut record = UserRecord {
        name: fields.get("name").cloned().unwrap_or_default(),
        avatar: fields.get("avatar").cloned().unwrap_or_default(),
        mute: truthy("mute"),
        forbidden: truthy("forbidden"),
        ..UserRecord::default()
    };
    for (field, value) in fields {
        if let Some(peer) = field.strip_prefix("peer_") {
            if value == "1"
                && let Ok(peer) = crate::domain::parse_id(peer)
            {
                record.dnd_peers.push(Uid(peer));
            }
        } else if let Some(provider) = PushProvider::from_token_field(field)
            && !value.is_empty()
        {
            let bound_at = fields
                .get(provider.timestamp_field())
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            record.device_tokens.push(DeviceToken {
                provider,
                token: value.clone(),
                bound_at,
            });
        }
    }
    record.dnd_peers.sort_unstable();
    sort_tokens(&mut record.device_tokens);
    record
}
