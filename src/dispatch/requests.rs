//! What a client can ask over its WebSocket (SPEC §5.3/§5.4): sync, sync_group, ack, ping,
//! send. Bad frames get an `error` frame; too many close the connection.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::connection::Connection;
use super::frame;
use super::outbox::{CloseReason, Frame};
use super::send::{MAX_REF, valid_ref};
use crate::domain::{AppId, GroupId};
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
        /// A customer message to the users of another app (to or from the help desk).
        to_app: Option<AppId>,
        content: Value,
    },
    EnterRoom {
        room_id: u64,
    },
    LeaveRoom {
        room_id: Option<u64>,
    },
}

impl Connection {
    pub(super) fn reply(&self, bytes: bytes::Bytes) {
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
        // `ref` is echoed in every answer: one rule for every frame, checked first.
        let reference = match value.get("ref") {
            None | Some(Value::Null) => None,
            Some(r) if valid_ref(r) => Some(r.clone()),
            Some(_) => {
                let msg = format!("`ref` must be a string of 1-{MAX_REF} bytes or a number");
                return self.bad_frame(None, "invalid_frame", &msg);
            }
        };
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
            "sync" | "sync_group" | "ack" | "ping" | "send" | "enter_room" | "leave_room"
        ) {
            let msg = format!(
                "unknown frame type {kind:?}; expected sync, sync_group, ack, ping, send, enter_room or leave_room"
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
            ClientFrame::Ack { seq } => self.ack(reference, seq).await,
            ClientFrame::Sync { after, limit } => self.sync(reference, after, limit).await,
            ClientFrame::SyncGroup { group_id, after } => {
                self.sync_group(reference, group_id, after).await
            }
            ClientFrame::Send {
                kind,
                to,
                to_app,
                content,
            } => self.send(reference, &kind, (to, to_app), content).await,
            ClientFrame::EnterRoom { room_id } => self.enter_room(reference, room_id),
            ClientFrame::LeaveRoom { room_id } => self.leave_room(reference, room_id),
        }
    }

    /// An `error` frame for a store failure (the code tells "refused" from "outcome unknown").
    fn store_failed(&self, reference: Option<&Value>, e: crate::store::StoreError) {
        let e = super::DispatchError::Store(e);
        let (_, code) = e.status_and_code();
        self.reply(frame::error(reference, code, &e.to_string()));
    }

    /// This device has everything up to `seq`. A seq past the inbox's newest is refused: it
    /// would make later messages count as read before they exist.
    async fn ack(&mut self, reference: Option<Value>, seq: u64) {
        metrics::counter!("imd_ws_acks_total").increment(1);
        let store = self.dispatcher.store().clone();
        // What this connection has seen needs no store read; only a higher seq does.
        if seq > self.hello_seq.max(self.outbox.live_seq()) {
            match store.latest_seq(self.info.user).await {
                Ok(newest) if seq > newest => {
                    let msg =
                        format!("`seq` {seq} is beyond the newest seq ({newest}) of your inbox");
                    return self.bad_frame(reference.as_ref(), "invalid_frame", &msg);
                }
                Ok(_) => {}
                Err(e) => return self.store_failed(reference.as_ref(), e),
            }
        }
        if let Err(e) = store.set_ack(self.info.user, &self.device, seq).await {
            self.store_failed(reference.as_ref(), e);
        }
    }

    /// Inbox messages after `after`, up to the `hello` seq (later ones arrive live), in pages.
    async fn sync(&mut self, reference: Option<Value>, after: u64, limit: Option<usize>) {
        metrics::counter!("imd_ws_sync_requests_total").increment(1);
        // A page never fills more than half the outbound queue.
        let limits = self.dispatcher.limits();
        let batch = limits.sync_batch.min(limits.outbound_queue / 2).max(1);
        if limit == Some(0) {
            let msg = "`limit` must be at least 1 (larger ones are cut to the page size)";
            return self.bad_frame(reference.as_ref(), "invalid_frame", msg);
        }
        let limit = limit.unwrap_or(batch).min(batch);
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
            Err(e) => self.store_failed(reference.as_ref(), e),
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
