//! The Lua scripts of groups: each change of a group, its members, the per-user index of super
//! groups (`imd:ugroups:<app>:<uid>`) and its `group_manager_stream` events is one atomic
//! script. A membership change of more members than fit in one short script is staged, then
//! committed, then applied in chunks (`members.rs`).

use std::sync::LazyLock;

use redis::Script;

/// `emit(events)` appends `group_manager_stream` entries in the original format: event `i`
/// takes action id `first + i` of one `INCRBY groups_actions_id n`, with the previous event's
/// id as `previous_action_id`, and `groups_actions` ends as "<previous>:<last>" — what one
/// `INCR` + `SET` per event gives, in a fraction of the commands. `emit_members` does the same
/// for one event per member of a membership change, without building a table per event.
///
/// `gkey(app, gid)` is the group hash's name (`keys::group`), `uindex(app, uid)` a user's
/// super-group index (`keys::user_groups`).
///
/// `mkey(app, gid, super, uid)` is the hash holding member `uid` (`keys::member_bucket` for a
/// super group, whose values start with the uid: `uid,joined_at,…`, so a bucket loads with
/// HVALS).
///
/// `apply(gid, op, items, app, super)` applies a chunk of a membership change: `op` `add`
/// (items `uid|encoded member`, never overwriting a member) or `remove` (items are uids),
/// keeping a super group's `imd:ugroups:` index in step, with one event per member that
/// actually changed.
const PRELUDE: &str = r#"
local function actions(n)
  local last = redis.call('INCRBY', 'groups_actions_id', n)
  local cur = redis.call('GET', 'groups_actions')
  local prev = '0'
  if cur then prev = string.match(cur, '(%d+)$') or '0' end
  return last - n + 1, prev
end

local function emit(events)
  local n = #events
  if n == 0 then return end
  local first, a = actions(n)
  local prev = a
  for i, ev in ipairs(events) do
    prev = a
    a = string.format('%d', first + i - 1)
    local args = {'XADD', 'group_manager_stream', 'MAXLEN', '~', '100000', '*'}
    for _, x in ipairs(ev) do args[#args + 1] = x end
    args[#args + 1] = 'previous_action_id'
    args[#args + 1] = prev
    args[#args + 1] = 'action_id'
    args[#args + 1] = a
    redis.call(unpack(args))
  end
  redis.call('SET', 'groups_actions', prev .. ':' .. a)
end

local function emit_members(name, gid, uids)
  local n = #uids
  if n == 0 then return end
  local first, a = actions(n)
  local prev = a
  for i, uid in ipairs(uids) do
    prev = a
    a = string.format('%d', first + i - 1)
    redis.call('XADD', 'group_manager_stream', 'MAXLEN', '~', '100000', '*', 'name', name,
      'group_id', gid, 'member_id', uid, 'previous_action_id', prev, 'action_id', a)
  end
  redis.call('SET', 'groups_actions', prev .. ':' .. a)
end

local function gkey(app, gid)
  return 'imd:group:{' .. app .. ':' .. gid .. '}'
end

local function uindex(app, uid)
  return 'imd:ugroups:{' .. app .. ':' .. uid .. '}'
end

local function mkey(app, gid, super, uid)
  if super then
    return gkey(app, gid) .. ':members:' .. tonumber(string.sub(uid, -2))
  end
  return gkey(app, gid) .. ':members'
end

local function announce(app, gid, added)
  local g = gkey(app, gid)
  if redis.call('EXISTS', g) == 1 then redis.call('HINCRBY', g, 'ver', 1) end
  local msg = 'c group ' .. app .. ' ' .. gid
  if added and #added > 0 then msg = msg .. ' ' .. table.concat(added, ',') end
  redis.call('PUBLISH', 'imd:ctl', msg)
end

local function apply(gid, op, items, app, super)
  local changed = {}
  local members = gkey(app, gid) .. ':members'
  local bucketed = members .. ':'
  for _, it in ipairs(items) do
    if op == 'add' then
      local sep = string.find(it, '|', 1, true)
      local uid = string.sub(it, 1, sep - 1)
      local key, v = members, string.sub(it, sep + 1)
      if super then
        key = bucketed .. tonumber(string.sub(uid, -2))
        v = uid .. ',' .. v
      end
      if redis.call('HSETNX', key, uid, v) == 1 then
        if super then redis.call('SADD', uindex(app, uid), gid) end
        changed[#changed + 1] = uid
      end
    else
      local key = members
      if super then key = bucketed .. tonumber(string.sub(it, -2)) end
      if redis.call('HDEL', key, it) == 1 then
        if super then redis.call('SREM', uindex(app, it), gid) end
        changed[#changed + 1] = it
      end
    end
  end
  local name = 'group_member_remove'
  if op == 'add' then name = 'group_member_add' end
  emit_members(name, gid, changed)
  if op == 'add' and super then announce(app, gid, changed) else announce(app, gid) end
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// KEYS: the app's group-id counter. ARGV: requested id (0 = allocate), app, name, master, super,
/// staging list ('' = none), then `uid|encoded` members. Returns the id, or 0 when the
/// requested id is taken. With a staging list the members are not applied here: the list
/// becomes the group's journal (`journal` = add), applied by `APPLY_JOURNAL`. The requested
/// id stays a string: Lua numbers are doubles, exact only up to 2^53.
pub(super) static CREATE_GROUP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local g = ARGV[1]
if g == '0' then
  repeat
    g = string.format('%d', redis.call('INCR', KEYS[1]))
  until redis.call('EXISTS', gkey(ARGV[2], g)) == 0
elseif redis.call('EXISTS', gkey(ARGV[2], g)) == 1 then
  if ARGV[6] ~= '' then redis.call('DEL', ARGV[6]) end
  return 0
end
local group = gkey(ARGV[2], g)
local members = group .. ':members'
redis.call('UNLINK', members, group .. ':journal')
redis.call('HSET', group, 'app', ARGV[2], 'name', ARGV[3], 'master', ARGV[4], 'super', ARGV[5])
emit({{'name', 'group_create', 'group_id', g, 'app_id', ARGV[2], 'super', ARGV[5]}})
if ARGV[6] ~= '' then
  if redis.call('EXISTS', ARGV[6]) == 1 then
    redis.call('RENAME', ARGV[6], group .. ':journal')
    redis.call('PERSIST', group .. ':journal')
    redis.call('HSET', group, 'journal', 'add')
  end
else
  local items = {}
  for i = 7, #ARGV do items[#items + 1] = ARGV[i] end
  apply(g, 'add', items, ARGV[2], ARGV[5] == '1')
end
announce(ARGV[2], g)
return g
"#,
    )
});

/// KEYS: group hash. ARGV: gid, op (`add` | `remove`), new master ('' = same), then the items
/// of `apply`. 0 when the group does not exist.
pub(super) static CHANGE_MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local meta = redis.call('HMGET', KEYS[1], 'app', 'super')
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'master', ARGV[3]) end
local items = {}
for i = 4, #ARGV do items[#items + 1] = ARGV[i] end
apply(ARGV[1], ARGV[2], items, meta[1], meta[2] == '1')
return 1
"#,
    )
});

/// KEYS: group hash, staging list, journal list. ARGV: op, new master ('' = same). Makes the
/// staged change the group's journal: from here it will be applied in full. 1 committed, 0 no
/// such group, -1 another change is still being applied, -2 the staging list expired.
pub(super) static COMMIT_MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'journal') == 1 then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -2 end
redis.call('RENAME', KEYS[2], KEYS[3])
redis.call('PERSIST', KEYS[3])
redis.call('HSET', KEYS[1], 'journal', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'master', ARGV[2]) end
return 1
"#,
    )
});

/// KEYS: group hash, journal list. ARGV: gid, chunk size. Applies (and takes off the
/// journal) the next chunk of the committed change; 1 while some is left, 0 when the journal
/// is done (or there is none).
pub(super) static APPLY_JOURNAL: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local meta = redis.call('HMGET', KEYS[1], 'journal', 'app', 'super')
if not meta[1] then return 0 end
local items = redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('LTRIM', KEYS[2], #items, -1)
apply(ARGV[1], meta[1], items, meta[2], meta[3] == '1')
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
redis.call('HDEL', KEYS[1], 'journal')
return 0
"#,
    )
});

/// KEYS: group hash, users_<app>_<uid>, its group DND set, the push daemon's DND set.
/// ARGV: events JSON, uid, encoded member, gid, dnd (0/1), app.
pub(super) static UPDATE_MEMBER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local super = redis.call('HGET', KEYS[1], 'super') == '1'
local members = mkey(ARGV[6], ARGV[4], super, ARGV[2])
if redis.call('HEXISTS', members, ARGV[2]) == 0 then return 0 end
local v = ARGV[3]
if super then v = ARGV[2] .. ',' .. v end
redis.call('HSET', members, ARGV[2], v)
redis.call('HSET', KEYS[2], 'group_' .. ARGV[4], ARGV[5])
if ARGV[5] == '1' then
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('SADD', KEYS[4], 'g:' .. ARGV[4])
else
  redis.call('SREM', KEYS[3], ARGV[4])
  redis.call('SREM', KEYS[4], 'g:' .. ARGV[4])
end
emit(cjson.decode(ARGV[1]))
announce(ARGV[6], ARGV[4])
return 1
"#,
    )
});

/// KEYS: group hash. ARGV: name, app, gid. Renames only a group that exists (an HSET alone
/// would leave a hash without `app` behind, which no group load can read).
pub(super) static RENAME_GROUP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[1])
announce(ARGV[2], ARGV[3])
return 1
"#,
    )
});

/// KEYS: group hash, members hash. ARGV: events JSON, gid. Moves the members into a super
/// group's buckets and enters each in their `imd:ugroups:` index (a normal group is small: at
/// most `limits.normal_group_members`).
pub(super) static UPGRADE_GROUP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local app = redis.call('HGET', KEYS[1], 'app')
if redis.call('HGET', KEYS[1], 'super') ~= '1' then
  local flat = redis.call('HGETALL', KEYS[2])
  for i = 1, #flat, 2 do
    redis.call('HSET', mkey(app, ARGV[2], true, flat[i]), flat[i], flat[i] .. ',' .. flat[i + 1])
    redis.call('SADD', uindex(app, flat[i]), ARGV[2])
  end
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], 'super', '1')
emit(cjson.decode(ARGV[1]))
announce(app, ARGV[2])
return 1
"#,
    )
});

/// KEYS: group hash, members hash, timeline, timeline seq, journal. ARGV: events JSON, gone
/// (a key prefix), bucket count, gid. The timeline goes even when the group is already gone; the
/// events only with the group. A super group's member buckets are renamed to `gone:<b>`
/// (expiring), for the caller to take their members out of the `imd:ugroups:` index in
/// chunks; returns {existed, app, super}.
pub(super) static DELETE_GROUP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local meta = redis.call('HMGET', KEYS[1], 'app', 'super')
local existed = redis.call('EXISTS', KEYS[1])
for b = 0, tonumber(ARGV[3]) - 1 do
  local bucket = KEYS[2] .. ':' .. b
  if redis.call('EXISTS', bucket) == 1 then
    redis.call('RENAME', bucket, ARGV[2] .. ':' .. b)
    redis.call('EXPIRE', ARGV[2] .. ':' .. b, 86400)
  end
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
if existed == 0 then return {0, '', '0'} end
emit(cjson.decode(ARGV[1]))
announce(meta[1], ARGV[4])
return {1, meta[1] or '', meta[2] or '0'}
"#,
    )
});

/// KEYS: group hash. ARGV: gid, uid, app. The member's stored record (`joined_at,…`), from the
/// right bucket.
pub(super) static MEMBER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local super = redis.call('HGET', KEYS[1], 'super') == '1'
local v = redis.call('HGET', mkey(ARGV[3], ARGV[1], super, ARGV[2]), ARGV[2])
if v and super then v = string.sub(v, string.find(v, ',', 1, true) + 1) end
return v
"#,
    )
});
