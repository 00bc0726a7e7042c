//! Redis backend: this node among the nodes sharing the store. It announces itself every
//! `HEARTBEAT` (`imd:alive:<node>`, expiring after `ALIVE`, and a heartbeat on the control
//! channel that its own subscriber must hear back: the probe of `bus.rs`), counts its
//! connections in each user's location hash, and reaps nodes that stopped announcing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::mpsc;

use super::RedisStore;
use super::node_scripts::{CONNECT, DISCONNECT, PRESENCE};
use crate::domain::{Platform, UserKey};
use crate::store::cluster::{BusEvent, BusStatus, Presence};
use crate::store::{StoreResult, keys};

/// How often a node announces itself.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(2);

/// How long an announcement lasts: a node silent this long counts as dead.
const ALIVE: Duration = Duration::from_secs(6);

/// One node reaps a dead one; the claim lasts this long.
const REAP_CLAIM: Duration = Duration::from_secs(30);

fn member(u: UserKey) -> String {
    format!("{}:{}", u.app, u.uid)
}

impl RedisStore {
    /// This node's name, once joined ('' before: the scripts then route nothing).
    pub(super) fn node(&self) -> &str {
        self.node.get().map_or("", String::as_str)
    }

    pub fn node_name(&self) -> Option<&str> {
        self.node.get().map(String::as_str)
    }

    /// The client the subscriber connects with.
    pub(super) fn pubsub_client(&self) -> &redis::Client {
        self.pubsub.get().unwrap_or(&self.client)
    }

    /// Becomes node `name`: starts the heartbeat (with the reaper) and the subscriber, which
    /// connects to `pubsub` when given.
    pub fn join(
        self: Arc<Self>,
        name: &str,
        pubsub: Option<redis::Client>,
        events: mpsc::Sender<BusEvent>,
    ) -> Arc<BusStatus> {
        let _ = self.node.set(name.to_string());
        if let Some(client) = pubsub {
            let _ = self.pubsub.set(client);
        }
        let status = Arc::new(BusStatus::default());
        let store = self.clone();
        let closed = events.clone();
        actix_web::rt::spawn(async move {
            while !closed.is_closed() && !store.leaving.load(Ordering::Relaxed) {
                store.heartbeat().await;
                store.reap().await;
                actix_web::rt::time::sleep(HEARTBEAT).await;
            }
        });
        actix_web::rt::spawn(self.subscribe(events, status.clone()));
        status
    }

    /// A graceful shutdown, once this node's connections are closed: it stops announcing
    /// itself and forgets its own entries at once, instead of being reaped 6 s later.
    pub async fn leave(&self) {
        if self.node().is_empty() {
            return;
        }
        self.leaving.store(true, Ordering::Relaxed);
        let node = self.node().to_string();
        let gone: StoreResult<i64> = match self.conn() {
            Ok(mut c) => self.run(c.del(keys::node_alive(&node))).await,
            Err(e) => Err(e),
        };
        if let Err(e) = gone.and(self.reap_node(&node).await) {
            tracing::warn!(error = %e, "leaving: this node's entries are left to the reaper");
        }
    }

    pub(crate) async fn heartbeat(&self) {
        let node = self.node();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(keys::node_alive(node))
            .arg(1)
            .arg("PX")
            .arg(ALIVE.as_millis() as u64)
            .ignore()
            .sadd(keys::NODES, node)
            .ignore()
            .publish(keys::CONTROL_CHANNEL, format!("h {node}"))
            .ignore();
        let sent: StoreResult<()> = match self.conn() {
            Ok(mut c) => self.run(pipe.query_async(&mut c)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "node heartbeat not written");
        }
    }

    /// Forgets the connections of every node that stopped announcing itself (one node does
    /// each, under a claim): its entries in the location hashes, its user set, its name.
    async fn reap(&self) {
        let outcome: StoreResult<()> = async {
            let mut c = self.conn()?;
            let nodes: Vec<String> = self.run(c.smembers(keys::NODES)).await?;
            for dead in nodes.iter().filter(|n| n.as_str() != self.node()) {
                let alive: bool = self.run(c.exists(keys::node_alive(dead))).await?;
                if alive {
                    continue;
                }
                let claim: Option<String> = self
                    .run(
                        redis::cmd("SET")
                            .arg(keys::node_reap(dead))
                            .arg(self.node())
                            .arg("NX")
                            .arg("PX")
                            .arg(REAP_CLAIM.as_millis() as u64)
                            .query_async(&mut c),
                    )
                    .await?;
                if claim.is_some() {
                    self.reap_node(dead).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "reaping dead nodes failed; retried later");
        }
    }

    async fn reap_node(&self, dead: &str) -> StoreResult<()> {
        let mut c = self.conn()?;
        let users: Vec<String> = self.run(c.smembers(keys::node_users(dead))).await?;
        for chunk in users.chunks(1000) {
            let mut pipe = redis::pipe();
            for u in chunk {
                pipe.hdel(format!("imd:loc:{{{u}}}"), &[dead, &format!("{dead}:m")])
                    .ignore();
            }
            self.bulk::<()>(&pipe).await?;
        }
        let mut pipe = redis::pipe();
        pipe.del(keys::node_users(dead))
            .ignore()
            .srem(keys::NODES, dead)
            .ignore();
        self.bulk::<()>(&pipe).await?;
        metrics::counter!("imd_nodes_reaped_total").increment(1);
        tracing::info!(node = dead, users = users.len(), "reaped a dead node");
        Ok(())
    }

    pub async fn connect_here(
        &self,
        user: UserKey,
        platform: Platform,
        max: usize,
    ) -> StoreResult<Option<u64>> {
        if self.node().is_empty() {
            return self.latest_seq(user).await.map(Some);
        }
        let mut inv = CONNECT.prepare_invoke();
        inv.key(keys::location(user))
            .key(keys::node_users(self.node()))
            .key(keys::inbox_seq(user))
            .arg(self.node())
            .arg(u8::from(platform.is_mobile()))
            .arg(max)
            .arg(member(user));
        let (ok, seq): (i64, u64) = self.eval(&inv, false).await?;
        Ok((ok == 1).then_some(seq))
    }

    pub async fn disconnect_here(&self, user: UserKey, platform: Platform) -> StoreResult<()> {
        if self.node().is_empty() {
            return Ok(());
        }
        let mut inv = DISCONNECT.prepare_invoke();
        inv.key(keys::location(user))
            .key(keys::node_users(self.node()))
            .arg(self.node())
            .arg(u8::from(platform.is_mobile()))
            .arg(member(user));
        let _: i64 = self.eval(&inv, false).await?;
        Ok(())
    }

    pub async fn online_elsewhere(
        &self,
        users: &[UserKey],
        for_push: bool,
    ) -> StoreResult<Vec<bool>> {
        let on = self
            .presence(users, if for_push { "push" } else { "any" })
            .await?;
        Ok(on.into_iter().map(|o| o == 1).collect())
    }

    pub async fn group_push_presence(&self, users: &[UserKey]) -> StoreResult<Vec<Presence>> {
        let on = self.presence(users, "group").await?;
        Ok(on
            .into_iter()
            .map(|o| match o {
                1 => Presence::Online,
                2 => Presence::Tokenless,
                _ => Presence::Offline,
            })
            .collect())
    }

    /// The PRESENCE script in `mode`, one answer per user.
    async fn presence(&self, users: &[UserKey], mode: &str) -> StoreResult<Vec<u8>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = PRESENCE.prepare_invoke();
        inv.arg(self.node()).arg(mode);
        for u in users {
            inv.key(keys::location(*u));
            inv.arg(member(*u));
        }
        self.eval(&inv, users.len() > 64).await
    }

    pub async fn announce(&self, message: &str) {
        if self.node().is_empty() {
            return;
        }
        let sent: StoreResult<i64> = match self.conn() {
            Ok(mut c) => self.run(c.publish(keys::CONTROL_CHANNEL, message)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, message, "announcement to the other nodes not sent");
        }
    }

    pub async fn have_tokens(&self, users: &[UserKey]) -> StoreResult<Vec<bool>> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(1000) {
            let mut pipe = redis::pipe();
            for u in chunk {
                pipe.hexists(keys::user(*u), "access_token");
            }
            let found: Vec<bool> = self.bulk(&pipe).await?;
            out.extend(found);
        }
        Ok(out)
    }

    pub async fn reassert_here(&self, users: &[(UserKey, usize, usize)]) -> StoreResult<()> {
        let node = self.node();
        for chunk in users.chunks(1000) {
            let mut pipe = redis::pipe();
            for (u, total, mobile) in chunk {
                let loc = keys::location(*u);
                pipe.hset(&loc, node, *total).ignore();
                match mobile {
                    0 => pipe.hdel(&loc, format!("{node}:m")).ignore(),
                    m => pipe.hset(&loc, format!("{node}:m"), *m).ignore(),
                };
                pipe.sadd(keys::node_users(node), member(*u)).ignore();
            }
            self.bulk::<()>(&pipe).await?;
        }
        Ok(())
    }
}
