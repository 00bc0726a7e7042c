//! The WebSocket side of the fuzz properties: what each generated input deserves (README
//! "WebSocket protocol"), and reading the server's answer to it.
//!
//! After every input the client sends a `ping` frame: the server handles a connection's frames
//! in order, so everything it answers to the input comes before that `pong` (a send's `ack` may
//! follow it: it takes the message's place in the seq order).

use std::time::Duration;

use im_dispatcher::domain::{GroupId, MAX_ID};
use serde::Deserialize;
use serde_json::Value;

use super::frames::WsInput;
use super::{CONTENT_LIMIT, FRAME_LIMIT};
use crate::helpers::Ws;

/// The client frames as the server parses them (SPEC §5.3/§5.4).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)] // only whether it parses matters
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
    EnterRoom {
        room_id: u64,
    },
    LeaveRoom {
        room_id: Option<u64>,
    },
}

/// What an input deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A bad frame: an `error` frame (and, past the limit, close 1008).
    Error,
    /// A valid `ping`: a `pong`.
    Pong,
    /// A valid `ack` of seq 0, a WebSocket ping or pong: no JSON answer.
    Silent,
    /// Another valid `ack`: nothing, or an `error` if it is beyond the inbox's newest seq.
    SilentOrError,
    /// A valid `sync`: messages, then `sync_end`.
    SyncEnd,
    /// A valid `sync_group`: `sync_end`, or `error` for a group the user is not in.
    SyncEndOrError,
    /// A valid `send`: `ack`, or `error` (not a member, not assigned, …).
    AckOrError,
    /// A valid `enter_room` / `leave_room`: a `room` frame, or `error` (leaving a room the
    /// connection is not in).
    RoomOrError,
    /// Over the frame limit: close 1009.
    TooBig,
    /// A protocol violation below JSON: an `error` frame, or close 1002 / 1008 / 1009.
    ErrorOrClose,
}

pub fn expect(input: &WsInput) -> Expect {
    match input {
        WsInput::Text(text) if text.len() > FRAME_LIMIT => Expect::TooBig,
        WsInput::Text(text) => expect_text(text),
        WsInput::Binary(_) => Expect::Error,
        WsInput::Ping(_) | WsInput::Pong(_) => Expect::Silent,
        WsInput::Oversize(_) => Expect::TooBig,
        WsInput::Wire(_) => Expect::ErrorOrClose,
        WsInput::Fragmented(_) => Expect::Pong,
    }
}

fn expect_text(text: &str) -> Expect {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Expect::Error;
    };
    let known = v.get("type").and_then(Value::as_str).is_some_and(|t| {
        matches!(
            t,
            "sync" | "sync_group" | "ack" | "ping" | "send" | "enter_room" | "leave_room"
        )
    });
    if !known {
        return Expect::Error;
    }
    // One rule for `ref` on every frame: a string of 1-128 bytes or a number.
    let ref_ok = match v.get("ref") {
        None | Some(Value::Null) | Some(Value::Number(_)) => true,
        Some(Value::String(s)) => !s.is_empty() && s.len() <= 128,
        Some(_) => false,
    };
    if !ref_ok {
        return Expect::Error;
    }
    match serde_json::from_value::<ClientFrame>(v) {
        Err(_) => Expect::Error,
        Ok(ClientFrame::Ping) => Expect::Pong,
        Ok(ClientFrame::Ack { seq: 0 }) => Expect::Silent,
        Ok(ClientFrame::Ack { .. }) => Expect::SilentOrError,
        Ok(ClientFrame::Sync { limit: Some(0), .. }) => Expect::Error,
        Ok(ClientFrame::Sync { .. }) => Expect::SyncEnd,
        Ok(ClientFrame::SyncGroup { .. }) => Expect::SyncEndOrError,
        Ok(ClientFrame::Send { kind, to, content }) => {
            let content_ok = match &content {
                Value::String(s) => s.len() <= CONTENT_LIMIT,
                Value::Object(_) => content.to_string().len() <= CONTENT_LIMIT,
                _ => false,
            };
            let kind_ok = matches!(kind.as_str(), "peer" | "group" | "customer" | "room" | "rt");
            if content_ok && kind_ok && (1..=MAX_ID).contains(&to) {
                Expect::AckOrError
            } else {
                Expect::Error
            }
        }
        Ok(ClientFrame::EnterRoom { room_id }) if (1..=MAX_ID).contains(&room_id) => {
            Expect::RoomOrError
        }
        Ok(ClientFrame::LeaveRoom { room_id })
            if room_id.is_none_or(|r| (1..=MAX_ID).contains(&r)) =>
        {
            Expect::RoomOrError
        }
        Ok(ClientFrame::EnterRoom { .. } | ClientFrame::LeaveRoom { .. }) => Expect::Error,
    }
}

/// What the server answered to one input.
#[derive(Debug, Default)]
pub struct Answer {
    pub errors: Vec<Value>,
    pub pongs: usize,
    pub acks: usize,
    pub sync_ends: usize,
    /// `room` frames (answers to enter_room / leave_room).
    pub rooms: usize,
    /// The connection was closed with this code.
    pub closed: Option<u16>,
}

/// Reads until the sentinel `pong` (two for a valid `ping`) and, for a send, its `ack` or
/// `error`; `message` frames are skipped. A close ends it early.
pub async fn answer(ws: &mut Ws, expect: Expect) -> Result<Answer, String> {
    let pongs = if expect == Expect::Pong { 2 } else { 1 };
    let mut a = Answer::default();
    loop {
        let done =
            a.pongs >= pongs && (expect != Expect::AckOrError || a.acks + a.errors.len() > 0);
        if done {
            return Ok(a);
        }
        match ws.next(Duration::from_secs(10)).await {
            None => return Err(format!("no answer within 10 s (so far {a:?})")),
            Some(Err(code)) => {
                a.closed = Some(code);
                return Ok(a);
            }
            Some(Ok(v)) => match v["type"].as_str() {
                Some("pong") => a.pongs += 1,
                Some("ack") => a.acks += 1,
                Some("sync_end") => a.sync_ends += 1,
                Some("room") => a.rooms += 1,
                Some("error") => a.errors.push(v),
                Some("message") => {}
                _ => return Err(format!("unexpected frame {v}")),
            },
        }
    }
}

/// Whether `a` is what `expect` deserves; `bad` counts the bad frames this connection has sent
/// (the server closes with 1008 once it is past `max_bad`).
pub fn judge(expect: Expect, a: &Answer, bad: u32, max_bad: u32) -> Result<(), String> {
    for e in &a.errors {
        let ok = e["error"].as_str().is_some_and(|c| !c.is_empty())
            && e["message"].as_str().is_some_and(|m| !m.is_empty());
        if !ok {
            return Err(format!("malformed error frame {e}"));
        }
    }
    let errors = a.errors.len();
    match a.closed {
        Some(1009) if matches!(expect, Expect::TooBig | Expect::ErrorOrClose) => return Ok(()),
        Some(1002 | 1008) if expect == Expect::ErrorOrClose => return Ok(()),
        Some(1008) if bad > max_bad => return Ok(()),
        Some(code) => return Err(format!("closed with {code} ({bad} bad frames so far)")),
        None => {}
    }
    let ok = match expect {
        Expect::Error => errors >= 1 && a.acks + a.sync_ends + a.rooms == 0,
        Expect::Pong => errors == 0 && a.pongs == 2,
        Expect::Silent => errors + a.acks + a.sync_ends == 0,
        Expect::SilentOrError => errors <= 1 && a.acks + a.sync_ends == 0,
        Expect::SyncEnd => errors == 0 && a.sync_ends == 1,
        Expect::SyncEndOrError => a.sync_ends + errors == 1,
        Expect::AckOrError => a.acks + errors == 1,
        Expect::RoomOrError => a.rooms + errors == 1 && a.acks + a.sync_ends == 0,
        Expect::TooBig => false,
        Expect::ErrorOrClose => errors >= 1,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {expect:?}, got {a:?}"))
    }
}
