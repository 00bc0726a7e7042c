//! The Lua of several nodes on one Redis (README "Running several nodes"): where each user's
//! connections are (`imd:loc:{app:uid}`, a hash `<node>` → connections, `<node>:m` → the
//! mobile ones), and the routing the append scripts do with it.

use std::sync::LazyLock;

use redis::Script;

use crate::domain::PushProvider;

/// Prepended to the append scripts.
///
/// `located(key, skip, each)` walks a location hash over the live nodes but `skip`;
/// `for_push(t, total, mobile)` applies SPEC §6 to what it found for user `t` (`app:uid`).
/// `tag(key)` is the `{app:uid}` hash tag of an inbox key (without braces). `route(node, t,
/// seq)` adds (user `t`, `seq`) to the frame of every other live node holding the user's
/// connections and says whether the user counts as online for push there (SPEC §6: a mobile
/// connection, or any while `mute` is set); `flush(id, body)` publishes those frames, one per
/// node however many of its users the message is for: `m <id> <app:uid:seq>,…\n<body>`. A
/// node is live while its `imd:alive:<node>` key exists (refreshed every 2 s, expiring after
/// 6 s): a dead node's entries are skipped at once and reaped later. `alone(node)` turns the
/// routing off while `imd:nodes` names this node only (one node costs what it did before).
pub(super) const ROUTING: &str = r#"
local function tag(key) return string.match(key, '{(.-)}') end
-- '' (route nothing) while this is the only node: a node is in `imd:nodes` before it takes
-- its first connection, and until it is reaped.
local function alone(node)
  if node ~= '' and redis.call('SCARD', 'imd:nodes') <= 1 then return '' end
  return node
end
local alive, routes, order = {}, {}, {}
local function is_alive(n)
  local a = alive[n]
  if a == nil then
    a = redis.call('EXISTS', 'imd:alive:' .. n) == 1
    alive[n] = a
  end
  return a
end
-- Calls each(name, connections, mobile) for the live nodes but `skip` in a location hash;
-- returns the connections and mobile connections over them.
local function located(key, skip, each)
  local loc = redis.call('HGETALL', key)
  local total, mobile = 0, 0
  for j = 1, #loc, 2 do
    local f, c = loc[j], tonumber(loc[j + 1])
    local m = string.sub(f, -2) == ':m'
    local name = f
    if m then name = string.sub(f, 1, -3) end
    if name ~= skip and c > 0 and is_alive(name) then
      if m then mobile = mobile + c else total = total + c end
      if each then each(name, c, m) end
    end
  end
  return total, mobile
end
-- Online for push (SPEC §6): a mobile connection, or any while the user's `mute` is set.
local function for_push(t, total, mobile)
  if mobile > 0 then return 1 end
  if total > 0 and redis.call('HGET', 'users_' .. (string.gsub(t, ':', '_')), 'mute') == '1' then
    return 1
  end
  return 0
end
local function route(node, t, seq)
  local total, mobile = located('imd:loc:{' .. t .. '}', node, function(name, _, m)
    if m then return end
    local r = routes[name]
    if not r then
      r = {}
      routes[name] = r
      order[#order + 1] = name
    end
    r[#r + 1] = t .. ':' .. seq
  end)
  return for_push(t, total, mobile)
end
local function flush(id, body)
  for _, n in ipairs(order) do
    redis.call('PUBLISH', 'imd:n:' .. n, 'm ' .. id .. ' ' .. table.concat(routes[n], ',') .. '\n' .. body)
  end
  routes, order = {}, {}
end
"#;

/// KEYS: the user's location hash, this node's user set, the user's inbox seq key. ARGV: node,
/// mobile (0/1), most connections allowed over every live node (0 = no limit), `app:uid`.
/// Counts the connection where the append scripts will find it and reads the inbox's newest
/// seq in the same step: every message after that seq is routed to this node, every one up to
/// it is stored (the `hello` seq). Returns {1, seq}, or {0, 0} at the limit.
pub(super) static CONNECT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local node, max = ARGV[1], tonumber(ARGV[3])
if max > 0 then
  local loc = redis.call('HGETALL', KEYS[1])
  local total = 0
  for j = 1, #loc, 2 do
    local f = loc[j]
    if string.sub(f, -2) ~= ':m' and (f == node or redis.call('EXISTS', 'imd:alive:' .. f) == 1) then
      total = total + tonumber(loc[j + 1])
    end
  end
  if total >= max then return {0, 0} end
end
redis.call('HINCRBY', KEYS[1], node, 1)
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], node .. ':m', 1) end
redis.call('SADD', KEYS[2], ARGV[4])
return {1, tonumber(redis.call('GET', KEYS[3]) or '0')}
"#,
    )
});

/// KEYS: the user's location hash, this node's user set. ARGV: node, mobile (0/1), `app:uid`.
pub(super) static DISCONNECT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local node = ARGV[1]
if ARGV[2] == '1' and redis.call('HINCRBY', KEYS[1], node .. ':m', -1) <= 0 then
  redis.call('HDEL', KEYS[1], node .. ':m')
end
if redis.call('HINCRBY', KEYS[1], node, -1) <= 0 then
  redis.call('HDEL', KEYS[1], node, node .. ':m')
  redis.call('SREM', KEYS[2], ARGV[3])
end
return 1
"#,
    )
});

/// KEYS: location hashes. ARGV: a node to leave out ('' = none), `push` (online for push, SPEC
/// §6, with the user's `mute` from `users_<app>_<uid>`), `group` (`push`, and 2 for a user
/// connected on another node but not online for push there who has no device token bound:
/// no push either) or `any` (any connection), then `<app>:<uid>` per key. 0/1(/2) per key,
/// over the live nodes.
pub(super) static PRESENCE: LazyLock<Script> = LazyLock::new(|| {
    let fields: Vec<String> = PushProvider::ALL
        .iter()
        .map(|p| format!("'{}'", p.token_field()))
        .collect();
    Script::new(&format!(
        "{ROUTING}local TOKENS = {{{}}}{}",
        fields.join(", "),
        r#"
local function tokenless(t)
  local v = redis.call('HMGET', 'users_' .. (string.gsub(t, ':', '_')), unpack(TOKENS))
  for j = 1, #TOKENS do
    if v[j] and v[j] ~= '' then return false end
  end
  return true
end
local out = {}
local only = ARGV[1] ~= '' and alone(ARGV[1]) == ''
for i, key in ipairs(KEYS) do
  local total, mobile = 0, 0
  if not only then total, mobile = located(key, ARGV[1]) end
  local on = 0
  if ARGV[2] == 'push' or ARGV[2] == 'group' then
    on = for_push(ARGV[2 + i], total, mobile)
    if on == 0 and total > 0 and ARGV[2] == 'group' and tokenless(ARGV[2 + i]) then on = 2 end
  elseif total > 0 then on = 1 end
  out[#out + 1] = on
end
return out
"#
    ))
});
