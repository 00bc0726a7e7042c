//! The GoBelieve binary protocol (README "GoBelieve binary protocol"; the facts are pinned in
//! `gobelieve-protocol.md`): 12-byte big-endian headers `len i32 | seq i32 | cmd u8 |
//! version u8 | flag u8 | 0`, one frame per binary WebSocket message or a stream of them on
//! TCP. Versions 0, 1 and 2: a client frame is decoded by its own version byte; server frames
//! are encoded with the version the connection authenticated with.
//!
//! - `codec.rs`: client frames → `Command` (bounds-checked, never panics).
//! - `message.rs`: stored and live messages → frame bodies, encoded once per version.
//! - `conn.rs`, `requests.rs`, `send.rs`: one binary connection and its commands.

pub(super) mod codec;
pub(super) mod conn;
mod live;
pub(super) mod message;
mod requests;
mod send;

use bytes::{BufMut, Bytes, BytesMut};

/// Command numbers (`gobelieve-semantics.md` §7.3).
pub mod cmd {
    pub const AUTH_STATUS: u8 = 3;
    pub const IM: u8 = 4;
    pub const ACK: u8 = 5;
    pub const GROUP_NOTIFICATION: u8 = 7;
    pub const GROUP_IM: u8 = 8;
    pub const PING: u8 = 13;
    pub const PONG: u8 = 14;
    pub const AUTH_TOKEN: u8 = 15;
    pub const RT: u8 = 17;
    pub const ENTER_ROOM: u8 = 18;
    pub const LEAVE_ROOM: u8 = 19;
    pub const ROOM_IM: u8 = 20;
    pub const SYSTEM: u8 = 21;
    pub const UNREAD_COUNT: u8 = 22;
    pub const CUSTOMER: u8 = 24;
    pub const CUSTOMER_SUPPORT: u8 = 25;
    pub const SYNC: u8 = 26;
    pub const SYNC_BEGIN: u8 = 27;
    pub const SYNC_END: u8 = 28;
    pub const SYNC_NOTIFY: u8 = 29;
    pub const SYNC_GROUP: u8 = 30;
    pub const SYNC_GROUP_BEGIN: u8 = 31;
    pub const SYNC_GROUP_END: u8 = 32;
    pub const SYNC_GROUP_NOTIFY: u8 = 33;
    pub const SYNC_KEY: u8 = 34;
    pub const GROUP_SYNC_KEY: u8 = 35;
    pub const NOTIFICATION: u8 = 36;
    pub const METADATA: u8 = 37;
    pub const CUSTOMER_V2: u8 = 64;
}

/// Header flags (§7.2).
pub mod flag {
    /// On a synced message: sent by this user from this device.
    pub const SELF: u8 = 0x08;
    pub const PUSH: u8 = 0x10;
    pub const SUPER_GROUP: u8 = 0x20;
}

/// ACK status codes (v2 clients read them).
pub mod status {
    pub const OK: u8 = 0;
    pub const NOT_GROUP_MEMBER: u8 = 64;
    pub const GROUP_NONEXIST: u8 = 65;
}

/// Header length.
pub const HEADER: usize = 12;

/// Client bodies must be shorter than this (the original's limit).
pub const MAX_BODY: usize = 32 * 1024;

/// The header of a frame (what the first 12 bytes say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: i32,
    pub seq: i32,
    pub cmd: u8,
    pub version: u8,
    pub flag: u8,
}

impl Header {
    /// Reads a header; `None` until 12 bytes are there.
    pub fn read(buf: &[u8]) -> Option<Header> {
        let h = buf.get(..HEADER)?;
        Some(Header {
            len: i32::from_be_bytes([h[0], h[1], h[2], h[3]]),
            seq: i32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            cmd: h[8],
            version: h[9],
            flag: h[10],
        })
    }

    /// The body length if it is one a client may send (0 ≤ len < 32 KiB).
    pub fn body_len(&self) -> Option<usize> {
        usize::try_from(self.len).ok().filter(|n| *n < MAX_BODY)
    }
}

/// A server frame waiting for its header: the connection numbers it (`seq`) and gives it its
/// version when it is written. Bodies are shared bytes (encoded once per message).
#[derive(Debug, Clone)]
pub struct Out {
    /// METADATA `(sync_key, prev_sync_key)` written just before this frame.
    pub meta: Option<(u64, u64)>,
    pub cmd: u8,
    pub flag: u8,
    pub body: Bytes,
}

impl Out {
    pub fn new(cmd: u8, body: Bytes) -> Out {
        Out {
            meta: None,
            cmd,
            flag: 0,
            body,
        }
    }

    /// An ACK of client frame `seq`; the status byte is written to v2 connections only.
    pub fn ack(seq: i32, status: u8, flag: u8, meta: Option<(u64, u64)>) -> Out {
        let mut b = BytesMut::with_capacity(5);
        b.put_i32(seq);
        b.put_u8(status);
        Out {
            meta,
            cmd: cmd::ACK,
            flag,
            body: b.freeze(),
        }
    }
}

/// A body of one i64 (SYNC_BEGIN/END/NOTIFY).
pub fn key_body(key: u64) -> Bytes {
    Bytes::copy_from_slice(&(key as i64).to_be_bytes())
}

/// A body of two i64 (group id, key).
pub fn group_key_body(gid: u64, key: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(16);
    b.put_i64(gid as i64);
    b.put_i64(key as i64);
    b.freeze()
}

/// Appends one complete frame: header (numbered `seq`, version `version`) and body. ACKs lose
/// their status byte below version 2.
pub fn write(buf: &mut BytesMut, seq: i32, version: u8, cmd: u8, flag: u8, body: &[u8]) {
    let body = if cmd == cmd::ACK && version < 2 {
        body.get(..4).unwrap_or(body)
    } else {
        body
    };
    buf.reserve(HEADER + body.len());
    buf.put_i32(body.len() as i32);
    buf.put_i32(seq);
    buf.put_u8(cmd);
    buf.put_u8(version);
    buf.put_u8(flag);
    buf.put_u8(0);
    buf.put_slice(body);
}

/// The 32-byte METADATA body: key, previous key, 16 zero bytes.
pub fn metadata_body(key: u64, prev: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(key as i64).to_be_bytes());
    b[8..16].copy_from_slice(&(prev as i64).to_be_bytes());
    b
}
