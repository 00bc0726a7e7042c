//! The WebSocket side of a simulated user: get a token, upgrade, wait for `hello`, then read
//! frames until the run stops — answering pings and accounting every message delivered.
//!
//! Accounting is per receiver: a set of the sequence numbers it has seen tells a first delivery
//! (recorded with its latency) from a duplicate. A connection the server closes before the run
//! ends counts as dropped.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use awc::error::WsProtocolError;
use awc::ws::{Frame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;

use super::client::grant;
use super::payload::{Payload, unix_micros};
use super::pool::Worker;
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
    let mut seen = HashSet::new();
    loop {
        tokio::select! {
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
            _ = stop.wait_for(|s| *s) => {
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

fn on_text(w: &Worker, seen: &mut HashSet<u64>, text: &[u8]) {
    let payload = match serde_json::from_slice::<Incoming<'_>>(text) {
        Ok(m) if m.ty != "message" => return, // pong, sync_end, …
        Ok(m) => m.content.as_deref().and_then(Payload::decode),
        Err(_) => None,
    };
    delivered(w, seen, payload);
}

/// Accounts one delivered message (its payload, if it is one of this run's).
pub(super) fn delivered(w: &Worker, seen: &mut HashSet<u64>, payload: Option<Payload>) {
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
    Counters::bump(&shared.counters.delivered);
    shared
        .counters
        .last_delivery_us
        .fetch_max(now, Ordering::Relaxed);
}
