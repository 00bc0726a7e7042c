//! Redis backend: live-only messages (chat rooms, RT) across the nodes sharing the store
//! (README "Running several nodes"). Nothing is stored: one script takes the message id and,
//! in the same round-trip, hands the message to the other nodes — a room message once on the
//! super-group channel every node subscribes to (each delivers it to its own room members), an
//! RT message once on the channel of each other live node holding the receiver's connections.
//! Alone (one node), the script only takes the id.

use std::sync::LazyLock;

use redis::Script;

use super::RedisStore;
use super::node_scripts::ROUTING;
use crate::domain::UserKey;
use crate::store::StoreResult;
use crate::store::cluster::Live;
use crate::store::keys;

/// KEYS: the app's message-id counter, then (RT only) the receiver's location hash. ARGV:
/// node ('' = route nothing), `r` (room) or `t` (RT), `<app> <sender> <receiver>`, timestamp,
/// content. Publishes `l <node> <r|t> <app> <sender> <receiver> <id> <ts>\n<content>`; returns
/// {id, the receiver's connections on the nodes it was sent to (RT; 0 for a room)}.
static SEND_LIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{ROUTING}{}",
        r#"
local id = redis.call('INCR', KEYS[1])
local node = alone(ARGV[1])
if node == '' then return {id, 0} end
local frame = 'l ' .. node .. ' ' .. ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. id .. ' ' .. ARGV[4]
  .. '\n' .. ARGV[5]
if ARGV[2] == 'r' then
  redis.call('PUBLISH', 'imd:sg', frame)
  return {id, 0}
end
local to = {}
local total = located(KEYS[2], node, function(name, c, m)
  if not m and not to[name] then
    to[name] = true
    redis.call('PUBLISH', 'imd:n:' .. name, frame)
  end
end)
return {id, total}
"#
    ))
});

impl RedisStore {
    pub async fn send_live(&self, live: &Live<'_>) -> StoreResult<(u64, usize)> {
        let mut inv = SEND_LIVE.prepare_invoke();
        inv.key(keys::message_id(live.app));
        let kind = match live.rt {
            true => {
                let user = UserKey::new(live.app, crate::domain::Uid(live.receiver));
                inv.key(keys::location(user));
                "t"
            }
            false => "r",
        };
        inv.arg(self.node())
            .arg(kind)
            .arg(format!("{} {} {}", live.app, live.sender, live.receiver))
            .arg(live.timestamp)
            .arg(live.content);
        let (id, elsewhere): (u64, usize) = self.eval(&inv, false).await?;
        Ok((id, elsewhere))
    }
}
