//! Sync keys and unread counts that binary-protocol clients report (`Store::sync_key`).

use super::MemoryStore;
use crate::domain::{GroupId, UserKey};
use crate::store::StoreResult;

impl MemoryStore {
    pub async fn sync_key(&self, user: UserKey, group: Option<GroupId>) -> StoreResult<u64> {
        let slot = (user, group.map_or(0, |g| g.0));
        Ok(self.sync_keys.get(&slot).map_or(0, |k| *k))
    }

    pub async fn set_sync_key(
        &self,
        user: UserKey,
        group: Option<GroupId>,
        key: u64,
    ) -> StoreResult<()> {
        let mut slot = self
            .sync_keys
            .entry((user, group.map_or(0, |g| g.0)))
            .or_insert(0);
        *slot = (*slot).max(key);
        Ok(())
    }

    pub async fn set_unread(&self, user: UserKey, count: i32) -> StoreResult<()> {
        self.unread.insert(user, count);
        Ok(())
    }
}
