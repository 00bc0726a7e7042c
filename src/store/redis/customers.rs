//! Redis backend: customers (original `customer_users_*`, `customer_client_id`, `users_*`
//! `store_id`/`seller_id`), supporters (`imd:store:*`).

use std::collections::HashMap;

use redis::AsyncCommands;
use serde_json::json;

use super::RedisStore;
use super::scripts::{ASSIGN, CUSTOMER_UID};
use crate::domain::{AppId, Uid, UserKey, parse_id};
use crate::store::{StoreResult, Supporter, keys};

impl RedisStore {
    pub async fn customer_uid(&self, app: AppId, customer_id: &str, base: u64) -> StoreResult<Uid> {
        let mut inv = CUSTOMER_UID.prepare_invoke();
        inv.key(keys::customer(app, customer_id))
            .key(keys::CUSTOMER_COUNTER)
            .arg(base);
        let uid: u64 = self.eval(&inv, false).await?;
        Ok(Uid(uid))
    }

    pub async fn find_customer(&self, app: AppId, customer_id: &str) -> StoreResult<Option<Uid>> {
        let mut c = self.conn()?;
        let v: Option<u64> = self.run(c.get(keys::customer(app, customer_id))).await?;
        Ok(v.map(Uid))
    }

    pub async fn add_supporter(
        &self,
        store_id: u64,
        uid: Uid,
        name: &str,
        avatar: &str,
    ) -> StoreResult<()> {
        let mut c = self.conn()?;
        let v = json!({ "name": name, "avatar": avatar }).to_string();
        let _: i64 = self
            .run(c.hset(keys::supporters(store_id), uid.0, v))
            .await?;
        Ok(())
    }

    pub async fn remove_supporter(&self, store_id: u64, uid: Uid) -> StoreResult<bool> {
        let mut c = self.conn()?;
        let (n, _): (i64, i64) = self
            .run(
                redis::pipe()
                    .atomic()
                    .hdel(keys::supporters(store_id), uid.0)
                    .hdel(keys::supporter_load(store_id), uid.0)
                    .query_async(&mut c),
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn supporters(&self, store_id: u64) -> StoreResult<Vec<Supporter>> {
        let mut c = self.conn()?;
        let (all, load): (HashMap<String, String>, HashMap<String, u64>) = self
            .run(
                redis::pipe()
                    .hgetall(keys::supporters(store_id))
                    .hgetall(keys::supporter_load(store_id))
                    .query_async(&mut c),
            )
            .await?;
        let mut out: Vec<Supporter> = all
            .iter()
            .filter_map(|(uid, v)| {
                let profile: serde_json::Value = serde_json::from_str(v).unwrap_or_default();
                let text = |k: &str| profile[k].as_str().unwrap_or_default().to_string();
                Some(Supporter {
                    uid: Uid(parse_id(uid).ok()?),
                    name: text("name"),
                    avatar: text("avatar"),
                    assigned: load.get(uid).copied().unwrap_or(0),
                })
            })
            .collect();
        out.sort_unstable_by_key(|s| s.uid);
        Ok(out)
    }

    pub async fn assignment(&self, customer: UserKey) -> StoreResult<Option<(u64, Uid)>> {
        let mut c = self.conn()?;
        let (store, seller): (Option<u64>, Option<u64>) = self
            .run(
                redis::cmd("HMGET")
                    .arg(keys::user(customer))
                    .arg("store_id")
                    .arg("seller_id")
                    .query_async(&mut c),
            )
            .await?;
        Ok(match (store, seller) {
            (Some(s), Some(u)) if u > 0 => Some((s, Uid(u))),
            _ => None,
        })
    }

    pub async fn assign(
        &self,
        customer: UserKey,
        store_id: u64,
        chosen: Uid,
    ) -> StoreResult<Option<Uid>> {
        let mut inv = ASSIGN.prepare_invoke();
        inv.key(keys::user(customer))
            .key(keys::supporters(store_id))
            .key(keys::supporter_load(store_id))
            .arg(store_id)
            .arg(chosen.0);
        let uid: Option<u64> = self.eval(&inv, false).await?;
        Ok(uid.map(Uid))
    }
}
