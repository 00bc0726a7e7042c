//! Memory backend: customers, supporters, assignments.

use std::sync::atomic::Ordering;

use super::MemoryStore;
use crate::domain::{AppId, Uid, UserKey};
use crate::store::{StoreResult, Supporter};

#[derive(Debug, Clone, Default)]
pub(super) struct SupporterRow {
    name: String,
    avatar: String,
    assigned: u64,
}

impl MemoryStore {
    pub async fn customer_uid(&self, app: AppId, customer_id: &str, base: u64) -> StoreResult<Uid> {
        let uid = *self
            .customers
            .entry(format!("{app}:{customer_id}"))
            .or_insert_with(|| Uid(base + self.next_customer.fetch_add(1, Ordering::Relaxed)));
        Ok(uid)
    }

    pub async fn find_customer(&self, app: AppId, customer_id: &str) -> StoreResult<Option<Uid>> {
        Ok(self
            .customers
            .get(&format!("{app}:{customer_id}"))
            .map(|u| *u))
    }

    pub async fn add_supporter(
        &self,
        store_id: u64,
        uid: Uid,
        name: &str,
        avatar: &str,
    ) -> StoreResult<()> {
        let mut store = self.supporters.entry(store_id).or_default();
        let row = store.entry(uid).or_default();
        row.name = name.to_string();
        row.avatar = avatar.to_string();
        Ok(())
    }

    pub async fn remove_supporter(&self, store_id: u64, uid: Uid) -> StoreResult<bool> {
        Ok(self
            .supporters
            .get_mut(&store_id)
            .is_some_and(|mut s| s.remove(&uid).is_some()))
    }

    pub async fn supporters(&self, store_id: u64) -> StoreResult<Vec<Supporter>> {
        Ok(self
            .supporters
            .get(&store_id)
            .map(|s| {
                s.iter()
                    .map(|(uid, r)| Supporter {
                        uid: *uid,
                        name: r.name.clone(),
                        avatar: r.avatar.clone(),
                        assigned: r.assigned,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn assignment(&self, customer: UserKey) -> StoreResult<Option<(u64, Uid)>> {
        Ok(self.users.get(&customer).and_then(|r| r.assignment))
    }

    pub async fn assign(
        &self,
        customer: UserKey,
        store_id: u64,
        chosen: Uid,
    ) -> StoreResult<Option<Uid>> {
        let Some(mut store) = self.supporters.get_mut(&store_id) else {
            return Ok(None);
        };
        let mut row = self.users.entry(customer).or_default();
        if let Some((s, current)) = row.assignment
            && s == store_id
            && store.contains_key(&current)
        {
            return Ok(Some(current));
        }
        let Some(sup) = store.get_mut(&chosen) else {
            return Ok(None);
        };
        sup.assigned += 1;
        row.assignment = Some((store_id, chosen));
        Ok(Some(chosen))
    }
}
