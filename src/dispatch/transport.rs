//! The read side of the two transports: what one complete client message in the read buffer
//! is. A WebSocket yields RFC 6455 frames (the declared length checked on the header, before
//! any payload is buffered: `inbound.rs`); TCP yields GoBelieve binary frames, whose 12-byte
//! header declares a body that must be shorter than 32 KiB.

use actix_http::ws::{Codec, Frame as WsFrame, ProtocolError};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::gob::{HEADER, Header};
use super::inbound::declared_len;

/// One complete client message.
#[derive(Debug)]
pub enum Inbound {
    Ws(WsFrame),
    /// A whole binary-protocol frame (header and body) read from TCP.
    Binary(Bytes),
}

/// Why the read side gives up on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Past the size limit (declared on the header).
    TooBig,
    /// Bytes that break the transport's framing.
    Protocol,
}

/// A connection's read side.
pub enum Reader {
    /// `limit`: the largest frame accepted, bytes.
    WebSocket {
        codec: Codec,
        limit: u64,
    },
    Tcp,
}

impl Reader {
    /// A WebSocket reader refusing frames over `max_frame` bytes.
    pub fn websocket(max_frame: usize) -> Reader {
        Reader::WebSocket {
            codec: Codec::new().max_size(max_frame),
            limit: max_frame as u64,
        }
    }

    /// The next complete message in `rbuf`, if one is there.
    pub fn next(&mut self, rbuf: &mut BytesMut) -> Result<Option<Inbound>, ReadError> {
        match self {
            Reader::WebSocket { codec, limit } => {
                if declared_len(rbuf).is_some_and(|n| n > *limit) {
                    return Err(ReadError::TooBig);
                }
                match codec.decode(rbuf) {
                    Ok(f) => Ok(f.map(Inbound::Ws)),
                    Err(ProtocolError::Overflow) => Err(ReadError::TooBig),
                    Err(e) => {
                        tracing::debug!(error = %e, "ws protocol error");
                        Err(ReadError::Protocol)
                    }
                }
            }
            Reader::Tcp => {
                let Some(h) = Header::read(rbuf) else {
                    return Ok(None);
                };
                let len = h.body_len().ok_or(ReadError::TooBig)?;
                if rbuf.len() < HEADER + len {
                    return Ok(None);
                }
                Ok(Some(Inbound::Binary(rbuf.split_to(HEADER + len).freeze())))
            }
        }
    }
}
