//! The WebSocket side of a simulated user: get a token, upgrade, wait for `hello`, then read
//! frames until the run stops — answering pings and accounting every message delivered.
//!
//! Accounting is per receiver: a set of the sequence numbers it has seen (`Seen`) tells a first
//! delivery (recorded with its latency) from a duplicate. A connection the server closes before
//! the run ends counts as dropped.
//!
//! This runs once per receipt on the cores the server uses too, so a message frame of the
//! server's usual shape is read by a byte scan (`scan`), serde_json only for anything else.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Instant;

use awc::error::WsProtocolError;
use awc::ws::{Frame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;

use super::client::grant;
use super::payload::{Payload, unix_micros};
use super::pool::Worker;
use super::scan;
use super::seen::Seen;
use super::stats::Counters;

/// An open client WebSocket (awc's framed connection, named by what it does).
pub trait WsConn:
    Stream<Item = Result<Frame, WsProtocolError>> + Sink<Message, Error = WsProtocolError> + Unpin
{
}

impl<T> WsConn for T where
    T: Stream<Item = Result<Frame, WsProtocolError>>
        + Sink<Message, Error = WsProtocolError>
        + Unpin
{
}

/// One of the run's handshake permits (`--connect-concurrency`), held while it lives.
async fn handshake_slot(w: &Worker) -> Result<tokio::sync::SemaphorePermit<'_>, String> {
    w.shared
        .connect_gate
        .acquire()
        .await
        .map_err(|e| e.to_string())
}

/// A token for `uid`, fetched under the run's handshake gate.
pub async fn token(w: &Worker, uid: u64) -> Result<String, String> {
    let _permit = handshake_slot(w).await?;
    grant(w.clients.setup(uid), &w.shared, uid)
        .await
        .map_err(|f| f.text)
}

/// iOS: a connection that counts as online for push (SPEC §6).
pub const IOS: u8 = 1;

/// Upgrades to a WebSocket as `uid` from `platform` and waits for `hello` (under the handshake
/// gate); records the handshake time.
pub async fn open(
    w: &Worker,
    uid: u64,
    token: &str,
    platform: u8,
) -> Result<impl WsConn + use<>, String> {
    let shared = &w.shared;
    let _permit = handshake_slot(w).await?;
    let started = Instant::now();
    let url = format!(
        "{}/ws?token={token}&platform_id={platform}&device_id=lg{uid}",
        shared.ws_base(uid)
    );
    let connect = w.clients.ws(uid).ws(url).max_frame_size(1 << 20).connect();
    let (_, mut conn) = tokio::time::timeout(shared.timeout, connect)
        .await
        .map_err(|_| format!("ws upgrade: no answer within {:?}", shared.timeout))?
        .map_err(|e| format!("ws upgrade: {e}"))?;
    loop {
        let frame = tokio::time::timeout(shared.timeout, conn.next())
            .await
            .map_err(|_| format!("no hello within {:?}", shared.timeout))?;
        match frame {
            Some(Ok(Frame::Text(b))) if is_hello(&b) => break,
            Some(Ok(Frame::Ping(p))) => {
                let _ = conn.send(Message::Pong(p)).await;
            }
            Some(Ok(Frame::Text(b))) => {
                return Err(format!(
                    "expected hello, got {}",
                    String::from_utf8_lossy(&b)
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("before hello: {e}")),
            None => return Err("closed before hello".into()),
        }
    }
    let micros = started.elapsed().as_micros() as u64;
    w.stats.borrow_mut().connect.saturating_record(micros);
    Ok(conn)
}

fn is_hello(text: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type")]
        ty: &'a str,
    }
    serde_json::from_slice::<Typed<'_>>(text).is_ok_and(|t| t.ty == "hello")
}

/// Token + WebSocket + hello for `uid`; failures are counted and kept as error samples.
pub async fn connect(w: &Worker, uid: u64, platform: u8) -> Option<impl WsConn + use<>> {
    let result = match token(w, uid).await {
        Ok(t) => open(w, uid, &t, platform).await,
        Err(e) => Err(e),
    };
    counted(w, result)
}

/// A connection attempt's outcome, counted (and a failure kept as an error sample).
pub(super) fn counted<C>(w: &Worker, result: Result<C, String>) -> Option<C> {
    let c = &w.shared.counters;
    match result {
        Ok(conn) => {
            Counters::bump(&c.connected);
            Some(conn)
        }
        Err(e) => {
            Counters::bump(&c.connect_failed);
            w.shared.error(e);
            None
        }
    }
}

/// Reads frames until the run stops (then closes) or the server ends the connection.
pub async fn receive(w: &Worker, mut conn: impl WsConn) {
    let mut stop = w.shared.stop.clone();
    // Made once: a new one per frame would register with the stop signal and leave it again,
    // under a lock every receiver of the run shares.
    let stopped = stop.wait_for(|s| *s);
    tokio::pin!(stopped);
    let mut seen = Seen::default();
    loop {
        tokio::select! {
            biased;
            frame = conn.next() => match frame {
                Some(Ok(Frame::Text(b))) => on_text(w, &mut seen, &b),
                Some(Ok(Frame::Ping(p))) => {
                    w.stats.borrow_mut().pings += 1;
                    let _ = conn.send(Message::Pong(p)).await;
                }
                Some(Ok(Frame::Close(reason))) => return dropped(w, format!("closed by the server: {reason:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return dropped(w, format!("connection error: {e}")),
                None => return dropped(w, "connection ended".into()),
            },
            _ = &mut stopped => {
                let _ = conn.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

pub(super) fn dropped(w: &Worker, why: String) {
    if !w.shared.stopping() {
        Counters::bump(&w.shared.counters.dropped);
        w.shared.error(why);
    }
}

/// The fields of a server frame the accounting needs.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
}

/// What a text frame is to the accounting.
#[derive(Debug, PartialEq)]
enum Text {
    /// A `message`, with its payload if the content is one (unparsable frames count here too).
    Message(Option<Payload>),
    /// `pong`, `sync_end`, …
    Other,
}

fn read_text(text: &[u8]) -> Text {
    if let Some(p) = scan::message_payload(text) {
        return Text::Message(Some(p));
    }
    match serde_json::from_slice::<Incoming<'_>>(text) {
        Ok(m) if m.ty != "message" => Text::Other,
        Ok(m) => Text::Message(m.content.as_deref().and_then(Payload::decode)),
        Err(_) => Text::Message(None),
    }
}

fn on_text(w: &Worker, seen: &mut Seen, text: &[u8]) {
    if let Text::Message(payload) = read_text(text) {
        delivered(w, seen, payload);
    }
}

/// Accounts one delivered message (its payload, if it is one of this run's).
pub(super) fn delivered(w: &Worker, seen: &mut Seen, payload: Option<Payload>) {
    let now = unix_micros();
    let shared = &w.shared;
    let mut stats = w.stats.borrow_mut();
    let Some(p) = payload.filter(|p| p.r == shared.run_id) else {
        stats.foreign += 1;
        return;
    };
    if !seen.insert(p.n) {
        stats.duplicates += 1;
        return;
    }
    stats.delivered(p.n, now.saturating_sub(p.t));
    let c = &shared.counters;
    Counters::bump(&c.delivered);
    // A read first: most receipts are not the latest, and a read leaves the line shared.
    if now > c.last_delivery_us.load(Ordering::Relaxed) {
        c.last_delivery_us.fetch_max(now, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::scan::fixtures::{OTHER_FRAMES, OURS, message, quoted};
    use super::*;

    #[test]
    fn a_message_frame_gives_its_payload() {
        assert_eq!(
            read_text(message(&OURS.encode()).as_bytes()),
            Text::Message(Some(OURS))
        );
    }

    #[test]
    fn a_foreign_message_counts_without_a_payload() {
        let f = message(r#"{"create":{"group_id":5}}"#);
        assert_eq!(read_text(f.as_bytes()), Text::Message(None));
        assert_eq!(read_text(b"not json"), Text::Message(None));
    }

    #[test]
    fn frames_other_than_messages_are_not_deliveries() {
        for f in OTHER_FRAMES {
            assert_eq!(read_text(f.as_bytes()), Text::Other, "{f}");
        }
    }

    #[test]
    fn an_escaped_or_reordered_frame_is_read_by_serde_alike() {
        let plain = message(&OURS.encode());
        let escaped = plain.replace(r#"\"n\":42"#, r#"\"n\":4\u0032"#);
        let spaced = plain.replace(r#"{"type":"message","#, r#"{ "type" : "message" , "#);
        let reordered = format!(
            r#"{{"content":{},"type":"message"}}"#,
            quoted(&OURS.encode())
        );
        for f in [escaped, spaced, reordered] {
            assert_eq!(scan::message_payload(f.as_bytes()), None, "{f}");
            assert_eq!(read_text(f.as_bytes()), Text::Message(Some(OURS)), "{f}");
        }
    }
}
