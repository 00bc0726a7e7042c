//! A client's `send` frame (SPEC §5.4): who may send what, the idempotency key of its `ref`,
//! the one send preparation (`prepare.rs`) and path shared with HTTP, and the `ack` or `error` that answers it.

use serde_json::Value;

use super::connection::Connection;
use super::frame;
use super::outbox::Frame;
use super::prepare::{Content, Draft, KeyScope, SendRefused, SendRequest};
use crate::domain::{AppId, MessageKind};

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
    pub(super) async fn send(
        &mut self,
        reference: Option<Value>,
        kind: &str,
        to: (u64, Option<AppId>),
        content: Value,
    ) {
        let reference = reference.as_ref();
        let draft = match self.draft(reference, kind, to, &content) {
            Ok(d) => d,
            Err(Some(e)) => return self.refused(reference, &e),
            Err(None) => {
                let msg = format!(
                    "unsupported send kind {kind:?}; expected peer, group, customer, room or rt"
                );
                return self.bad_frame(reference, "invalid_frame", &msg);
            }
        };
        let limit = self.dispatcher.limits().content;
        let request = match SendRequest::prepare(&self.info.app, limit, draft) {
            Ok(r) => r,
            Err(e) => return self.refused(reference, &e),
        };
        if matches!(request.kind, MessageKind::Room | MessageKind::Rt) {
            return self.send_live(reference, request).await;
        }
        match self.dispatcher.send(request).await {
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

    /// The send a `send` frame describes; `Err(None)` for a kind it cannot send.
    fn draft<'a>(
        &self,
        reference: Option<&Value>,
        kind: &str,
        (to, to_app): (u64, Option<AppId>),
        content: &'a Value,
    ) -> Result<Draft<'a>, Option<SendRefused>> {
        if self.info.customer && kind != MessageKind::Customer.as_str() {
            // Customers talk to their assigned supporter and to no one else (SPEC §4.4).
            return Err(Some(SendRefused::CustomerOnly(kind.to_string())));
        }
        let kind = MessageKind::parse(kind).ok_or(None)?;
        if !matches!(
            kind,
            MessageKind::Peer
                | MessageKind::Group
                | MessageKind::Customer
                | MessageKind::Room
                | MessageKind::Rt
        ) {
            return Err(None);
        }
        let idempotency = self
            .idempotency_key(reference)
            .map(|k| KeyScope::Socket(self.info.user).key(&k))
            .transpose()
            .map_err(Some)?;
        Ok(Draft {
            msgid: None,
            device_tag: matches!(kind, MessageKind::Peer | MessageKind::Customer)
                .then(|| self.info.device_tag())
                .flatten(),
            to_app,
            kind,
            sender: self.info.user.uid,
            to,
            content: Content::Json(content),
            idempotency,
            origin: Some(self.registration.id()),
        })
    }

    /// A refused send: an `error` frame; a malformed one counts as a bad frame.
    fn refused(&mut self, reference: Option<&Value>, e: &SendRefused) {
        if e.is_malformed() {
            self.bad_frame(reference, e.code(), &e.to_string());
        } else {
            self.reply(frame::error(reference, e.code(), &e.to_string()));
        }
    }

    /// The client's idempotency key: a (valid) `ref`, string or number.
    fn idempotency_key(&self, reference: Option<&Value>) -> Option<String> {
        match reference? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}
