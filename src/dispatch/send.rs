//! A client's `send` frame (SPEC §5.4): who may send what, the idempotency key of its `ref`,
//! the same send path as HTTP, and the `ack` or `error` that answers it.

use serde_json::Value;

use super::connection::Connection;
use super::outbox::Frame;
use super::{PeerSend, frame};
use crate::domain::{GroupId, Uid};

/// Longest string `ref` a frame may carry, bytes (numbers are accepted as they are).
pub(super) const MAX_REF: usize = 128;

/// Whether `r` is an acceptable `ref`: a string of 1..=`MAX_REF` bytes or a number.
pub(super) fn valid_ref(r: &Value) -> bool {
    match r {
        Value::String(s) => !s.is_empty() && s.len() <= MAX_REF,
        Value::Number(_) => true,
        _ => false,
    }
}

impl Connection {
    /// The idempotency key of a (valid) `ref`: the same ref from the same user is one send.
    fn idempotency_key(&self, reference: Option<&Value>) -> Option<String> {
        let user = self.info.user;
        match reference? {
            Value::String(s) => Some(format!("ws:{}:{}:{s}", user.app, user.uid)),
            Value::Number(n) => Some(format!("ws:{}:{}:{n}", user.app, user.uid)),
            _ => None,
        }
    }

    pub(super) async fn send(
        &mut self,
        reference: Option<Value>,
        kind: &str,
        to: u64,
        content: Value,
    ) {
        let reference = reference.as_ref();
        if self.info.customer && kind != "customer" {
            // Customers talk to their assigned supporter and to no one else (SPEC §4.4).
            let msg = format!(
                "a customer sends only `kind: \"customer\"` messages, to their assigned supporter; not {kind:?}"
            );
            return self.reply(frame::error(reference, "customer_only", &msg));
        }
        let content = match content_text(&content, self.dispatcher.limits().content) {
            Ok(c) => c,
            Err((code, msg)) => return self.bad_frame(reference, code, &msg),
        };
        if to == 0 || to > crate::domain::MAX_ID {
            return self.bad_frame(
                reference,
                "invalid_frame",
                "`to` must be a positive integer",
            );
        }
        let kind = match kind {
            "peer" => frame::Kind::Peer,
            "customer" => frame::Kind::Customer,
            "group" => frame::Kind::Group,
            "room" => {
                return self
                    .send_live(reference, frame::Kind::Room, to, &content)
                    .await;
            }
            "rt" => {
                return self
                    .send_live(reference, frame::Kind::Rt, to, &content)
                    .await;
            }
            other => {
                let msg = format!(
                    "unsupported send kind {other:?}; expected peer, group, customer, room or rt"
                );
                return self.bad_frame(reference, "invalid_frame", &msg);
            }
        };
        if let Err(wait) = self.info.app.take_send() {
            let msg = format!("this app's send rate is exceeded; retry in {wait} s");
            return self.reply(frame::error(reference, "rate_limited", &msg));
        }
        let idempotency = self.idempotency_key(reference);
        let (app, uid) = (self.info.user.app, self.info.user.uid);
        let origin = Some(self.registration.id());
        let result = match kind {
            frame::Kind::Group => {
                let gid = GroupId(to);
                self.dispatcher
                    .send_group(app, uid, gid, &content, idempotency, origin)
                    .await
            }
            kind => {
                self.dispatcher
                    .send_peer(PeerSend {
                        kind,
                        app,
                        sender: uid,
                        receiver: Uid(to),
                        content: &content,
                        idempotency,
                        origin,
                    })
                    .await
            }
        };
        match result {
            Ok(sent) if sent.timeline => {
                self.reply(frame::ack_group(reference, sent.id, sent.seq));
            }
            Ok(sent) if sent.replayed => {
                self.reply(frame::ack(reference, sent.id, sent.seq));
            }
            Ok(sent) => {
                // The ack takes the message's place in this connection's seq order.
                let ack = frame::ack(reference, sent.id, sent.seq);
                self.outbox.push_seq(sent.seq, Frame::Text(ack));
            }
            Err(e) => {
                let (_, code) = e.status_and_code();
                self.reply(frame::error(reference, code, &format!("not sent: {e}")));
            }
        }
    }
}

/// `content` as the text to store: a string as is, an object as its JSON text.
pub fn content_text(content: &Value, limit: usize) -> Result<String, (&'static str, String)> {
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Object(_) => content.to_string(),
        _ => {
            return Err((
                "invalid_content",
                "`content` must be a string or a JSON object".into(),
            ));
        }
    };
    if text.len() > limit {
        return Err((
            "content_too_large",
            format!("`content` is {} bytes; the limit is {limit}", text.len()),
        ));
    }
    Ok(text)
}
