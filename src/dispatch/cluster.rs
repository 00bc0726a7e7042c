//! This node among several on one Redis (README "Running several nodes"): what other nodes
//! announce (`BusEvent`s from the store's subscriber) is delivered to this node's connections
//! here. Local sends still deliver to local connections directly; the store routes to other
//! nodes only what their connections need, in the script that stores it.
//!
//! Nothing announced is trusted to arrive: every stored message carries its inbox seq, and a
//! connection whose next seq is missing for `GAP_WAIT` is repaired from the store (the
//! outbox keeps seq order and drops what it already has). A new subscription — after a Redis
//! restart, a killed or overflowed pub/sub connection, a failed probe — repairs every local
//! connection the same way, drops every cached group (reloaded on next use) and reloads every
//! session's settings, so a lost announcement or invalidation costs a store read, not a
//! message.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Dispatcher;
use super::frame::{Kind, Spliced};
use super::group::Relay;
use super::outbox::{CloseReason, Frame, Outbox};
use super::rooms::LiveMessage;
use super::session::{Deliver, Reload};
use crate::domain::{GroupKey, RoomId, Uid, UserKey};
use crate::store::cluster::{BusEvent, BusStatus, LiveEvent};

/// Events waiting for the consumer; past this the subscriber waits (and Redis buffers).
const EVENTS: usize = 8192;

/// How long a connection may lack its next seq (another delivery of it may be on its way)
/// before it is read from the store.
const GAP_WAIT: Duration = Duration::from_millis(50);

/// Messages one repair reads at most; a bigger gap closes the connection (1013): the client
/// reconnects and syncs, as after an outbox overflow.
const REPAIR_MAX: usize = 200;

impl Dispatcher {
    /// Joins the nodes sharing the store as `name` and starts delivering what they announce.
    /// `None` (nothing to join) with the memory store.
    pub fn join_cluster(
        &self,
        name: &str,
        pubsub_url: &str,
    ) -> anyhow::Result<Option<Arc<BusStatus>>> {
        let (tx, mut rx) = mpsc::channel(EVENTS);
        let Some(status) = self.inner.store.join(name, pubsub_url, tx)? else {
            return Ok(None);
        };
        let _ = self.inner.bus.set(status.clone());
        let me = self.clone();
        // On the subscriber's own thread: a frame read is handled without waking another
        // thread first (the connections' writers are woken by their outboxes).
        actix_web::rt::spawn(async move {
            while let Some(event) = rx.recv().await {
                me.on_event(event).await;
            }
        });
        tracing::info!(node = name, "joined the nodes sharing the store");
        Ok(Some(status))
    }

    /// The pub/sub link is up; `None` when this node shares nothing (memory store).
    pub fn pubsub_up(&self) -> Option<bool> {
        self.inner.bus.get().map(|s| s.is_up())
    }

    async fn on_event(&self, event: BusEvent) {
        match event {
            BusEvent::Inbox { id, body, to } => {
                let shared = Spliced::new(id, &body);
                for (user, seq) in to {
                    let msg = Deliver {
                        frame: Frame::Spliced(shared.clone(), seq),
                        seq: Some(seq),
                        exclude: None,
                        push: None,
                        elsewhere: false,
                    };
                    self.deliver(user, msg, false).await;
                }
            }
            BusEvent::Timeline {
                origin,
                group,
                id,
                group_seq,
                body,
            } => {
                if Some(origin.as_str()) != self.inner.store.node() {
                    self.relay(group, id, group_seq, Some(body)).await;
                }
            }
            BusEvent::GroupChanged(group, added) => {
                let registry = &self.inner.registry;
                registry.forget_group(group);
                // Added to a super group elsewhere: found here by the online index like a
                // member added here (the group's fresh load checks them against its members).
                for uid in added {
                    let user = UserKey::new(group.app, uid);
                    registry
                        .online
                        .join(group, user, || registry.connected(user));
                }
            }
            BusEvent::UserChanged(user) => self.reload_user(user).await,
            BusEvent::Revoked(user) => self.close_user(user).await,
            BusEvent::Resubscribed => self.resync().await,
            BusEvent::Live(live) => self.on_live(live),
        }
    }

    /// A room or RT message sent through another node, for this node's connections.
    fn on_live(&self, live: LiveEvent) {
        if Some(live.origin.as_str()) == self.inner.store.node() {
            return; // delivered here when it was sent
        }
        let msg = LiveMessage {
            id: live.id,
            kind: if live.rt { Kind::Rt } else { Kind::Room },
            sender: live.sender,
            receiver: live.receiver,
            content: live.content.into(),
            timestamp: live.timestamp,
        };
        if live.rt {
            let user = UserKey::new(live.app, Uid(live.receiver));
            self.deliver_unstored(user, msg.dual());
        } else {
            self.publish_room(live.app, RoomId(live.receiver), &msg, None);
        }
    }

    /// A super-group message from another node, for this node's members online: through the
    /// group's actor (loaded if need be), unless nobody here is online in the group.
    async fn relay(&self, group: GroupKey, id: u64, group_seq: u64, body: Option<String>) {
        if self.inner.registry.online.snapshot(group).is_empty() {
            // Nobody to deliver to here: nothing up to it is owed.
            self.inner.registry.skip_relayed(group, group_seq);
            return;
        }
        let r = self
            .on_group(group, |addr| {
                addr.send(Relay {
                    app: group.app,
                    id,
                    group_seq,
                    body: body.clone(),
                })
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(group = %group, error = %e, "super-group message not relayed");
        }
    }

    /// The hook a connection's outbox calls when a frame starts waiting for an earlier seq
    /// (another delivery of it may be on its way): unless the gap closes within `GAP_WAIT`,
    /// the missing messages are read from the store.
    pub(super) fn gap_hook(
        &self,
        user: UserKey,
        outbox: &Arc<Outbox>,
    ) -> Box<dyn Fn() + Send + Sync> {
        let store = self.inner.store.clone();
        let outbox = Arc::downgrade(outbox);
        Box::new(move || {
            let (store, outbox) = (store.clone(), outbox.clone());
            actix_web::rt::spawn(async move {
                // Until no frame waits (a gap that opens while one is being filled is this
                // task's too: the hook only fires when the first frame starts waiting).
                loop {
                    actix_web::rt::time::sleep(GAP_WAIT).await;
                    let Some(o) = outbox.upgrade() else { return };
                    let Some((live, last)) = o.gap() else { return };
                    metrics::counter!("imd_seq_gaps_filled_total").increment(1);
                    fill(&store, user, &o, live, last).await;
                    if o.gap().is_some_and(|(l, _)| l == live) {
                        return; // not in the store (trimmed): the client's sync covers it
                    }
                }
            });
        })
    }

    /// Reads what `user`'s connections lack up to `upto` from the store and queues it (each
    /// outbox keeps seq order and drops what it has).
    async fn repair(&self, user: UserKey, upto: u64) {
        let Some(conns) = self.inner.registry.with_session(user, |s| s.conns()) else {
            return;
        };
        for c in conns.iter() {
            if let Some(live) = c.outbox.live()
                && live < upto
            {
                fill(&self.inner.store, user, &c.outbox, live, upto).await;
            }
        }
    }

    /// A new subscription: whatever was announced while there was none may be lost.
    async fn resync(&self) {
        // First of all: Redis may have restarted without this node's entry in `imd:nodes`.
        self.inner.store.announce_node().await;
        let registry = &self.inner.registry;
        registry.forget_groups();
        registry.tokenless.clear();
        let sessions = registry.sessions_by_user();
        let mut here = Vec::new();
        for (user, entry) in &sessions {
            let conns = entry.shared.conns();
            if conns.is_empty() {
                continue;
            }
            let mobile = conns.iter().filter(|c| c.platform.is_mobile()).count();
            here.push((*user, conns.len(), mobile));
            let _ = entry.addr.try_send(Reload);
        }
        if let Err(e) = self.inner.store.reassert_here(&here).await {
            tracing::warn!(error = %e, "this node's connections not written again");
        }
        let users: Vec<UserKey> = here.iter().map(|(u, _, _)| *u).collect();
        match self.inner.store.have_tokens(&users).await {
            Ok(have) => {
                for (user, _) in users.iter().zip(have).filter(|(_, has)| !has) {
                    self.close_user(*user).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "resync: revocations not checked"),
        }
        metrics::counter!("imd_presence_reloads_total").increment(1);
        for (user, _, _) in here {
            match self.inner.store.latest_seq(user).await {
                Ok(latest) => self.repair(user, latest).await,
                Err(e) => tracing::warn!(error = %e, "resync: newest seq not read"),
            }
        }
        // Super groups: catch up to each timeline's newest entry.
        for (group, last) in registry.relayed_groups() {
            match self.inner.store.timeline_seq(group).await {
                Ok(newest) if newest > last => self.relay(group, 0, newest, None).await,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "resync: timeline position not read"),
            }
        }
    }
}

/// Queues `user`'s stored messages `from < seq <= upto` on `outbox`; a gap too big to fill
/// closes the connection (1013): the client reconnects and syncs, as after an overflow.
async fn fill(store: &crate::store::Store, user: UserKey, outbox: &Outbox, from: u64, upto: u64) {
    if upto - from > REPAIR_MAX as u64 {
        outbox.close(CloseReason::Overflow, "resync");
        return;
    }
    match store.inbox_after(user, from, upto, REPAIR_MAX).await {
        Ok(records) => {
            metrics::counter!("imd_messages_repaired_total").increment(records.len() as u64);
            for r in &records {
                if let Some((parts, seq)) = Spliced::from_stored(r, "seq") {
                    outbox.push_seq(seq, Frame::Spliced(parts, seq));
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "gap not repaired (the client's sync will)"),
    }
}
