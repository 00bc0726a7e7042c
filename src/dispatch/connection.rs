//! One WebSocket connection (SPEC §5): reads client frames, answers them, keeps the connection
//! alive, and ends it. Outbound frames go through the connection's `Outbox`, which the HTTP
//! worker drains as the response body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::ws::{Codec, Frame as WsFrame, ProtocolError};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::codec::Decoder;

use super::outbox::{CloseReason, Frame, Outbox, OutboxStream};
use super::{DispatchError, Dispatcher, PeerSend, frame};
use crate::domain::{GroupId, Platform, Uid, UserKey};
use crate::store::{device_key, stored_seq};

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub user: UserKey,
    /// The user's app: its send budget applies to WebSocket sends too.
    pub app: Arc<crate::apps::App>,
    pub platform: Platform,
    pub device_id: String,
}

/// How long a stored frame waits for an earlier seq before the gap is given up on.
const MAX_HOLD: Duration = Duration::from_secs(2);

impl Dispatcher {
    /// Opens the dispatcher side of an upgraded WebSocket: registers the connection, queues
    /// `hello`, and spawns the reader on the current worker. Returns the response body.
    pub async fn open_connection(
        &self,
        info: ConnectionInfo,
        payload: actix_web::dev::Payload,
    ) -> Result<OutboxStream, DispatchError> {
        let limits = self.limits();
        let slot = self.connection_slot()?;
        let outbox = Outbox::new(limits.outbound_queue);
        let (conn_id, hello_seq) = self
            .connect(info.user, info.platform, outbox.clone())
            .await?;
        outbox.push(Frame::Text(frame::hello(
            info.user.app,
            info.user.uid,
            hello_seq,
        )));
        let stream = FrameReader::new(payload, limits.ws_max_frame);
        let conn = Connection {
            _slot: slot,
            dispatcher: self.clone(),
            device: device_key(info.platform.0, &info.device_id),
            info,
            conn_id,
            hello_seq,
            outbox: outbox.clone(),
            bad_frames: 0,
            bad_window: Instant::now(),
        };
        actix_web::rt::spawn(conn.run(stream));
        Ok(OutboxStream::new(outbox))
    }
}

struct Connection {
    /// Counts this connection against `limits.ws_max_connections` until dropped.
    _slot: super::ConnectionSlot,
    dispatcher: Dispatcher,
    info: ConnectionInfo,
    /// `<platform>:<device_id>`: whose acknowledged position `ack` moves.
    device: String,
    conn_id: u64,
    /// Live frames start after this seq; `sync` covers up to it.
    hello_seq: u64,
    outbox: Arc<Outbox>,
    /// Bad frames in the current one-minute window.
    bad_frames: u32,
    bad_window: Instant,
}

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
    async fn run(mut self, mut stream: FrameReader) {
        metrics::gauge!("imd_ws_connections").increment(1.0);
        let limits = self.dispatcher.limits().clone();
        let idle_timeout = Duration::from_secs(limits.ws_idle_timeout_secs);
        let ping_every = Duration::from_secs(limits.ws_ping_interval_secs);
        let mut tick = tokio::time::interval(ping_every.min(Duration::from_secs(5)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_seen = Instant::now();
        let mut last_ping = Instant::now();
        loop {
            tokio::select! {
                msg = stream.next_frame() => {
                    last_seen = Instant::now();
                    match msg {
                        Some(Ok(WsFrame::Text(text))) => {
                            // Boxed: an idle connection does not carry the handler's state.
                            Box::pin(self.on_text(&text)).await;
                        }
                        Some(Ok(WsFrame::Ping(data))) => {
                            self.outbox.push(Frame::Pong(data));
                        }
                        Some(Ok(WsFrame::Pong(_))) => {}
                        Some(Ok(WsFrame::Binary(_))) | Some(Ok(WsFrame::Continuation(_))) => {
                            self.bad_frame(None, "unsupported_frame", "send JSON in text frames");
                        }
                        Some(Ok(WsFrame::Close(_))) | None => {
                            self.outbox.close(CloseReason::Normal, "");
                            break;
                        }
                        Some(Err(ProtocolError::Overflow)) => {
                            self.outbox.close(CloseReason::TooBig, "frame too large");
                            break;
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "ws protocol error");
                            self.outbox.close(CloseReason::Policy, "protocol error");
                            break;
                        }
                    }
                    if self.outbox.is_closing() {
                        break;
                    }
                }
                _ = tick.tick() => {
                    if last_seen.elapsed() >= idle_timeout {
                        self.outbox.close(CloseReason::Normal, "idle timeout");
                        break;
                    }
                    if last_ping.elapsed() >= ping_every {
                        self.outbox.push(Frame::Ping);
                        last_ping = Instant::now();
                    }
                    self.outbox.release_stale(MAX_HOLD);
                }
                _ = self.outbox.closed() => break,
            }
        }
        self.dispatcher
            .disconnect(self.info.user, self.conn_id)
            .await;
        metrics::gauge!("imd_ws_connections").decrement(1.0);
    }

    fn reply(&self, bytes: bytes::Bytes) {
        self.outbox.push(Frame::Text(bytes));
    }

    /// An `error` frame; too many bad frames in a minute close the connection.
    fn bad_frame(&mut self, reference: Option<&Value>, code: &str, message: &str) {
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

    async fn on_text(&mut self, text: &[u8]) {
        let value: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                return self.bad_frame(None, "invalid_json", &format!("frame is not JSON: {e}"));
            }
        };
        let reference = value.get("ref").cloned();
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
                        origin: Some(self.conn_id),
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
                        Some(self.conn_id),
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

/// Decodes client frames from the upgraded request's byte stream (RFC 6455, masked).
struct FrameReader {
    payload: actix_web::dev::Payload,
    codec: Codec,
    buf: BytesMut,
    eof: bool,
}

impl FrameReader {
    fn new(payload: actix_web::dev::Payload, max_frame: usize) -> Self {
        FrameReader {
            payload,
            codec: Codec::new().max_size(max_frame),
            buf: BytesMut::new(),
            eof: false,
        }
    }

    /// The next complete frame; `None` when the peer is gone.
    async fn next_frame(&mut self) -> Option<Result<WsFrame, ProtocolError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) if self.eof => return None,
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if self.buf.is_empty() && self.buf.capacity() > 4096 {
                self.buf = BytesMut::new(); // idle connections keep no read buffer
            }
            match self.payload.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(_)) | None => self.eof = true,
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
