//! Client frames as they come off the socket: the size check on each frame's header, fragment
//! reassembly (RFC 6455 §5.4), and the hand-over of each complete frame to `requests.rs`.
//!
//! actix-http's codec compares a frame's length with its `max_size` only once the whole frame
//! has arrived: until then it keeps buffering (it reserves up to the limit, then grows the
//! buffer with every read). A client declaring a 1 TiB frame would be read for as long as it
//! kept sending. The length is in the first 2–10 bytes, so it is checked there, before the
//! codec sees the frame, and the connection is closed (1009) at once.

use actix_http::ws::{Frame as WsFrame, Item};
use bytes::BytesMut;

use super::connection::Connection;
use super::outbox::{CloseReason, Frame};

/// The payload length declared by the frame header at the start of `buf`; `None` until enough
/// of the header has arrived.
pub(super) fn declared_len(buf: &[u8]) -> Option<u64> {
    let len = *buf.get(1)? & 0x7f;
    Some(match len {
        126 => u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
        127 => u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?),
        n => u64::from(n),
    })
}

impl Connection {
    /// One decoded client frame.
    pub(super) async fn on_frame(&mut self, f: WsFrame) {
        match f {
            WsFrame::Text(text) => self.on_text(&text).await,
            WsFrame::Ping(data) => {
                self.outbox.push(Frame::Pong(data));
            }
            WsFrame::Pong(_) => {}
            WsFrame::Binary(_) => {
                self.bad_frame(None, "unsupported_frame", "send JSON in text frames")
            }
            WsFrame::Continuation(item) => {
                if let Some(text) = self.reassemble(item) {
                    self.on_text(&text).await
                }
            }
            WsFrame::Close(_) => self.outbox.close(CloseReason::Normal, ""),
        }
    }

    /// Collects a fragmented text message; the whole message when complete.
    fn reassemble(&mut self, item: Item) -> Option<bytes::Bytes> {
        let limit = self.dispatcher.limits().ws_max_frame;
        let (part, first, last) = match item {
            Item::FirstText(p) => (p, true, false),
            Item::Continue(p) => (p, false, false),
            Item::Last(p) => (p, false, true),
            Item::FirstBinary(_) => {
                self.bad_frame(None, "unsupported_frame", "send JSON in text frames");
                return None;
            }
        };
        if first {
            self.fragments = Some(BytesMut::new());
        }
        let Some(buf) = &mut self.fragments else {
            self.bad_frame(
                None,
                "invalid_frame",
                "continuation frame without a first fragment",
            );
            return None;
        };
        buf.extend_from_slice(&part);
        if buf.len() > limit {
            self.fragments = None;
            self.outbox.close(CloseReason::TooBig, "message too large");
            return None;
        }
        if last {
            self.fragments.take().map(BytesMut::freeze)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::declared_len;

    #[test]
    fn the_declared_length_is_read_from_every_header_form() {
        assert_eq!(declared_len(&[0x81]), None, "half a header");
        assert_eq!(declared_len(&[0x81, 0x85]), Some(5));
        assert_eq!(declared_len(&[0x81, 0xfe, 0x01]), None);
        assert_eq!(declared_len(&[0x81, 0xfe, 0x01, 0x00]), Some(256));
        assert_eq!(declared_len(&[0x81, 0xff, 0, 0, 1, 0, 0, 0, 0]), None);
        assert_eq!(
            declared_len(&[0x81, 0xff, 0, 0, 1, 0, 0, 0, 0, 0]),
            Some(1 << 40)
        );
    }
}
