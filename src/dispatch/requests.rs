//! What a client can ask over its WebSocket (SPEC §5.3/§5.4): sync, sync_group, ack, ping,
//! send. Bad frames get an `error` frame; too many close the connection.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::connection::Connection;
use super::outbox::{CloseReason, Frame};
use super::{PeerSend, frame};
use crate::domain::{GroupId, Uid};
use crate::store::stored_seq;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Sync {
        after: u64,
        limit: Option<usize>,
    },
    SyncGroup {
        group_id: GroupId,
        after: u64,
    },
    Ack {
        seq: u64,
    },
    Ping,
    Send {
        kind: String,
        to: u64,
        content: Value,
    },
}

impl Connection {
    fn reply(&self, bytes: bytes::Bytes) {
        self.outbox.push(Frame::Text(bytes));
    }

    /// An `error` frame; too many bad frames in a minute close the connection.
    pub(super) fn bad_frame(&mut self, reference: Option<&Value>, code: &str, message: &str) {
        metrics::counter!("imd_ws_bad_frames_total").increment(1);
        if self.bad_window.elapsed() > Duration::from_secs(60) {
            self.bad_window = Instant::now();
            self.bad_frames = 0;
        }
        self.bad_frames += 1;
        self.reply(frame::error(reference, code, message));
        if self.bad_frames > self.dispatcher.limits().ws_max_bad_frames {
            self.outbox
                .close(CloseReason::Policy, "too many bad frames");
        }
    }

    pub(super) async fn on_text(&mut self, text: &[u8]) {
        let value: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                return self.bad_frame(None, "invalid_json", &format!("frame is not JSON: {e}"));
            }
        };
        // `ref` is echoed in answers; a huge one is not.
        let reference = value
            .get("ref")
            .filter(|r| r.to_string().len() <= 256)
            .cloned();
        let Some(kind) = value
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return self.bad_frame(
                reference.as_ref(),
                "invalid_frame",
                "frame must be a JSON object with a string `type`",
            );
        };
        if !matches!(
            kind.as_str(),
            "sync" | "sync_group" | "ack" | "ping" | "send"
        ) {
            let msg = format!(
                "unknown frame type {kind:?}; expected sync, sync_group, ack, ping or send"
            );
            return self.bad_frame(reference.as_ref(), "unknown_type", &msg);
        }
        let parsed = match serde_json::from_value::<ClientFrame>(value) {
            Ok(f) => f,
            Err(e) => {
                return self.bad_frame(
                    reference.as_ref(),
                    "invalid_frame",
                    &format!("{kind} frame: {e}"),
                );
            }
        };
        match parsed {
            ClientFrame::Ping => self.reply(frame::pong()),
            ClientFrame::Ack { seq } => {
                metrics::counter!("imd_ws_acks_total").increment(1);
                if let Err(e) = self
                    .dispatcher
                    .store()
                    .set_ack(self.info.user, &self.device, seq)
                    .await
                {
                    self.reply(frame::error(None, "store_unavailable", &e.to_string()));
                }
            }
            ClientFrame::Sync { after, limit } => self.sync(after, limit).await,
            ClientFrame::SyncGroup { group_id, after } => {
                self.sync_group(reference, group_id, after).await
            }
            ClientFrame::Send { kind, to, content } => {
                self.send(reference, &kind, to, content).await
            }
        }
    }

    /// Inbox messages after `after`, up to the `hello` seq (later ones arrive live), in pages.
    async fn sync(&mut self, after: u64, limit: Option<usize>) {
        metrics::counter!("imd_ws_sync_requests_total").increment(1);
        // A page never fills more than half the outbound queue.
        let limits = self.dispatcher.limits();
        let batch = limits.sync_batch.min(limits.outbound_queue / 2).max(1);
        let limit = limit.unwrap_or(batch).clamp(1, batch);
        let store = self.dispatcher.store();
        match store
            .inbox_after(self.info.user, after, self.hello_seq, limit)
            .await
        {
            Ok(messages) => {
                let last = messages.last().and_then(|m| stored_seq(m));
                for m in &messages {
                    self.reply(frame::stored_message(m));
                }
                let (seq, more) = match last {
                    Some(last) => (last, last < self.hello_seq && messages.len() == limit),
                    None => (after.min(self.outbox.live_seq().max(self.hello_seq)), false),
                };
                self.reply(frame::sync_end(seq, more));
            }
            Err(e) => self.reply(frame::error(None, "store_unavailable", &e.to_string())),
        }
    }

    async fn send(&mut self, reference: Option<Value>, kind: &str, to: u64, content: Value) {
        let content = match content_text(&content, self.dispatcher.limits().content) {
            Ok(c) => c,
            Err((code, msg)) => return self.bad_frame(reference.as_ref(), code, &msg),
        };
        let idempotency = match &reference {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => Some(format!(
                "ws:{}:{}:{s}",
                self.info.user.app, self.info.user.uid
            )),
            Some(Value::Number(n)) => Some(format!(
                "ws:{}:{}:{n}",
                self.info.user.app, self.info.user.uid
            )),
            Some(_) => {
                return self.bad_frame(
                    reference.as_ref(),
                    "invalid_frame",
                    "`ref` must be a string of 1-128 characters or a number",
                );
            }
        };
        if to == 0 || to > crate::domain::MAX_ID {
            return self.bad_frame(
                reference.as_ref(),
                "invalid_frame",
                "`to` must be a positive integer",
            );
        }
        if let Err(wait) = self.info.app.take_send() {
            let msg = format!("this app's send rate is exceeded; retry in {wait} s");
            return self.reply(frame::error(reference.as_ref(), "rate_limited", &msg));
        }
        let (app, uid) = (self.info.user.app, self.info.user.uid);
        let result = match kind {
            "peer" | "customer" => {
                self.dispatcher
                    .send_peer(PeerSend {
                        kind: if kind == "peer" {
                            frame::Kind::Peer
                        } else {
                            frame::Kind::Customer
                        },
                        app,
                        sender: uid,
                        receiver: Uid(to),
                        content: &content,
                        idempotency,
                        origin: Some(self.registration.id()),
                    })
                    .await
            }
            "group" => {
                self.dispatcher
                    .send_group(
                        app,
                        uid,
                        GroupId(to),
                        &content,
                        idempotency,
                        Some(self.registration.id()),
                    )
                    .await
            }
            other => {
                let msg =
                    format!("unsupported send kind {other:?}; expected peer, group or customer");
                return self.bad_frame(reference.as_ref(), "invalid_frame", &msg);
            }
        };
        match result {
            Ok(sent) if sent.timeline => {
                self.reply(frame::ack_group(reference.as_ref(), sent.id, sent.seq));
            }
            Ok(sent) if sent.replayed => {
                self.reply(frame::ack(reference.as_ref(), sent.id, sent.seq));
            }
            Ok(sent) => {
                // The ack takes the message's place in this connection's seq order.
                let ack = frame::ack(reference.as_ref(), sent.id, sent.seq);
                self.outbox.push_seq(sent.seq, Frame::Text(ack));
            }
            Err(e) => {
                let (_, code) = e.status_and_code();
                self.reply(frame::error(
                    reference.as_ref(),
                    code,
                    &format!("not sent: {e}"),
                ));
            }
        }
    }

    /// A super group's timeline after `after` (from the member's join on), in pages.
    async fn sync_group(&mut self, reference: Option<Value>, gid: GroupId, after: u64) {
        metrics::counter!("imd_ws_sync_requests_total").increment(1);
        let limits = self.dispatcher.limits();
        let limit = limits.sync_batch.min(limits.outbound_queue / 2).max(1);
        match self
            .dispatcher
            .sync_group(self.info.user, gid, after, limit)
            .await
        {
            Ok((records, last, more)) => {
                for r in &records {
                    self.reply(frame::stored_message(r));
                }
                self.reply(frame::sync_group_end(gid, last, more));
            }
            Err(e) => {
                let (_, code) = e.status_and_code();
                self.reply(frame::error(reference.as_ref(), code, &e.to_string()));
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
