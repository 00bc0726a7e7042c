//! The Redis backend (redis 1.x).
//!
//! Request-path commands go over one multiplexed `ConnectionManager`: concurrent requests are
//! pipelined on it automatically and it reconnects by itself after Redis restarts. Bulk work
//! (group fan-out writes) takes a dedicated connection from a bb8 pool so a long pipeline never
//! queues in front of small request-path commands. Multi-step writes are Lua scripts: one
//! round-trip, atomic, nothing half-written.

use std::collections::HashMap;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError, Script};

use super::{Append, Appended, StoreError, StoreResult, UserPatch, UserRecord, keys, sort_tokens};
use crate::config::StoreSettings;
use crate::domain::{DeviceToken, PushProvider, Uid, UserKey};

pub struct RedisStore {
    /// Multiplexed, self-reconnecting connection for request-path commands.
    conn: ConnectionManager,
    /// Dedicated connections for bulk pipelines.
    #[allow(dead_code)]
    pool: bb8::Pool<redis::Client>,
    /// Bound on every operation; past it the request gets a 503.
    timeout: Duration,
    /// Messages kept per inbox.
    inbox_len: u64,
}

/// Existing token or the fresh one; updates the name; keeps both original hashes in step.
static GRANT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local token = redis.call('HGET', KEYS[1], 'access_token')
local minted = false
if not token then
  token = ARGV[1]
  minted = true
  redis.call('HSET', KEYS[1], 'access_token', token)
end
local tk = 'access_token_' .. token
redis.call('HSET', tk, 'user_id', ARGV[3], 'app_id', ARGV[2])
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'name', ARGV[5])
  redis.call('HSET', tk, 'user_name', ARGV[5])
end
if minted then redis.call('PFADD', 'statistics_users_' .. ARGV[2], ARGV[3]) end
return token
"#,
    )
});

static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local token = redis.call('HGET', KEYS[1], 'access_token')
if not token then return 0 end
redis.call('HDEL', KEYS[1], 'access_token')
redis.call('DEL', 'access_token_' .. token)
return 1
"#,
    )
});

/// All fields of a `UserPatch` at once. DND is written in the three representations the
/// original components read (hash field, API set, push daemon set); mute also sets the token's
/// `notification_on` as the original API did.
static UPDATE_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'name', ARGV[4]) end
if ARGV[5] == '1' then
  local peer = ARGV[6]
  redis.call('HSET', KEYS[1], 'peer_' .. peer, ARGV[7])
  if ARGV[7] == '1' then
    redis.call('SADD', KEYS[2], peer)
    redis.call('SADD', KEYS[3], 'p:' .. peer)
  else
    redis.call('SREM', KEYS[2], peer)
    redis.call('SREM', KEYS[3], 'p:' .. peer)
  end
end
if ARGV[8] == '1' then
  redis.call('HSET', KEYS[1], 'mute', ARGV[9])
  local token = redis.call('HGET', KEYS[1], 'access_token')
  if token then
    local on = '1'
    if ARGV[9] == '1' then on = '0' end
    redis.call('HSET', 'access_token_' .. token, 'notification_on', on)
  end
end
if ARGV[10] == '1' then
  redis.call('HSET', KEYS[1], 'forbidden', ARGV[11])
  redis.call('PUBLISH', 'speak_forbidden', ARGV[1] .. ',' .. ARGV[2] .. ',' .. ARGV[11])
end
return 1
"#,
    )
});

/// ARGV: field, token, field, token…; deletes a field only where it holds that token.
static UNBIND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
"#,
    )
});

/// KEYS: message-id counter, idempotency key, then (seq key, inbox key) per inbox.
/// ARGV: body (stored JSON after `{"id":N,"seq":M,`), inbox length, idempotency TTL (0 = none).
/// Returns {1, id, {seq…}} or, for a key seen before, {0, "<id>:<first seq>"}.
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {0, prev} end
end
local id = redis.call('INCR', KEYS[1])
local keep = tonumber(ARGV[2])
local head = string.format('{"id":%d,"seq":', id)
local seqs = {}
for i = 3, #KEYS, 2 do
  local seq = redis.call('INCR', KEYS[i])
  local len = redis.call('RPUSH', KEYS[i + 1], head .. string.format('%d', seq) .. ',' .. ARGV[1])
  if len > keep then redis.call('LTRIM', KEYS[i + 1], len - keep, -1) end
  seqs[#seqs + 1] = seq
end
if ttl > 0 then
  redis.call('SET', KEYS[2], string.format('%d:%d', id, seqs[1] or 0), 'EX', ttl)
end
return {1, id, seqs}
"#,
    )
});

/// KEYS: seq key, inbox key. ARGV: after, upto, limit. Messages with after < seq <= upto.
static INBOX_AFTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local len = redis.call('LLEN', KEYS[2])
local first = last - len + 1
local start = math.max(tonumber(ARGV[1]) + 1, first)
local stop = math.min(tonumber(ARGV[2]), last, start + tonumber(ARGV[3]) - 1)
if start > stop then return {} end
return redis.call('LRANGE', KEYS[2], start - first, stop - first)
"#,
    )
});

/// KEYS: seq key, inbox key. ARGV: before (0 = none), limit. Newest `limit` with seq < before.
static INBOX_LATEST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local len = redis.call('LLEN', KEYS[2])
local first = last - len + 1
local stop = last
local before = tonumber(ARGV[1])
if before > 0 then stop = math.min(last, before - 1) end
local start = math.max(first, stop - tonumber(ARGV[2]) + 1)
if start > stop then return {} end
return redis.call('LRANGE', KEYS[2], start - first, stop - first)
"#,
    )
});

/// KEYS: acks hash, seq key. ARGV: device, seq. Keeps the maximum, capped at the newest seq.
static SET_ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = math.min(tonumber(ARGV[2]), last)
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if seq > cur then redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', seq)) end
return 1
"#,
    )
});

/// KEYS: acks hash, seq key, inbox key. ARGV: device. Stored messages after the device's ack.
static UNREAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local acked = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local len = redis.call('LLEN', KEYS[3])
return math.max(0, math.min(last - acked, len))
"#,
    )
});

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

pub(super) fn map_err(e: RedisError) -> StoreError {
    match e.kind() {
        redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

impl RedisStore {
    pub async fn open(settings: &StoreSettings, inbox_len: u64) -> anyhow::Result<RedisStore> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = redis::Client::open(settings.redis_url.as_str())
            .map_err(|e| anyhow::anyhow!("store.redis_url {:?}: {e}", settings.redis_url))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| anyhow::anyhow!("redis connection manager: {e}"))?;
        let pool = bb8::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .build_unchecked(client);
        Ok(RedisStore {
            conn,
            pool,
            timeout,
            inbox_len,
        })
    }

    /// Runs one operation under the store timeout, mapping failures.
    async fn run<T>(&self, op: impl Future<Output = Result<T, RedisError>>) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_err(e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from redis within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        let mut c = self.conn.clone();
        let _: String = self.run(redis::cmd("PING").query_async(&mut c)).await?;
        Ok(())
    }

    pub async fn grant_token(
        &self,
        user: UserKey,
        name: Option<&str>,
        fresh: &str,
    ) -> StoreResult<String> {
        let mut c = self.conn.clone();
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
        let mut c = self.conn.clone();
        let (uid, app): (Option<String>, Option<String>) = self
            .run(
                redis::cmd("HMGET")
                    .arg(keys::access_token(token))
                    .arg("user_id")
                    .arg("app_id")
                    .query_async(&mut c),
            )
            .await?;
        let parse = |s: Option<String>| s.and_then(|s| crate::domain::parse_id(&s).ok());
        Ok(match (parse(app), parse(uid)) {
            (Some(app), Some(uid)) => Some(UserKey::new(crate::domain::AppId(app), Uid(uid))),
            _ => None,
        })
    }

    pub async fn revoke_token(&self, user: UserKey) -> StoreResult<bool> {
        let mut c = self.conn.clone();
        let mut inv = REVOKE.prepare_invoke();
        inv.key(keys::user(user));
        let n: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(n == 1)
    }

    pub async fn update_user(&self, user: UserKey, patch: &UserPatch) -> StoreResult<()> {
        let mut c = self.conn.clone();
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
            .arg(flag(patch.forbidden.unwrap_or(false)));
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
        let mut c = self.conn.clone();
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
        let mut c = self.conn.clone();
        let mut inv = UNBIND.prepare_invoke();
        inv.key(keys::user(user));
        for (provider, token) in tokens {
            inv.arg(provider.token_field()).arg(token);
        }
        let n: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(n.max(0) as usize)
    }

    pub async fn device_tokens(&self, users: &[UserKey]) -> StoreResult<Vec<Vec<DeviceToken>>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for u in users {
            pipe.hgetall(keys::user(*u));
        }
        let all: Vec<HashMap<String, String>> = self.run(pipe.query_async(&mut c)).await?;
        Ok(all.iter().map(|f| parse_user(f).device_tokens).collect())
    }

    pub async fn next_message_id(&self) -> StoreResult<u64> {
        let mut c = self.conn.clone();
        self.run(c.incr(keys::MESSAGE_ID, 1)).await
    }

    pub async fn append(&self, a: &Append<'_>) -> StoreResult<Appended> {
        let mut inv = APPEND.prepare_invoke();
        inv.key(keys::MESSAGE_ID);
        match a.idempotency {
            Some((key, _)) => inv.key(keys::idempotency(key)),
            None => inv.key("imd:idem:-"),
        };
        for user in a.inboxes {
            inv.key(keys::inbox_seq(*user)).key(keys::inbox(*user));
        }
        inv.arg(a.body)
            .arg(self.inbox_len)
            .arg(a.idempotency.map_or(0, |(_, ttl)| ttl.max(1)));
        // Big fan-outs take a dedicated connection so they do not hold up small commands.
        let reply: redis::Value = if a.inboxes.len() > 64 {
            let pool = self.pool.clone();
            self.run(async move {
                let mut c = pool.get().await.map_err(|e| match e {
                    bb8::RunError::User(e) => e,
                    bb8::RunError::TimedOut => RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "redis pool checkout timed out",
                    )),
                })?;
                inv.invoke_async(&mut *c).await
            })
            .await?
        } else {
            let mut c = self.conn.clone();
            self.run(inv.invoke_async(&mut c)).await?
        };
        parse_appended(reply)
    }

    pub async fn latest_seq(&self, user: UserKey) -> StoreResult<u64> {
        let mut c = self.conn.clone();
        let v: Option<u64> = self.run(c.get(keys::inbox_seq(user))).await?;
        Ok(v.unwrap_or(0))
    }

    pub async fn inbox_after(
        &self,
        user: UserKey,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut c = self.conn.clone();
        let mut inv = INBOX_AFTER.prepare_invoke();
        inv.key(keys::inbox_seq(user))
            .key(keys::inbox(user))
            .arg(after)
            .arg(upto)
            .arg(limit);
        self.run(inv.invoke_async(&mut c)).await
    }

    pub async fn inbox_latest(
        &self,
        user: UserKey,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let mut c = self.conn.clone();
        let mut inv = INBOX_LATEST.prepare_invoke();
        inv.key(keys::inbox_seq(user))
            .key(keys::inbox(user))
            .arg(before.unwrap_or(0))
            .arg(limit);
        self.run(inv.invoke_async(&mut c)).await
    }

    pub async fn set_ack(&self, user: UserKey, device: &str, seq: u64) -> StoreResult<()> {
        let mut c = self.conn.clone();
        let mut inv = SET_ACK.prepare_invoke();
        inv.key(keys::acks(user))
            .key(keys::inbox_seq(user))
            .arg(device)
            .arg(seq);
        let _: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(())
    }

    pub async fn unread_count(&self, user: UserKey, device: &str) -> StoreResult<u64> {
        let mut c = self.conn.clone();
        let mut inv = UNREAD.prepare_invoke();
        inv.key(keys::acks(user))
            .key(keys::inbox_seq(user))
            .key(keys::inbox(user))
            .arg(device);
        let n: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(n.max(0) as u64)
    }

    pub async fn load_user(&self, user: UserKey) -> StoreResult<UserRecord> {
        let mut c = self.conn.clone();
        let fields: HashMap<String, String> = self.run(c.hgetall(keys::user(user))).await?;
        Ok(parse_user(&fields))
    }
}

/// Reads the original user hash layout.
fn parse_user(fields: &HashMap<String, String>) -> UserRecord {
    let truthy = |k: &str| fields.get(k).is_some_and(|v| v == "1" || v == "true");
    let mut record = UserRecord {
        name: fields.get("name").cloned().unwrap_or_default(),
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

/// Reads the APPEND script's reply.
fn parse_appended(reply: redis::Value) -> StoreResult<Appended> {
    use redis::Value;
    let corrupt = || StoreError::Corrupt("unexpected reply from the append script".into());
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n as u64),
        _ => None,
    };
    let Value::Array(items) = reply else {
        return Err(corrupt());
    };
    match items.as_slice() {
        [Value::Int(0), prev] => {
            let text: String = redis::from_redis_value_ref(prev).map_err(|_| corrupt())?;
            let (id, seq) = text.split_once(':').ok_or_else(corrupt)?;
            Ok(Appended {
                id: id.parse().map_err(|_| corrupt())?,
                seqs: Vec::new(),
                first_seq: seq.parse().map_err(|_| corrupt())?,
                replayed: true,
            })
        }
        [Value::Int(1), id, seqs] => {
            let id = int(id).ok_or_else(corrupt)?;
            let seqs: Vec<u64> = match seqs {
                Value::Array(v) => v
                    .iter()
                    .map(int)
                    .collect::<Option<_>>()
                    .ok_or_else(corrupt)?,
                _ => return Err(corrupt()),
            };
            Ok(Appended {
                id,
                first_seq: seqs.first().copied().unwrap_or(0),
                seqs,
                replayed: false,
            })
        }
        _ => Err(corrupt()),
    }
}
