//! The dispatcher: actors and nothing else. The rest of the code holds a `Dispatcher` (a
//! cloneable handle with async methods) and never sees an `Addr`, so the actor runtime can be
//! swapped by touching this folder only.
//!
//! A send: the store appends the message to every recipient inbox in one round-trip (durable
//! before anyone is told), then each recipient's `UserSession` queues the shared frame on its
//! connections' outboxes and decides on push.

mod cluster;
mod conn_threads;
mod connection;
mod fanout;
pub mod frame;
mod gob;
mod group;
mod groups;
mod hub;
mod inbound;
mod live;
mod live_requests;
mod members;
mod online;
pub mod outbox;
mod pace;
mod prepare;
mod push_stream;
mod registry;
mod requests;
pub mod rooms;
mod send;
mod session;
mod socket;
mod tokenless;
mod transport;
mod unwritten;
mod wire;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::prelude::SendError;

pub use self::connection::{Accepted, ConnectionInfo};
use self::frame::{Body, Kind, Spliced};
pub use self::gob::conn::{BinaryConnection, ResolveToken, TokenOwner};
pub use self::group::{GroupView, MemberSpec, MemberView};
pub use self::groups::NewGroup;
pub use self::live::RoomSend;
use self::outbox::{CloseReason, Frame, Outbox};
pub use self::prepare::{Content, Draft, KeyScope, SendRefused, SendRequest, content_text};
use self::registry::{Registry, SessionEntry};
use self::session::{
    CloseAll, ConnRef, Connect, Deliver, Disconnect, PushIntent, Reload, UserSession,
};
pub use self::wire::Transport;
use crate::config::Limits;
use crate::domain::{AppId, Uid, UserKey, now_millis};
use crate::push::{PushJob, PushQueue};
use crate::store::{Append, Store, StoreError};

/// Why a send was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("no such group")]
    GroupNotFound,
    #[error("the sender is not a member of the group")]
    NotGroupMember,
    #[error("the sender is muted in this group")]
    MemberMuted,
    #[error("{0}")]
    GroupTooLarge(String),
    #[error("that group id is taken")]
    GroupIdTaken,
    #[error("customer messages go only between a customer and their assigned supporter")]
    NotAssigned,
    #[error(
        "customer messages cross apps only to or from the help-desk app (`customers.help_desk_app`), between known apps"
    )]
    CrossApp,
    #[error("the group kept changing while the message was being sent; retry")]
    StaleGroup,
    #[error("this user has too many open connections")]
    TooManyUserConnections,
    #[error("the server holds its maximum number of connections; retry later")]
    TooManyConnections,
    #[error("this user is forbidden to speak in chat rooms")]
    SpeakForbidden,
    #[error("this connection is not in that room; enter it first")]
    NotInRoom,
}

impl DispatchError {
    /// HTTP status and stable error code for this refusal.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            DispatchError::Store(StoreError::Unavailable(_)) => (503, "store_unavailable"),
            DispatchError::Store(StoreError::OutcomeUnknown(_)) => (503, "outcome_unknown"),
            DispatchError::Store(StoreError::Corrupt(_)) => (500, "internal"),
            DispatchError::Invalid(_) => (400, "invalid_request"),
            DispatchError::GroupNotFound => (404, "group_not_found"),
            DispatchError::NotGroupMember => (403, "not_group_member"),
            DispatchError::MemberMuted => (403, "member_muted"),
            DispatchError::GroupTooLarge(_) => (400, "group_too_large"),
            DispatchError::GroupIdTaken => (409, "group_id_taken"),
            DispatchError::NotAssigned => (403, "not_assigned"),
            DispatchError::CrossApp => (403, "cross_app"),
            DispatchError::StaleGroup => (503, "group_changed"),
            DispatchError::TooManyUserConnections => (429, "too_many_connections"),
            DispatchError::TooManyConnections => (503, "too_many_connections"),
            DispatchError::SpeakForbidden => (403, "speak_forbidden"),
            DispatchError::NotInRoom => (403, "not_in_room"),
        }
    }
}

/// The result of a stored send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub id: u64,
    /// The seq in the sender's inbox (peer, normal group) or the receiver's (system); the
    /// `group_seq` when `timeline` is set.
    pub seq: u64,
    /// True if this was a retry answered from the idempotency record: nothing was sent again.
    pub replayed: bool,
    /// Stored on a super group's timeline: `seq` is a `group_seq`.
    pub timeline: bool,
}

impl Sent {
    /// The result of a store append (or of its replay).
    fn of(a: &crate::store::Appended, timeline: bool) -> Sent {
        Sent {
            id: a.id,
            seq: a.first_seq,
            replayed: a.replayed,
            timeline,
        }
    }
}

/// A peer or customer send, as `Dispatcher::send` hands it on.
pub struct PeerSend<'a> {
    /// `Peer`, or `Customer` between a customer and their supporter.
    pub kind: Kind,
    pub app: AppId,
    pub sender: Uid,
    pub receiver: Uid,
    /// The receiver's app: `app` unless a customer message crosses to or from the help desk.
    pub receiver_app: AppId,
    pub content: &'a str,
    /// Namespaced idempotency key.
    pub idempotency: Option<String>,
    /// The sending connection (ws sends), which gets an `ack` instead of the message.
    pub origin: Option<u64>,
    /// The sending device's tag (`App::device_tag`).
    pub device_tag: Option<&'a str>,
    /// A binary IM's msgid.
    pub msgid: Option<i32>,
}

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    push: PushQueue,
    registry: Arc<Registry>,
    limits: Arc<Limits>,
    next_conn: AtomicU64,
    /// Open WebSocket connections (bounded by `limits.ws_max_connections`).
    connections: Arc<AtomicUsize>,
    /// What every group actor needs, shared.
    group_env: Arc<group::Env>,
    /// The pub/sub link, once this node has joined others (`cluster.rs`).
    bus: std::sync::OnceLock<Arc<crate::store::cluster::BusStatus>>,
    /// Chat rooms on this node (`rooms.rs`).
    rooms: rooms::Rooms,
    /// Cross-app customer messages, once configured (`set_help_desk`).
    help_desk: std::sync::OnceLock<HelpDesk>,
}

/// `customers.help_desk_app` and the apps whose users may write to it (every configured app).
struct HelpDesk {
    app: AppId,
    apps: std::collections::HashSet<AppId>,
}

/// A connection's entry in its worker's hub table and in its user's session. Dropped while
/// armed — a refused or failed connect, a connect future dropped half-way, an accepted
/// connection that never ran — it undoes both; `release` undoes them and waits for the
/// session. Lives and drops on the connection's thread (the hub table is thread-local).
pub(crate) struct Registration {
    dispatcher: Dispatcher,
    user: UserKey,
    id: u64,
    /// The session may list the connection: tell it on drop.
    in_session: bool,
    armed: bool,
}

impl Registration {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Keeps the registration past this guard (the caller disconnects); the connection id.
    fn keep(mut self) -> u64 {
        self.armed = false;
        self.id
    }

    /// Unregisters now, waiting until the session has let go of the connection.
    pub(crate) async fn release(&mut self) {
        if self.armed {
            self.dispatcher.inner.rooms.leave(self.id, None);
            self.dispatcher.disconnect(self.user, self.id).await;
            self.armed = false;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let inner = &self.dispatcher.inner;
        inner.rooms.leave(self.id, None);
        inner.registry.hubs.detach(self.id);
        if self.in_session
            && let Some(entry) = inner.registry.session(self.user)
        {
            entry.addr.do_send(Disconnect(self.id));
        }
    }
}

/// One open connection's share of `limits.ws_max_connections`, given back on drop.
pub struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Dispatcher {
    /// Starts the dispatch arbiters and as many connection threads (`threads`, 0 = one per
    /// core).
    pub fn new(store: Store, push: PushQueue, limits: Limits, threads: usize) -> Dispatcher {
        let registry = Arc::new(Registry::new(threads));
        let limits = Arc::new(limits);
        let group_env = Arc::new(group::Env {
            store: store.clone(),
            registry: Arc::downgrade(&registry),
            limits: limits.clone(),
            streams: push_stream::PushStreams::new(
                push.clone(),
                store.clone(),
                Arc::downgrade(&registry),
            ),
        });
        let idle = Duration::from_secs(limits.actor_idle_secs);
        registry
            .start_sweeper((idle / 2).clamp(Duration::from_millis(200), Duration::from_secs(5)));
        Dispatcher {
            inner: Arc::new(Inner {
                store,
                push,
                registry,
                limits,
                group_env,
                rooms: rooms::Rooms::default(),
                next_conn: AtomicU64::new(1),
                connections: Arc::new(AtomicUsize::new(0)),
                bus: std::sync::OnceLock::new(),
                help_desk: std::sync::OnceLock::new(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    fn weak_registry(&self) -> Weak<Registry> {
        Arc::downgrade(&self.inner.registry)
    }

    /// The user's session, started (and its settings loading) if not loaded.
    fn session(&self, user: UserKey) -> SessionEntry {
        let store = self.inner.store.clone();
        let push = self.inner.push.clone();
        let registry = self.weak_registry();
        let idle = Duration::from_secs(self.inner.limits.actor_idle_secs);
        self.inner
            .registry
            .session_or_start(user, move |generation, shared| {
                UserSession::new(user, generation, shared, store, push, registry, idle)
            })
    }

    /// Hands a message to the user's session (starting it when `start` is set), retrying once
    /// if the session was just stopping. Does not wait for the session to handle it unless its
    /// mailbox is full (backpressure): the caller's reply does not need another thread's turn.
    async fn deliver(&self, user: UserKey, msg: Deliver, start: bool) {
        // A loaded session is served from its published view, on this thread: no wake-up of
        // the session's thread. Only a session still loading goes through its mailbox.
        let push = &self.inner.push;
        if self
            .inner
            .registry
            .with_session(user, |s| s.handle(&msg, push, false))
            .flatten()
            .is_some()
        {
            return;
        }
        let mut msg = msg;
        for _ in 0..2 {
            let entry = match (start, self.inner.registry.session(user)) {
                (_, Some(e)) => e,
                (true, None) => self.session(user),
                (false, None) => return,
            };
            let outcome = match entry.addr.try_send(msg) {
                Ok(()) => return,
                Err(SendError::Full(m)) => match entry.addr.send(m.clone()).await {
                    Ok(_) => return,
                    Err(_) => m,
                },
                Err(SendError::Closed(m)) => m,
            };
            self.inner.registry.remove_session(user, entry.generation);
            msg = outcome;
        }
        tracing::warn!(app = %user.app, uid = %user.uid, "delivery: session unavailable");
    }

    /// Lets the users of `desk` and of every app in `apps` exchange customer messages (the
    /// original's `kefu_appid`). Set once, at start-up; later calls change nothing.
    pub fn set_help_desk(&self, desk: AppId, apps: impl IntoIterator<Item = AppId>) {
        let apps = apps.into_iter().collect();
        let _ = self.inner.help_desk.set(HelpDesk { app: desk, apps });
    }

    /// A customer message between two apps: one of them is the help desk, both are known.
    fn check_customer_apps(&self, from: AppId, to: AppId) -> Result<(), DispatchError> {
        match self.inner.help_desk.get() {
            Some(d)
                if (from == d.app || to == d.app)
                    && d.apps.contains(&from)
                    && d.apps.contains(&to) =>
            {
                Ok(())
            }
            _ => Err(DispatchError::CrossApp),
        }
    }

    /// Customer messages flow only between a customer and their assigned supporter.
    async fn check_customer_pair(
        &self,
        app: AppId,
        sender: Uid,
        receiver: Uid,
    ) -> Result<(), DispatchError> {
        let store = &self.inner.store;
        let assigned = |a: Option<(u64, Uid)>, to: Uid| a.is_some_and(|(_, s)| s == to);
        if assigned(store.assignment(UserKey::new(app, sender)).await?, receiver)
            || assigned(store.assignment(UserKey::new(app, receiver)).await?, sender)
        {
            Ok(())
        } else {
            Err(DispatchError::NotAssigned)
        }
    }

    /// Live presence: the user has at least one open connection.
    pub fn is_online(&self, user: UserKey) -> bool {
        self.inner
            .registry
            .with_session(user, |s| !s.conns().is_empty())
            .unwrap_or(false)
    }

    /// Per user: a live connection on this node or any other (a failed read of the others
    /// answers for this node alone).
    pub async fn online_anywhere(&self, users: &[UserKey]) -> Vec<bool> {
        let here: Vec<bool> = users.iter().map(|u| self.is_online(*u)).collect();
        if here.iter().all(|h| *h) {
            return here;
        }
        match self.inner.store.online_elsewhere(users, false).await {
            Ok(there) if there.len() == here.len() => {
                here.iter().zip(there).map(|(h, t)| *h || t).collect()
            }
            Ok(_) => here,
            Err(e) => {
                tracing::warn!(error = %e, "presence on other nodes not read");
                here
            }
        }
    }

    /// Peer message: stored in the sender's and the receiver's inbox, live to the receiver's
    /// devices and the sender's other devices, pushed to the receiver if not online.
    pub async fn send_peer(&self, req: PeerSend<'_>) -> Result<Sent, DispatchError> {
        let sender = UserKey::new(req.app, req.sender);
        let receiver = UserKey::new(req.receiver_app, req.receiver);
        let cross = req.receiver_app != req.app;
        match (req.kind, cross) {
            (Kind::Customer, true) => self.check_customer_apps(req.app, req.receiver_app)?,
            (Kind::Customer, false) => {
                self.check_customer_pair(req.app, req.sender, req.receiver)
                    .await?
            }
            (_, true) => return Err(DispatchError::CrossApp),
            (_, false) => {}
        }
        let body = frame::body(&Body {
            kind: req.kind,
            sender: Some(req.sender),
            receiver: req.receiver.0,
            apps: cross.then_some((req.app, req.receiver_app)),
            device_tag: req.device_tag,
            msgid: req.msgid,
            group_id: None,
            content: req.content,
            timestamp: now_millis(),
        });
        let ttl = self.inner.limits.idempotency_ttl_secs;
        let inboxes: &[UserKey] = if sender == receiver {
            &[sender]
        } else {
            &[sender, receiver]
        };
        let appended = self
            .inner
            .store
            .append(&Append {
                inboxes,
                body: &body,
                idempotency: req.idempotency.as_deref().map(|k| (k, ttl)),
            })
            .await?;
        let sent = Sent::of(&appended, false);
        if appended.replayed {
            return Ok(sent);
        }
        let shared = Spliced::new(appended.id, &body);
        if let [sender_seq, receiver_seq] = appended.seqs[..] {
            let job = peer_push_job(&req);
            let to_receiver = Deliver {
                frame: Frame::Spliced(shared.clone(), receiver_seq),
                seq: Some(receiver_seq),
                exclude: None,
                push: Some(PushIntent::Peer {
                    from: req.sender,
                    job,
                }),
                elsewhere: appended.elsewhere.get(1).copied().unwrap_or(false),
            };
            self.deliver(receiver, to_receiver, true).await;
            let to_sender = Deliver {
                frame: Frame::Spliced(shared, sender_seq),
                seq: Some(sender_seq),
                exclude: req.origin,
                push: None,
                elsewhere: false,
            };
            self.deliver(sender, to_sender, false).await;
        } else if let [seq] = appended.seqs[..] {
            // A note to self: one inbox, every other device.
            let to_self = Deliver {
                frame: Frame::Spliced(shared, seq),
                seq: Some(seq),
                exclude: req.origin,
                push: None,
                elsewhere: false,
            };
            self.deliver(sender, to_self, false).await;
        }
        Ok(sent)
    }

    /// System message: stored in the receiver's inbox, live, pushed if not online.
    pub async fn send_system(
        &self,
        app: AppId,
        receiver: Uid,
        content: &str,
        idempotency: Option<String>,
    ) -> Result<Sent, DispatchError> {
        let user = UserKey::new(app, receiver);
        let body = frame::body(&Body {
            apps: None,
            device_tag: None,
            msgid: None,
            kind: Kind::System,
            sender: None,
            receiver: receiver.0,
            group_id: None,
            content,
            timestamp: now_millis(),
        });
        let ttl = self.inner.limits.idempotency_ttl_secs;
        let appended = self
            .inner
            .store
            .append(&Append {
                inboxes: &[user],
                body: &body,
                idempotency: idempotency.as_deref().map(|k| (k, ttl)),
            })
            .await?;
        if !appended.replayed {
            let job = PushJob::System {
                app,
                receiver,
                content: content.into(),
                tokens: None,
            };
            let msg = Deliver {
                frame: Frame::Spliced(Spliced::new(appended.id, &body), appended.first_seq),
                seq: Some(appended.first_seq),
                exclude: None,
                push: Some(PushIntent::Always(job)),
                elsewhere: appended.elsewhere.first().copied().unwrap_or(false),
            };
            self.deliver(user, msg, true).await;
        }
        Ok(Sent::of(&appended, false))
    }

    /// Notification: online devices only; not stored, never pushed. Returns (id, devices).
    pub async fn send_notification(
        &self,
        app: AppId,
        receiver: Uid,
        content: &str,
    ) -> Result<(u64, usize), DispatchError> {
        let id = self.inner.store.next_message_id(app).await?;
        let body = frame::body(&Body {
            apps: None,
            device_tag: None,
            msgid: None,
            kind: Kind::Notification,
            sender: None,
            receiver: receiver.0,
            group_id: None,
            content,
            timestamp: now_millis(),
        });
        let note = Frame::Dual {
            json: frame::unstored_message(id, &body),
            binary: gob::Out::new(
                gob::cmd::NOTIFICATION,
                bytes::Bytes::copy_from_slice(content.as_bytes()),
            ),
        };
        let devices = self.deliver_unstored(UserKey::new(app, receiver), note);
        Ok((id, devices))
    }

    /// The users API changed a user's settings: a loaded session reloads them before it
    /// handles any later message, so sends after the API call see the new settings.
    /// Every other node is told too.
    pub async fn user_changed(&self, user: UserKey) {
        self.reload_user(user).await;
        self.inner
            .store
            .announce("user", user.app, user.uid.0)
            .await;
    }

    async fn reload_user(&self, user: UserKey) {
        self.inner.registry.tokenless.forget(user);
        if let Some(entry) = self.inner.registry.session(user) {
            let _ = entry.addr.send(Reload).await;
        }
    }

    /// Closes every connection of a user (token revoked), on every node.
    pub async fn disconnect_user(&self, user: UserKey) {
        self.close_user(user).await;
        self.inner
            .store
            .announce("revoked", user.app, user.uid.0)
            .await;
    }

    async fn close_user(&self, user: UserKey) {
        if let Some(entry) = self.inner.registry.session(user) {
            let _ = entry
                .addr
                .send(CloseAll(CloseReason::Policy, "token revoked"))
                .await;
        }
    }

    /// Reserves room for one more connection, or refuses (503) at `limits.ws_max_connections`.
    fn connection_slot(&self) -> Result<ConnectionSlot, DispatchError> {
        let counter = &self.inner.connections;
        let prev = counter.fetch_add(1, Ordering::Relaxed);
        let slot = ConnectionSlot(counter.clone());
        if prev >= self.inner.limits.ws_max_connections {
            return Err(DispatchError::TooManyConnections);
        }
        Ok(slot)
    }

    /// Open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// Users with a loaded session (connected, or recently sent to).
    pub fn session_count(&self) -> usize {
        self.inner.registry.session_count()
    }

    /// Connections registered with a delivery hub; equal to `connection_count` unless a
    /// registration leaked (a gauge for tests).
    pub fn hub_connections(&self) -> usize {
        self.inner.registry.hubs.attached()
    }

    /// Registers a connection and returns its id and the `hello` seq; from here on every
    /// stored message for the user after that seq reaches the connection's outbox, behind
    /// the `hello` frame, which is queued first. The registration stays until `disconnect`.
    pub async fn connect(
        &self,
        user: UserKey,
        platform: crate::domain::Platform,
        outbox: Arc<Outbox>,
    ) -> Result<(u64, u64), DispatchError> {
        let hello = |seq| Frame::Text(frame::hello(user.app, user.uid, seq, None));
        let (registration, seq) = self.register(user, platform, outbox, hello).await?;
        Ok((registration.keep(), seq))
    }

    /// `connect`, with the registration held by a guard that undoes it when dropped; `hello`
    /// makes the first frame from the seq live delivery starts after.
    async fn register(
        &self,
        user: UserKey,
        platform: crate::domain::Platform,
        outbox: Arc<Outbox>,
        hello: impl FnOnce(u64) -> Frame,
    ) -> Result<(Registration, u64), DispatchError> {
        let id = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        if self.inner.bus.get().is_some() {
            outbox.set_on_gap(self.gap_hook(user, &outbox));
        }
        let conn = ConnRef {
            id,
            platform,
            outbox: outbox.clone(),
            hub: self.inner.registry.hubs.attach(id, outbox.clone()),
            announced: Default::default(),
        };
        // From here every early return (or a drop of this future) detaches it again.
        let mut registration = Registration {
            dispatcher: self.clone(),
            user,
            id,
            in_session: false,
            armed: true,
        };
        // Registered before the seq is read, so nothing appended after the read is missed.
        let mut registered = false;
        let max = self.inner.limits.ws_connections_per_user;
        for _ in 0..2 {
            let entry = self.session(user);
            // The session may hold the connection from here, even if this future is dropped.
            registration.in_session = true;
            match entry.addr.send(Connect(conn.clone(), max)).await {
                Ok(true) => {
                    registered = true;
                    break;
                }
                Ok(false) => {
                    registration.in_session = false;
                    return Err(DispatchError::TooManyUserConnections);
                }
                Err(_) => self.inner.registry.remove_session(user, entry.generation),
            }
        }
        if !registered {
            return Err(DispatchError::Invalid("session unavailable".into()));
        }
        // The connection is published (above): now the user's super groups, so that a member
        // added meanwhile is found by one side or the other (`online.rs`), and the connection
        // is counted where other nodes look (`cluster.rs`), in the step that reads the seq.
        let store = &self.inner.store;
        let here = store.connect_here(user, platform, max);
        let (groups, seq) = tokio::join!(store.user_groups(user), here);
        if !matches!(seq, Ok(None) | Err(StoreError::Unavailable(_))) {
            conn.announced.store(true, Ordering::Relaxed);
        }
        let seq = match seq {
            Ok(Some(seq)) => Ok(seq),
            Ok(None) => {
                registration.release().await;
                return Err(DispatchError::TooManyUserConnections);
            }
            Err(e) => Err(e),
        };
        match groups.and_then(|groups| seq.map(|seq| (groups, seq))) {
            Ok((groups, seq)) => {
                let registry = &self.inner.registry;
                registry
                    .online
                    .enter(user, &groups, || registry.connected(user));
                outbox.start_live(seq, hello(seq));
                Ok((registration, seq))
            }
            Err(e) => {
                registration.release().await;
                Err(e.into())
            }
        }
    }

    /// Removes a connection from its session.
    /// Call on the connection's own thread (its hub's table is thread-local).
    pub async fn disconnect(&self, user: UserKey, conn: u64) {
        self.inner.rooms.leave(conn, None);
        self.inner.registry.hubs.detach(conn);
        if let Some(entry) = self.inner.registry.session(user) {
            let _ = entry.addr.send(Disconnect(conn)).await;
        }
    }

    /// Shutdown, first step: every WebSocket gets a close frame (1001, reconnect elsewhere).
    pub async fn close_connections(&self) {
        tracing::info!(
            sessions = self.inner.registry.session_count(),
            "closing every WebSocket (1001)"
        );
        for entry in self.inner.registry.sessions() {
            let _ = entry
                .addr
                .send(CloseAll(CloseReason::GoingAway, "server shutting down"))
                .await;
        }
    }

    /// Moves an accepted socket to a connection thread and calls `start` with it there
    /// (`conn_threads.rs`): accept or register the connection inside `start`, so that its
    /// registration and hub are on the thread its task runs on.
    pub fn adopt(
        &self,
        io: tokio::net::TcpStream,
        start: impl FnOnce(tokio::net::TcpStream) + Send + 'static,
    ) {
        self.inner.registry.conn_threads.adopt(io, start);
    }

    /// The connection threads' nice while their delivery is heavy (`http.connection_nice`).
    pub fn set_connection_nice(&self, nice: u8) {
        self.inner.registry.conn_threads.set_nice(nice);
    }

    /// Shutdown, after the connections were told to close and requests finished: waits up to
    /// `within` for them to write their close frames and end, then drops the ones still open
    /// (binary ones that never authenticated have no session to close them through).
    pub async fn stop_connections(&self, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        while self.connection_count() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.registry.conn_threads.stop();
    }

    /// Shutdown, last step (after in-flight requests finished, so their jobs are queued):
    /// hands every queued push job to the sink.
    pub async fn flush_push(&self, within: Duration) {
        self.inner.push.flush(within).await;
    }
}

/// The push job a peer (or customer) message makes for its receiver, should they be offline.
fn peer_push_job(req: &PeerSend<'_>) -> PushJob {
    let content: Arc<str> = req.content.into();
    match req.kind {
        Kind::Customer => PushJob::Customer {
            sender_app: req.app,
            sender: req.sender,
            receiver_app: req.receiver_app,
            receiver: req.receiver,
            content,
            tokens: None,
        },
        _ => PushJob::Peer {
            app: req.app,
            sender: req.sender,
            receiver: req.receiver,
            content,
            tokens: None,
        },
    }
}
