//! Several nodes on one store (README "Running several nodes"): what the store tells a node
//! (`BusEvent`, from Redis pub/sub) and what a node tells the store about itself (its
//! connections, its liveness). The memory store is one node: every method is a no-op there
//! and `join` refuses nothing because nothing else can share it.

use tokio::sync::mpsc;

use super::{Store, StoreResult};
use crate::domain::{GroupKey, Platform, UserKey};

/// Something another node (or the store itself) announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A stored message for users with connections here: `to` are (user, inbox seq).
    Inbox {
        id: u64,
        body: String,
        to: Vec<(UserKey, u64)>,
    },
    /// A super-group message stored by node `origin`.
    Timeline {
        origin: String,
        group: GroupKey,
        id: u64,
        group_seq: u64,
        body: String,
    },
    /// The group's settings or members changed: a cached copy is stale. A super group's new
    /// members are named, so a node finds those of them it holds connections for.
    GroupChanged(GroupKey, Vec<crate::domain::Uid>),
    /// The user's settings (mute, DND, forbidden) changed.
    UserChanged(UserKey),
    /// The user's token was revoked: close their connections.
    Revoked(UserKey),
    /// The subscription was (re)established; anything announced while it was down may be
    /// lost, so every connection is checked against the store and every cache dropped.
    Resubscribed,
    /// A live-only message (chat room or RT) sent through another node.
    Live(LiveEvent),
}

/// A live-only message sent through node `origin`: a chat-room message (for this node's
/// members of the room) or an RT message (for the receiver's connections here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    pub origin: String,
    pub rt: bool,
    pub app: crate::domain::AppId,
    pub sender: crate::domain::Uid,
    /// The room id, or the RT receiver's uid.
    pub receiver: u64,
    pub id: u64,
    pub timestamp: u64,
    pub content: String,
}

/// A live-only message (chat room or RT) as the store hands it to the other nodes.
pub struct Live<'a> {
    /// An RT message (to `receiver`'s connections) rather than a room message.
    pub rt: bool,
    pub app: crate::domain::AppId,
    pub sender: crate::domain::Uid,
    /// The room id, or the RT receiver's uid.
    pub receiver: u64,
    pub timestamp: u64,
    pub content: &'a str,
}

/// Parses `<app> <id>[ <uid>,…]`.
fn pair(rest: &str) -> Option<(u64, u64, Vec<crate::domain::Uid>)> {
    let mut it = rest.splitn(3, ' ');
    let app = it.next()?.parse().ok()?;
    let id = it.next()?.parse().ok()?;
    let uids = match it.next() {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|u| u.parse().ok().map(crate::domain::Uid))
            .collect::<Option<_>>()?,
    };
    Some((app, id, uids))
}

/// `<app>:<uid>:<seq>`.
fn target(t: &str) -> Option<(UserKey, u64)> {
    let mut it = t.splitn(3, ':');
    let app = it.next()?.parse().ok()?;
    let uid = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    Some((
        UserKey::new(crate::domain::AppId(app), crate::domain::Uid(uid)),
        seq,
    ))
}

impl BusEvent {
    /// Decodes one pub/sub payload (formats in `store/redis/node_scripts.rs` and `nodes.rs`);
    /// `None` for a heartbeat or anything unreadable.
    pub fn parse(payload: &str) -> Option<BusEvent> {
        let (head, body) = payload.split_once('\n').unwrap_or((payload, ""));
        let (kind, rest) = head.split_once(' ')?;
        match kind {
            "m" => {
                let (id, to) = rest.split_once(' ')?;
                let to = to.split(',').map(target).collect::<Option<Vec<_>>>()?;
                Some(BusEvent::Inbox {
                    id: id.parse().ok()?,
                    body: body.to_string(),
                    to,
                })
            }
            "g" => {
                let mut it = rest.split(' ');
                let origin = it.next()?.to_string();
                let (app, gid) = it.next()?.split_once(':')?;
                let group = GroupKey::new(
                    crate::domain::AppId(app.parse().ok()?),
                    crate::domain::GroupId(gid.parse().ok()?),
                );
                let id = it.next()?.parse().ok()?;
                let group_seq = it.next()?.parse().ok()?;
                Some(BusEvent::Timeline {
                    origin,
                    group,
                    id,
                    group_seq,
                    body: body.to_string(),
                })
            }
            "c" => {
                let (what, key) = rest.split_once(' ')?;
                let (app, id, uids) = pair(key)?;
                let app = crate::domain::AppId(app);
                let user = UserKey::new(app, crate::domain::Uid(id));
                match what {
                    "group" => Some(BusEvent::GroupChanged(
                        GroupKey::new(app, crate::domain::GroupId(id)),
                        uids,
                    )),
                    "user" => Some(BusEvent::UserChanged(user)),
                    "revoked" => Some(BusEvent::Revoked(user)),
                    _ => None,
                }
            }
            "l" => Self::live(rest, body),
            _ => None,
        }
    }

    /// `l <origin> <r|t> <app> <sender> <receiver> <id> <ts>` (`store/redis/live.rs`).
    fn live(head: &str, body: &str) -> Option<BusEvent> {
        let mut it = head.split(' ');
        let origin = it.next()?.to_string();
        let rt = match it.next()? {
            "r" => false,
            "t" => true,
            _ => return None,
        };
        let mut num = || it.next()?.parse::<u64>().ok();
        Some(BusEvent::Live(LiveEvent {
            origin,
            rt,
            app: crate::domain::AppId(num()?),
            sender: crate::domain::Uid(num()?),
            receiver: num()?,
            id: num()?,
            timestamp: num()?,
            content: body.to_string(),
        }))
    }
}

/// What the store says of a group push receiver over the other live nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Not online for push on another node: pushed.
    Offline,
    /// Online for push on another node (SPEC §6): not pushed.
    Online,
    /// Connected on another node, not online for push there, and no device token bound: not
    /// pushed (nothing to push to), and remembered (`dispatch/tokenless.rs`).
    Tokenless,
}

/// How a node's pub/sub link is doing (`/readyz`).
#[derive(Default)]
pub struct BusStatus {
    up: std::sync::atomic::AtomicBool,
}

impl BusStatus {
    pub fn is_up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Store {
    /// Makes this process node `name` among the nodes sharing the store: the append scripts
    /// route messages for other nodes' connections to them from now on, and `events` gets
    /// what other nodes announce (the subscription and this node's heartbeat run until the
    /// receiver is dropped); the subscriber connects to `pubsub_url` unless it is empty (the
    /// store's). `None` for the memory store.
    pub fn join(
        &self,
        name: &str,
        pubsub_url: &str,
        events: mpsc::Sender<BusEvent>,
    ) -> anyhow::Result<Option<std::sync::Arc<BusStatus>>> {
        match self {
            Store::Memory(_) => Ok(None),
            Store::Redis(s) => {
                let pubsub = match pubsub_url {
                    "" => None,
                    url => Some(redis::Client::open(url).map_err(|e| {
                        let url = crate::config::redacted(url);
                        anyhow::anyhow!("node.pubsub_url {url:?}: {e}")
                    })?),
                };
                Ok(Some(s.clone().join(name, pubsub, events)))
            }
        }
    }

    /// Leaves the nodes sharing the store (graceful shutdown, after closing the connections).
    pub async fn leave(&self) {
        if let Store::Redis(s) = self {
            s.leave().await;
        }
    }

    /// Announces this node once now (`imd:nodes`, its alive key), before it takes its first
    /// connection: from here the other nodes route to it.
    pub async fn announce_node(&self) {
        if let Store::Redis(s) = self {
            s.heartbeat().await;
        }
    }

    /// This node's name, once joined.
    pub fn node(&self) -> Option<&str> {
        match self {
            Store::Memory(_) => None,
            Store::Redis(s) => s.node_name(),
        }
    }

    /// Counts a connection of `user` on this node and reads the inbox's newest seq in the same
    /// step; `None` when the user holds `max` connections over every node (0 = no limit).
    pub async fn connect_here(
        &self,
        user: UserKey,
        platform: Platform,
        max: usize,
    ) -> StoreResult<Option<u64>> {
        match self {
            Store::Memory(s) => s.latest_seq(user).await.map(Some),
            Store::Redis(s) => s.connect_here(user, platform, max).await,
        }
    }

    /// Takes a connection counted by `connect_here` off again.
    pub async fn disconnect_here(&self, user: UserKey, platform: Platform) -> StoreResult<()> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(s) => s.disconnect_here(user, platform).await,
        }
    }

    /// Per user: connected on another live node (`for_push`: online for push there, SPEC §6).
    pub async fn online_elsewhere(
        &self,
        users: &[UserKey],
        for_push: bool,
    ) -> StoreResult<Vec<bool>> {
        match self {
            Store::Memory(_) => Ok(vec![false; users.len()]),
            Store::Redis(s) => s.online_elsewhere(users, for_push).await,
        }
    }

    /// Per group push receiver: online for push on another live node, or connected there
    /// without a device token, or neither (`Presence`).
    pub async fn group_push_presence(&self, users: &[UserKey]) -> StoreResult<Vec<Presence>> {
        match self {
            Store::Memory(_) => Ok(vec![Presence::Offline; users.len()]),
            Store::Redis(s) => s.group_push_presence(users).await,
        }
    }

    /// Tells every node (this one too) that `what` (`user`, `revoked`, `group`) changed about
    /// `id` of `app`. Best effort: a node that misses it resyncs when its subscription is made
    /// again (`dispatch/cluster.rs`).
    pub async fn announce(&self, what: &str, app: crate::domain::AppId, id: u64) {
        if let Store::Redis(s) = self {
            s.announce(&format!("c {what} {app} {id}")).await;
        }
    }

    /// Per user: holds a token (a revocation took it away). A resync closes the connections
    /// of users without one, in case the revocation's announcement was lost.
    pub async fn have_tokens(&self, users: &[UserKey]) -> StoreResult<Vec<bool>> {
        match self {
            Store::Memory(_) => Ok(vec![true; users.len()]),
            Store::Redis(s) => s.have_tokens(users).await,
        }
    }

    /// A live-only message's id (chat room or RT); with other nodes sharing the store, the
    /// same round-trip hands the message to them: a room message to every node, an RT message
    /// to the nodes holding the receiver's connections. Returns (id, the receiver's
    /// connections on those nodes: RT only, 0 for a room).
    pub async fn send_live(&self, live: &Live<'_>) -> StoreResult<(u64, usize)> {
        match self {
            Store::Memory(s) => Ok((s.next_message_id(live.app).await?, 0)),
            Store::Redis(s) => s.send_live(live).await,
        }
    }

    /// Writes this node's connection counts again (after a reconnect: Redis may have lost
    /// them): (user, connections, mobile connections).
    pub async fn reassert_here(&self, users: &[(UserKey, usize, usize)]) -> StoreResult<()> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(s) => s.reassert_here(users).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppId, GroupId, Uid};

    #[test]
    fn frames_decode_and_garbage_does_not() {
        let u = |app, uid| UserKey::new(AppId(app), Uid(uid));
        assert_eq!(
            BusEvent::parse("m 9 7:1:4,7:2:5\n\"kind\":\"peer\"}"),
            Some(BusEvent::Inbox {
                id: 9,
                body: "\"kind\":\"peer\"}".into(),
                to: vec![(u(7, 1), 4), (u(7, 2), 5)],
            })
        );
        assert_eq!(
            BusEvent::parse("g n1-ab 7:5 9 3\nx"),
            Some(BusEvent::Timeline {
                origin: "n1-ab".into(),
                group: GroupKey::new(AppId(7), GroupId(5)),
                id: 9,
                group_seq: 3,
                body: "x".into(),
            })
        );
        assert_eq!(
            BusEvent::parse("c revoked 7 3"),
            Some(BusEvent::Revoked(u(7, 3)))
        );
        assert_eq!(
            BusEvent::parse("c group 7 5 1,2"),
            Some(BusEvent::GroupChanged(
                GroupKey::new(AppId(7), GroupId(5)),
                vec![Uid(1), Uid(2)]
            ))
        );
        assert_eq!(
            BusEvent::parse("l n1-ab t 7 1 2 9 1700\n{\"a\":1}"),
            Some(BusEvent::Live(LiveEvent {
                origin: "n1-ab".into(),
                rt: true,
                app: AppId(7),
                sender: Uid(1),
                receiver: 2,
                id: 9,
                timestamp: 1700,
                content: "{\"a\":1}".into(),
            }))
        );
        for bad in [
            "",
            "h n1",
            "m x 7:1:4\nb",
            "m 9 7:1\nb",
            "c group 7",
            "g a b c d",
            "l n1 x 7 1 2 3 4\nb",
            "l n1 r 7 1 2 3\nb",
        ] {
            assert_eq!(BusEvent::parse(bad), None, "{bad:?}");
        }
    }
}
