//! Sync keys and unread counts that binary-protocol clients report, where the original im
//! server kept them: fields `sync_key`, `group_sync_key_<gid>` and `unread` of the user hash
//! `users_<appid>_<uid>`. A key only moves forward.

use std::sync::LazyLock;

use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::domain::{GroupId, UserKey};
use crate::store::{StoreResult, keys};

/// KEYS: user hash. ARGV: field, key. Sets the field if the key is greater.
static SET_MAX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"#,
    )
});

impl RedisStore {
    pub async fn sync_key(&self, user: UserKey, group: Option<GroupId>) -> StoreResult<u64> {
        let mut c = self.conn()?;
        let v: Option<String> = self
            .run(c.hget(keys::user(user), keys::sync_key_field(group)))
            .await?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    pub async fn set_sync_key(
        &self,
        user: UserKey,
        group: Option<GroupId>,
        key: u64,
    ) -> StoreResult<()> {
        let mut c = self.conn()?;
        let mut inv = SET_MAX.prepare_invoke();
        inv.key(keys::user(user))
            .arg(keys::sync_key_field(group))
            .arg(key);
        let _: i64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(())
    }

    pub async fn set_unread(&self, user: UserKey, count: i32) -> StoreResult<()> {
        let mut c = self.conn()?;
        let () = self.run(c.hset(keys::user(user), "unread", count)).await?;
        Ok(())
    }
}
