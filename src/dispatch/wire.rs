//! The shared write path: how a queued `Frame` becomes bytes on one connection. Two small
//! axes — the transport (WebSocket framing, or a raw TCP stream) and the codec (our JSON
//! text protocol, or the GoBelieve binary protocol in the version the connection
//! authenticated with). The outbox drains through a connection's `Wire`; everything else is
//! the same for every connection.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::Spliced;
use super::gob::{self, cmd, flag};
use super::outbox::{CloseReason, Frame};
use crate::domain::AppId;

/// How frames travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 6455 frames; a binary-protocol frame is one binary message.
    WebSocket,
    /// A stream of binary-protocol frames (the original's port 23000).
    Tcp,
}

/// What the frames say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// JSON text frames (README "WebSocket protocol").
    Json,
    /// GoBelieve binary frames.
    Binary {
        /// The AUTH_TOKEN frame's version (0 before authentication).
        version: u8,
        /// The seq of the last frame written (the server numbers its frames 1, 2, 3 …,
        /// METADATA included).
        seq: i32,
        /// The connection's app (customer messages carry it).
        app: AppId,
    },
}

/// One connection's write side.
#[derive(Debug, Clone, Copy)]
pub struct Wire {
    pub transport: Transport,
    pub codec: Codec,
}

/// Frames from this size on are not copied into the write buffer: they are written from their
/// shared bytes (`Drained::Large`), so a 1 MB notification queued on 10,000 connections is
/// held once, whatever their sockets take.
pub const LARGE: usize = 16 * 1024;

impl Wire {
    pub const JSON_WS: Wire = Wire {
        transport: Transport::WebSocket,
        codec: Codec::Json,
    };

    /// Encodes one frame into `buf`. A frame the codec has no form for (a JSON reply on a
    /// binary connection, a WebSocket ping on TCP) is skipped.
    pub fn encode(&mut self, frame: &Frame, buf: &mut BytesMut) {
        match (frame, self.codec) {
            (Frame::Ping, _) if self.transport == Transport::WebSocket => {
                write_ws(buf, 0x9, &[]);
            }
            (Frame::Pong(b), _) if self.transport == Transport::WebSocket => {
                write_ws(buf, 0xA, &[b]);
            }
            (Frame::Text(b), Codec::Json) => write_ws(buf, 0x1, &[b]),
            (Frame::Dual { json, .. }, Codec::Json) => write_ws(buf, 0x1, &[json]),
            (Frame::Spliced(parts, seq), Codec::Json) => {
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(*seq).as_bytes();
                write_ws(buf, 0x1, &[&parts.head, digits, &parts.tail]);
            }
            (Frame::Gob(out), Codec::Binary { .. }) => self.gob(buf, out),
            (Frame::Dual { binary, .. }, Codec::Binary { .. }) => self.gob(buf, binary),
            (Frame::Spliced(parts, seq), Codec::Binary { .. }) => self.live(buf, parts, *seq),
            _ => {}
        }
    }

    /// A live stored message on a binary connection: METADATA + the message (flag PUSH) for
    /// the kinds delivered live, then the SYNC_NOTIFY (SYNC_GROUP_NOTIFY on a super group's
    /// timeline) that makes a client that dropped it sync.
    fn live(&mut self, buf: &mut BytesMut, parts: &Spliced, seq: u64) {
        let Codec::Binary { version, app, .. } = self.codec else {
            return;
        };
        let Some(m) = parts.binary() else {
            return;
        };
        let meta = Some((seq, seq.saturating_sub(1)));
        if parts.timeline {
            let gid = m.group_id.unwrap_or(m.receiver);
            if m.live_body() {
                let out = gob::Out {
                    meta,
                    cmd: m.cmd,
                    flag: flag::PUSH | flag::SUPER_GROUP,
                    body: m.body(version, app),
                };
                self.gob(buf, &out);
            }
            let notify = gob::group_key_body(gid, seq);
            self.gob(buf, &gob::Out::new(cmd::SYNC_GROUP_NOTIFY, notify));
        } else {
            if m.live_body() {
                let out = gob::Out {
                    meta,
                    cmd: m.cmd,
                    flag: flag::PUSH,
                    body: m.body(version, app),
                };
                self.gob(buf, &out);
            }
            self.gob(buf, &gob::Out::new(cmd::SYNC_NOTIFY, gob::key_body(seq)));
        }
    }

    /// One binary frame (and its METADATA), numbered and versioned for this connection; on a
    /// WebSocket each is its own binary message.
    fn gob(&mut self, buf: &mut BytesMut, out: &gob::Out) {
        if let Some((key, prev)) = out.meta {
            let body = gob::metadata_body(key, prev);
            self.one(buf, cmd::METADATA, 0, &body);
        }
        self.one(buf, out.cmd, out.flag, &out.body);
    }

    fn one(&mut self, buf: &mut BytesMut, command: u8, flags: u8, body: &[u8]) {
        let Codec::Binary { version, seq, .. } = &mut self.codec else {
            return;
        };
        *seq = seq.wrapping_add(1);
        let len = if command == cmd::ACK && *version < 2 {
            body.len().min(4)
        } else {
            body.len()
        };
        if self.transport == Transport::WebSocket {
            write_ws_header(buf, 0x2, gob::HEADER + len);
        }
        gob::write(buf, *seq, *version, command, flags, body);
    }

    /// The end of the stream: a WebSocket close frame; nothing on TCP (the socket is closed).
    pub fn close(&self, reason: CloseReason, text: &str, buf: &mut BytesMut) {
        if self.transport == Transport::WebSocket {
            let mut payload = reason.code().to_be_bytes().to_vec();
            payload.extend_from_slice(text.as_bytes());
            payload.truncate(123);
            write_ws(buf, 0x8, &[&payload]);
        }
    }

    /// A large JSON text frame as (header, shared parts…), or `None`: small frames, and every
    /// binary-protocol frame, are encoded into the buffer.
    pub fn large_parts(&self, frame: &Frame) -> Option<Vec<Bytes>> {
        if self.codec != Codec::Json {
            return None;
        }
        let parts = match frame {
            Frame::Text(b) | Frame::Dual { json: b, .. } if b.len() >= LARGE => vec![b.clone()],
            Frame::Spliced(p, seq) if p.head.len() + p.tail.len() >= LARGE => {
                let digits = Bytes::copy_from_slice(itoa::Buffer::new().format(*seq).as_bytes());
                vec![p.head.clone(), digits, p.tail.clone()]
            }
            _ => return None,
        };
        let mut header = BytesMut::with_capacity(10);
        write_ws_header(&mut header, 0x1, parts.iter().map(Bytes::len).sum());
        Some(std::iter::once(header.freeze()).chain(parts).collect())
    }
}

/// One WebSocket frame (server frames are not masked, RFC 6455 §5.1).
fn write_ws(buf: &mut BytesMut, opcode: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.reserve(len + 10);
    write_ws_header(buf, opcode, len);
    for p in parts {
        buf.put_slice(p);
    }
}

/// A final, unmasked WebSocket frame header for a payload of `len` bytes.
fn write_ws_header(buf: &mut BytesMut, opcode: u8, len: usize) {
    buf.put_u8(0x80 | opcode);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if len <= 0xFFFF {
        buf.put_u8(126);
        buf.put_u16(len as u16);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(transport: Transport, version: u8) -> Wire {
        Wire {
            transport,
            codec: Codec::Binary {
                version,
                seq: 0,
                app: AppId(7),
            },
        }
    }

    #[test]
    fn an_ack_with_metadata_is_two_numbered_frames_in_the_connections_version() {
        for (version, ack_len) in [(1u8, 4usize), (2, 5)] {
            let mut wire = binary(Transport::Tcp, version);
            let mut buf = BytesMut::new();
            let ack = gob::Out::ack(9, 0, 0, Some((5, 4)));
            wire.encode(&Frame::Gob(ack), &mut buf);
            assert_eq!(buf.len(), 12 + 32 + 12 + ack_len, "v{version}");
            assert_eq!(
                &buf[..12],
                &[0, 0, 0, 32, 0, 0, 0, 1, cmd::METADATA, version, 0, 0]
            );
            let h = &buf[44..56];
            assert_eq!(
                h,
                &[0, 0, 0, ack_len as u8, 0, 0, 0, 2, cmd::ACK, version, 0, 0]
            );
            assert_eq!(&buf[56..60], &9i32.to_be_bytes());
        }
    }

    #[test]
    fn on_a_websocket_each_binary_frame_is_its_own_message_and_json_is_skipped() {
        let mut wire = binary(Transport::WebSocket, 1);
        let mut buf = BytesMut::new();
        wire.encode(&Frame::Text(Bytes::from_static(b"{}")), &mut buf);
        assert!(buf.is_empty(), "a JSON frame has no binary form");
        wire.encode(
            &Frame::Gob(gob::Out::new(cmd::PONG, Bytes::new())),
            &mut buf,
        );
        assert_eq!(
            &buf[..2],
            &[0x82, 12],
            "a final binary message of one 12-byte frame"
        );
        assert_eq!(buf.len(), 14);
    }
}
