//! Chat rooms (the original's rooms, README "Chat rooms"): who is in which room, on this node.
//!
//! A room is a set of connections of one app, named by a room id the app chooses; nothing
//! about it is stored. A connection is in at most one room: entering another leaves the first,
//! and a connection that ends leaves its room (`Registration` does that, however it ends). A
//! room message is encoded once — its JSON frame and its binary ROOM_IM body, one `Frame` —
//! and that frame is queued on every member's outbox except the sending connection's; each
//! connection's `Wire` writes the form it speaks. Rooms are per node for now: two nodes behind
//! one balancer have two rooms of the same id.
//!
//! This is the interface every protocol uses: the JSON channel (`live_requests.rs`), the HTTP
//! APIs and the binary protocol (through `Dispatcher::enter_room` / `leave_room` /
//! `send_live`, `live.rs`).

use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;

use super::frame::{self, Body, Kind};
use super::gob;
use super::outbox::{Frame, Outbox};
use crate::domain::{AppId, RoomId, Uid};

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
    /// The frame every connection gets: the JSON `message` and the binary RT / ROOM_IM frame
    /// (flag 0, no METADATA: nothing stored), each encoded once.
    pub fn frame(&self) -> Frame {
        let cmd = match self.kind {
            Kind::Room => gob::cmd::ROOM_IM,
            _ => gob::cmd::RT,
        };
        let body = gob::message::live_body(self.sender.0, self.receiver, &self.content);
        Frame::Live {
            json: self.json(),
            binary: gob::Out::new(cmd, body),
        }
    }

    /// `{"type":"message","id":…,"kind":"room"|"rt","sender":…,"receiver":…,…}`.
    pub fn json(&self) -> Bytes {
        let body = frame::body(&Body {
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

    /// Queues `msg` (encoded once) on every member of the room except the connection
    /// `exclude`. Returns the connections it was queued on.
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
        let frame = msg.frame();
        members
            .iter()
            .filter(|m| Some(m.conn) != exclude && m.outbox.push(frame.clone()))
            .count()
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
            outbox: Outbox::new(16),
        }
    }

    #[test]
    fn a_room_message_is_one_frame_json_for_json_connections_room_im_for_binary_ones() {
        use super::super::wire::{Codec, Transport, Wire};
        let msg = LiveMessage {
            id: 9,
            kind: Kind::Room,
            sender: Uid(1),
            receiver: 5,
            content: "hé".into(),
            timestamp: 7000,
        };
        let frame = msg.frame();
        let mut json = Wire::JSON_WS;
        let mut buf = bytes::BytesMut::new();
        json.encode(&frame, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf[2..]).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["receiver"].as_u64()),
            (Some("room"), Some(5))
        );
        for version in [0, 1, 2] {
            let mut tcp = Wire {
                transport: Transport::Tcp,
                codec: Codec::Binary {
                    version,
                    seq: 0,
                    app: AppId(7),
                },
            };
            let mut buf = bytes::BytesMut::new();
            tcp.encode(&frame, &mut buf);
            let body_len = 16 + "hé".len();
            assert_eq!(&buf[..4], &(body_len as i32).to_be_bytes());
            assert_eq!((buf[8], buf[9], buf[10]), (gob::cmd::ROOM_IM, version, 0));
            assert_eq!(&buf[12..20], &1i64.to_be_bytes());
            assert_eq!(&buf[20..28], &5i64.to_be_bytes());
            assert_eq!(&buf[28..], "hé".as_bytes());
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
