//! Customer service in the store: customer uids, the supporters of each help desk ("store"),
//! and which supporter each customer is assigned to.

use super::{Store, StoreResult};
use crate::domain::{AppId, Uid, UserKey};

/// A registered supporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supporter {
    pub uid: Uid,
    pub name: String,
    pub avatar: String,
    /// Customers currently assigned.
    pub assigned: u64,
}

impl Store {
    /// The uid of an app's customer id: the same every time, allocated as `base + n` the first.
    pub async fn customer_uid(&self, app: AppId, customer_id: &str, base: u64) -> StoreResult<Uid> {
        backend!(self, s => s.customer_uid(app, customer_id, base).await)
    }

    /// The uid of a registered customer id, if any.
    pub async fn find_customer(&self, app: AppId, customer_id: &str) -> StoreResult<Option<Uid>> {
        backend!(self, s => s.find_customer(app, customer_id).await)
    }

    /// Registers (or updates) a supporter of a store.
    pub async fn add_supporter(
        &self,
        store_id: u64,
        uid: Uid,
        name: &str,
        avatar: &str,
    ) -> StoreResult<()> {
        backend!(self, s => s.add_supporter(store_id, uid, name, avatar).await)
    }

    /// Unregisters a supporter; false if not registered.
    pub async fn remove_supporter(&self, store_id: u64, uid: Uid) -> StoreResult<bool> {
        backend!(self, s => s.remove_supporter(store_id, uid).await)
    }

    /// A store's supporters, ascending by uid.
    pub async fn supporters(&self, store_id: u64) -> StoreResult<Vec<Supporter>> {
        backend!(self, s => s.supporters(store_id).await)
    }

    /// A customer's assignment: (store id, supporter).
    pub async fn assignment(&self, customer: UserKey) -> StoreResult<Option<(u64, Uid)>> {
        backend!(self, s => s.assignment(customer).await)
    }

    /// Keeps the customer's current supporter in `store_id` if still registered, else assigns
    /// `chosen`. Returns the supporter, or `None` if `chosen` was unregistered meanwhile.
    pub async fn assign(
        &self,
        customer: UserKey,
        store_id: u64,
        chosen: Uid,
    ) -> StoreResult<Option<Uid>> {
        backend!(self, s => s.assign(customer, store_id, chosen).await)
    }
}
