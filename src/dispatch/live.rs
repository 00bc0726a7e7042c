//! Live-only sends: chat-room messages and RT (real-time peer) messages. Neither is stored,
//! pushed or synced; each gets a message id (unique, like every message) and goes to the
//! connections that are open now, on every node (the store hands them to the other nodes in
//! the round-trip that takes the id: `store/redis/live.rs`). Every protocol sends them through
//! these methods.

use std::sync::Arc;

use super::frame::Kind;
use super::outbox::{Frame, Outbox};
use super::prepare::SendRequest;
use super::rooms::{LiveMessage, Member, Wire};
use super::session::Deliver;
use super::{DispatchError, Dispatcher};
use crate::domain::{AppId, MessageKind, RoomId, Uid, UserKey, now_millis};
use crate::store::cluster::Live;

/// A message to a chat room.
pub struct RoomSend<'a> {
    pub app: AppId,
    pub sender: Uid,
    pub room: RoomId,
    pub content: &'a str,
    /// The sending connection: it must be in the room and does not get its own message.
    /// `None` for server sends (HTTP), which reach every member.
    pub origin: Option<u64>,
}

impl Dispatcher {
    /// Puts a connection in a chat room (leaving the one it was in). Returns the room it left.
    pub fn enter_room(
        &self,
        user: UserKey,
        conn: u64,
        wire: Wire,
        outbox: Arc<Outbox>,
        room: RoomId,
    ) -> Option<RoomId> {
        let member = Member {
            conn,
            uid: user.uid,
            wire,
            outbox,
        };
        self.inner.rooms.enter(user.app, room, member)
    }

    /// Takes a connection out of its room (only if it is `room`, when given); the room left.
    pub fn leave_room(&self, conn: u64, room: Option<RoomId>) -> Option<RoomId> {
        self.inner.rooms.leave(conn, room)
    }

    /// The room a connection is in.
    pub fn room_of(&self, conn: u64) -> Option<RoomId> {
        self.inner.rooms.room_of(conn)
    }

    /// Connections in a room on this node.
    pub fn room_members(&self, app: AppId, room: RoomId) -> usize {
        self.inner.rooms.members(app, room)
    }

    /// Whether the user may not speak in rooms. Read from the loaded session when its settings
    /// are in; otherwise (no session, or settings being reloaded after the users API changed
    /// them) from the store, so a change applies to the very next message.
    pub async fn speak_forbidden(&self, user: UserKey) -> Result<bool, DispatchError> {
        let loaded = self
            .inner
            .registry
            .with_session(user, |s| s.forbidden())
            .flatten();
        match loaded {
            Some(f) => Ok(f),
            None => Ok(self.inner.store.load_user(user).await?.forbidden),
        }
    }

    /// A room message to every member of the room except the sending connection: this node's
    /// members here, the other nodes' by the store (each delivers to its own). Returns
    /// (message id, connections reached on this node).
    pub async fn send_room(&self, req: RoomSend<'_>) -> Result<(u64, usize), DispatchError> {
        if let Some(conn) = req.origin
            && self.room_of(conn) != Some(req.room)
        {
            return Err(DispatchError::NotInRoom);
        }
        if self
            .speak_forbidden(UserKey::new(req.app, req.sender))
            .await?
        {
            return Err(DispatchError::SpeakForbidden);
        }
        let timestamp = now_millis();
        let (id, _) = self
            .inner
            .store
            .send_live(&Live {
                rt: false,
                app: req.app,
                sender: req.sender,
                receiver: req.room.0,
                timestamp,
                content: req.content,
            })
            .await?;
        let msg = LiveMessage {
            id,
            kind: Kind::Room,
            sender: req.sender,
            receiver: req.room.0,
            content: req.content.into(),
            timestamp,
        };
        Ok((
            msg.id,
            self.publish_room(req.app, req.room, &msg, req.origin),
        ))
    }

    /// Queues a room message on this node's members of the room but `exclude`.
    pub(super) fn publish_room(
        &self,
        app: AppId,
        room: RoomId,
        msg: &LiveMessage,
        exclude: Option<u64>,
    ) -> usize {
        let n = self.inner.rooms.publish(app, room, msg, exclude);
        metrics::counter!("imd_room_deliveries_total").increment(n as u64);
        n
    }

    /// A prepared live-only send (`Room` or `Rt`; the sending connection, if any, is
    /// `origin`): the entry every protocol uses. Idempotency keys are ignored: nothing is
    /// stored to answer a retry from.
    pub async fn send_live(&self, req: SendRequest) -> Result<(u64, usize), DispatchError> {
        match req.kind {
            MessageKind::Room => {
                self.send_room(RoomSend {
                    app: req.app,
                    sender: req.sender,
                    room: RoomId(req.to),
                    content: &req.content,
                    origin: req.origin,
                })
                .await
            }
            MessageKind::Rt => {
                self.send_rt(req.app, req.sender, Uid(req.to), &req.content)
                    .await
            }
            other => Err(DispatchError::Invalid(format!(
                "a {} message is not live-only",
                other.as_str()
            ))),
        }
    }

    /// An RT message: to the receiver's open connections only, on every node. Returns (id,
    /// connections: this node's reached, the other nodes' it was sent to).
    pub async fn send_rt(
        &self,
        app: AppId,
        sender: Uid,
        receiver: Uid,
        content: &str,
    ) -> Result<(u64, usize), DispatchError> {
        let timestamp = now_millis();
        let (id, elsewhere) = self
            .inner
            .store
            .send_live(&Live {
                rt: true,
                app,
                sender,
                receiver: receiver.0,
                timestamp,
                content,
            })
            .await?;
        let msg = LiveMessage {
            id,
            kind: Kind::Rt,
            sender,
            receiver: receiver.0,
            content: content.into(),
            timestamp,
        };
        let n = self.deliver_unstored(UserKey::new(app, receiver), msg.dual());
        Ok((msg.id, n + elsewhere))
    }

    /// Queues an unstored frame (notification, RT) on the user's open connections: no push
    /// decision, so the session's published view delivers it on this thread. A user without a
    /// loaded session has no connection. Returns the connections reached.
    pub(super) fn deliver_unstored(&self, user: UserKey, frame: Frame) -> usize {
        let deliver = Deliver {
            frame,
            seq: None,
            exclude: None,
            push: None,
            elsewhere: false,
        };
        let push = &self.inner.push;
        self.inner
            .registry
            .with_session(user, |s| s.handle(&deliver, push, false))
            .flatten()
            .unwrap_or(0)
    }
}
