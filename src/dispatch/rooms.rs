//! Chat rooms (the original's rooms, README "Chat rooms"): who is in which room, on this node.
//!
//! A room is a set of connections of one app, named by a room id the app chooses; nothing
//! about it is stored. A connection is in at most one room: entering another leaves the first,
//! and a connection that ends leaves its room (`Registration` does that, however it ends). A
//! room message is encoded once per wire format present in the room and queued on every
//! member's outbox except the sending connection's. This is one node's part of a room: with
//! several nodes each holds its own members, and a room message sent through one reaches the
//! others' members through the store (`live.rs`, `store/redis/live.rs`).
//!
//! This is the interface every protocol uses: the JSON channel (`live_requests.rs`), the HTTP
//! APIs, and the binary codec, which registers its connections with their `Wire`.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use dashmap::DashMap;

use super::frame::{self, Body, Kind};
use super::gob::{self, Out};
use super::outbox::{Frame, Outbox};
use crate::domain::{AppId, RoomId, Uid};

/// How a member's connection wants its frames; a room message is encoded once per variant
/// present among the recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// SPEC §5.2 JSON text frames.
    Json,
    /// GoBelieve binary frames (ROOM_IM and RT bodies are the same in every version).
    Binary,
}

/// A live-only message (room or RT): never stored, so it has an id but no seq.
#[derive(Debug, Clone)]
pub struct LiveMessage {
    pub id: u64,
    /// `Kind::Room` or `Kind::Rt`.
    pub kind: Kind,
    pub sender: Uid,
    /// The room id (room messages) or the receiver's uid (RT).
    pub receiver: u64,
    pub content: Arc<str>,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
}

impl LiveMessage {
    /// The frame for one wire format.
    pub fn encode(&self, wire: Wire) -> Frame {
        match wire {
            Wire::Json => Frame::Text(self.json()),
            Wire::Binary => Frame::Gob(self.binary()),
        }
    }

    /// Both forms, for recipients whose protocol is not known here (an RT message to all of
    /// a user's connections).
    pub fn dual(&self) -> Frame {
        Frame::Dual {
            json: self.json(),
            binary: self.binary(),
        }
    }

    /// ROOM_IM / RT: sender i64, receiver (room or uid) i64, content.
    pub fn binary(&self) -> Out {
        let cmd = match self.kind {
            Kind::Rt => gob::cmd::RT,
            _ => gob::cmd::ROOM_IM,
        };
        let mut b = BytesMut::with_capacity(16 + self.content.len());
        b.put_i64(self.sender.0 as i64);
        b.put_i64(self.receiver as i64);
        b.put_slice(self.content.as_bytes());
        Out::new(cmd, b.freeze())
    }

    /// `{"type":"message","id":…,"kind":"room"|"rt","sender":…,"receiver":…,…}`.
    pub fn json(&self) -> Bytes {
        let body = frame::body(&Body {
            apps: None,
            device_tag: None,
            msgid: None,
            kind: self.kind,
            sender: Some(self.sender),
            receiver: self.receiver,
            group_id: None,
            content: &self.content,
            timestamp: self.timestamp,
        });
        frame::unstored_message(self.id, &body)
    }
}

/// One connection in a room.
#[derive(Clone)]
pub struct Member {
    /// The connection id (`Registration::id`).
    pub conn: u64,
    pub uid: Uid,
    pub wire: Wire,
    pub outbox: Arc<Outbox>,
}

type RoomKey = (AppId, RoomId);

/// Every room with at least one member on this node.
#[derive(Default)]
pub struct Rooms {
    /// Members per room; an emptied room is removed. Written by enter/leave, read by publish.
    rooms: DashMap<RoomKey, Vec<Member>>,
    /// The room each connection is in: one per connection.
    by_conn: DashMap<u64, RoomKey>,
}

impl Rooms {
    /// Puts the connection in `room`, leaving the room it was in (if another). Returns the
    /// room it left.
    pub fn enter(&self, app: AppId, room: RoomId, member: Member) -> Option<RoomId> {
        let key = (app, room);
        let previous = self.by_conn.insert(member.conn, key);
        if previous == Some(key) {
            return None;
        }
        if let Some(previous) = previous {
            self.remove_member(previous, member.conn);
        }
        self.rooms.entry(key).or_default().push(member);
        previous.map(|(_, r)| r)
    }

    /// Takes the connection out of its room — only if that is `room`, when given. Returns
    /// the room it left.
    pub fn leave(&self, conn: u64, room: Option<RoomId>) -> Option<RoomId> {
        let (_, key) = self
            .by_conn
            .remove_if(&conn, |_, key| room.is_none_or(|r| key.1 == r))?;
        self.remove_member(key, conn);
        Some(key.1)
    }

    /// The room the connection is in.
    pub fn room_of(&self, conn: u64) -> Option<RoomId> {
        self.by_conn.get(&conn).map(|k| k.1)
    }

    fn remove_member(&self, key: RoomKey, conn: u64) {
        self.rooms.remove_if_mut(&key, |_, members| {
            members.retain(|m| m.conn != conn);
            members.is_empty()
        });
    }

    /// Queues `msg` on every member of the room except the connection `exclude`, encoding it
    /// once per wire format. Returns the connections it was queued on.
    pub fn publish(
        &self,
        app: AppId,
        room: RoomId,
        msg: &LiveMessage,
        exclude: Option<u64>,
    ) -> usize {
        let Some(members) = self.rooms.get(&(app, room)) else {
            return 0;
        };
        let mut encoded: Vec<(Wire, Frame)> = Vec::with_capacity(1);
        let mut n = 0;
        for m in members.iter().filter(|m| Some(m.conn) != exclude) {
            let frame = match encoded.iter().find(|(w, _)| *w == m.wire) {
                Some((_, f)) => f.clone(),
                None => {
                    let f = msg.encode(m.wire);
                    encoded.push((m.wire, f.clone()));
                    f
                }
            };
            if m.outbox.push(frame) {
                n += 1;
            }
        }
        n
    }

    /// Connections in the room on this node.
    pub fn members(&self, app: AppId, room: RoomId) -> usize {
        self.rooms.get(&(app, room)).map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(conn: u64) -> Member {
        Member {
            conn,
            uid: Uid(conn),
            wire: Wire::Json,
            outbox: Outbox::new(16),
        }
    }

    #[test]
    fn a_connection_is_in_one_room_and_an_emptied_room_is_gone() {
        let rooms = Rooms::default();
        let (app, r1, r2) = (AppId(1), RoomId(10), RoomId(20));
        assert_eq!(rooms.enter(app, r1, member(1)), None);
        assert_eq!(rooms.enter(app, r1, member(2)), None);
        assert_eq!(rooms.enter(app, r2, member(1)), Some(r1));
        assert_eq!((rooms.members(app, r1), rooms.members(app, r2)), (1, 1));
        assert_eq!(rooms.leave(1, Some(r1)), None, "not in r1 any more");
        assert_eq!(rooms.leave(1, None), Some(r2));
        assert_eq!(rooms.members(app, r2), 0);
        assert!(rooms.rooms.get(&(app, r2)).is_none());
        assert_eq!(rooms.room_of(2), Some(r1));
    }
}
