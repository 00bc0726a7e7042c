//! The Lua scripts: each multi-step write is one atomic round-trip.

use std::sync::LazyLock;

use redis::Script;

/// Existing token or the fresh one; updates the name; keeps both original hashes in step.
/// Nothing (nil) for a blocked user.
pub(super) static GRANT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HGET', KEYS[1], 'blocked') == '1' then return false end
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

pub(super) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static UPDATE_USER: LazyLock<Script> = LazyLock::new(|| {
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
if ARGV[12] == '1' then redis.call('HSET', KEYS[1], 'avatar', ARGV[13]) end
return 1
"#,
    )
});

/// ARGV: field, token, field, token…; deletes a field only where it holds that token.
pub(super) static UNBIND: LazyLock<Script> = LazyLock::new(|| {
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

/// KEYS: the app's message-id counter, idempotency key, then (seq key, inbox key) per inbox.
/// ARGV: body (stored JSON after `{"id":N,"seq":M,`), inbox length, idempotency TTL (0 = none),
/// the seq field's name (`seq`, or `group_seq` on a super-group timeline), the message id to
/// store under (0 = allocate one: one message appended in several batches keeps one id), this
/// node's name ('' = no routing), then a group hash and the `ver` the sender's copy of the
/// group has ('' = no check: a copy older than the stored group stores nothing and answers
/// {2}, for the caller to load the group again). Stored and announced in one step (`ROUTING`): an inbox
/// message goes to every other live node holding a recipient's connections, a timeline entry
/// to every node at once. Returns {1, id, {seq…}, {online elsewhere for push: 0/1 per inbox}}
/// or, for a key seen before, {0, "<id>:<first seq>"}.
pub(super) static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}{}",
        super::node_scripts::ROUTING,
        r#"
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {0, prev} end
end
if ARGV[7] and ARGV[7] ~= '' and (redis.call('HGET', ARGV[7], 'ver') or '0') ~= ARGV[8] then
  return {2}
end
local id = tonumber(ARGV[5])
if id == 0 then id = redis.call('INCR', KEYS[1]) end
local keep = tonumber(ARGV[2])
local head = string.format('{"id":%d,"%s":', id, ARGV[4])
local node, timeline = alone(ARGV[6]), ARGV[4] == 'group_seq'
local seqs, elsewhere = {}, {}
for i = 3, #KEYS, 2 do
  local seq = redis.call('INCR', KEYS[i])
  local len = redis.call('RPUSH', KEYS[i + 1], head .. string.format('%d', seq) .. ',' .. ARGV[1])
  if len > keep then redis.call('LTRIM', KEYS[i + 1], len - keep, -1) end
  seqs[#seqs + 1] = seq
  if node ~= '' and not timeline then elsewhere[#elsewhere + 1] = route(node, tag(KEYS[i + 1]), seq) end
end
if ttl > 0 then
  redis.call('SET', KEYS[2], string.format('%d:%d', id, seqs[1] or 0), 'EX', ttl)
end
if node ~= '' then
  if timeline then
    redis.call('PUBLISH', 'imd:sg', string.format('g %s %s %d %d\n', node, tag(KEYS[4]), id, seqs[1]) .. ARGV[1])
  else
    flush(id, ARGV[1])
  end
end
return {1, id, seqs, elsewhere}
"#
    ))
});

/// KEYS: the app's message-id counter, then (seq key, inbox key) per inbox. ARGV: body head,
/// body tail, inbox length, this node's name ('' = no routing), then one uid per inbox,
/// spliced between head and tail. Each copy gets its own message id (one INCRBY for all) and
/// is routed like an `APPEND`. Returns {id, seq, id, seq, …}.
pub(super) static APPEND_EACH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}{}",
        super::node_scripts::ROUTING,
        r#"
local n = (#KEYS - 1) / 2
local last = redis.call('INCRBY', KEYS[1], n)
local keep = tonumber(ARGV[3])
local node = alone(ARGV[4])
local out = {}
for i = 1, n do
  local id = last - n + i
  local seq = redis.call('INCR', KEYS[2 * i])
  local head = string.format('{"id":%d,"seq":%d,', id, seq)
  local body = ARGV[1] .. ARGV[4 + i] .. ARGV[2]
  local len = redis.call('RPUSH', KEYS[2 * i + 1], head .. body)
  if len > keep then redis.call('LTRIM', KEYS[2 * i + 1], len - keep, -1) end
  if node ~= '' then
    route(node, tag(KEYS[2 * i + 1]), seq)
    flush(id, body)
  end
  out[#out + 1] = id
  out[#out + 1] = seq
end
return out
"#
    ))
});

/// KEYS: seq key, inbox key. ARGV: after, upto, limit. Messages with after < seq <= upto.
pub(super) static INBOX_AFTER: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static INBOX_LATEST: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static SET_ACK: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static UNREAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local acked = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local len = redis.call('LLEN', KEYS[3])
return math.max(0, math.min(last - acked, len))
"#,
    )
});

/// KEYS: customer_users_<app>_<customer_id>, customer_client_id. ARGV: uid base.
/// The customer's uid, allocated as base + counter the first time.
pub(super) static CUSTOMER_UID: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local uid = redis.call('GET', KEYS[1])
if uid then return uid end
uid = string.format('%d', tonumber(ARGV[1]) + redis.call('INCR', KEYS[2]))
redis.call('SET', KEYS[1], uid)
return uid
"#,
    )
});

/// KEYS: customer's users_ hash, the store's supporters hash, its load hash.
/// ARGV: store id, chosen supporter. Keeps a current assignment to a still-registered
/// supporter; otherwise assigns the chosen one (if still registered). Returns the supporter.
pub(super) static ASSIGN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('HMGET', KEYS[1], 'store_id', 'seller_id')
if cur[1] == ARGV[1] and cur[2] and redis.call('HEXISTS', KEYS[2], cur[2]) == 1 then return cur[2] end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return false end
redis.call('HSET', KEYS[1], 'store_id', ARGV[1], 'seller_id', ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
return ARGV[2]
"#,
    )
});
