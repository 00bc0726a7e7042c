//! WebSocket inputs for the fuzz properties: the protocol's frames with wrong types and values,
//! other JSON, text that is not JSON, binary frames, pings, oversized frames, and hand-built
//! wire frames the client codec would refuse to produce.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::FRAME_LIMIT;
use super::values::Hint::*;
use super::values::*;

/// One thing a client can send on a WebSocket.
#[derive(Debug, Clone)]
pub enum WsInput {
    Text(String),
    Binary(Vec<u8>),
    /// A WebSocket ping (answered with a pong control frame, not JSON).
    Ping(Vec<u8>),
    /// An unsolicited WebSocket pong.
    Pong(Vec<u8>),
    /// A text frame of this many bytes, over the frame limit.
    Oversize(usize),
    /// Hand-built frame bytes the client codec would refuse to produce: text that is not UTF-8,
    /// reserved opcodes, unmasked frames, overlong control frames, stray fragments.
    Wire(Vec<u8>),
    /// A `ping` message sent in two fragments (valid: reassembled and answered).
    Fragmented(Vec<u8>),
}

const SYNC: Fields = &[("after", Seq), ("limit", Seq)];
const SYNC_GROUP: Fields = &[("group_id", Id), ("after", Seq)];
const ACK: Fields = &[("seq", Seq)];
const ROOM: Fields = &[("room_id", Id), ("ref", Ref)];
const SEND: Fields = &[
    ("kind", Kind),
    ("to", Id),
    ("content", Content),
    ("ref", Ref),
];

/// A frame object of type `ty` (usually; sometimes another type or a wrong `type` value) with
/// that type's fields.
fn typed(ty: &'static str, fields: Fields) -> BoxedStrategy<String> {
    let ty_value = prop_oneof![
        8 => Just(quote(ty)),
        1 => strs(&["\"sync\"", "\"send\"", "\"PING\"", "\"dance\"", "\"\""]),
        1 => wrong(),
    ];
    (ty_value, some_pairs(fields))
        .prop_map(|(t, mut p)| {
            p.push(("type".to_string(), t));
            p
        })
        .prop_shuffle()
        .prop_map(|p| object_text(&p))
        .boxed()
}

/// A text frame: the protocol's frames with wrong types and values, other JSON, not JSON.
pub fn text_frame() -> BoxedStrategy<String> {
    prop_oneof![
        3 => typed("sync", SYNC),
        2 => typed("sync_group", SYNC_GROUP),
        2 => typed("ack", ACK),
        2 => typed("ping", &[]),
        5 => typed("send", SEND),
        1 => typed("enter_room", ROOM),
        1 => typed("leave_room", ROOM),
        1 => any_json(),
        1 => edge_string(),
        1 => "\\PC{0,40}",
        1 => deep(),
        1 => (typed("send", SEND), any::<Index>()).prop_map(|(t, i)| {
            let cut = i.index(t.len());
            t.char_indices().map(|(at, _)| at).take_while(|at| *at <= cut).last()
                .map_or(String::new(), |at| t[..at].to_string())
        }),
    ]
    .boxed()
}

/// One client frame on the wire, masked unless `masked` is false (RFC 6455 §5.2).
pub fn wire(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xFA, 0x21, 0x3D];
        out.extend(key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend(payload);
    }
    out
}

fn wire_frame() -> BoxedStrategy<Vec<u8>> {
    let ping = br#"{"type":"ping"}"#;
    prop_oneof![
        // Text that is not UTF-8.
        3 => (text_frame(), any::<Index>(), select(BAD_UTF8.to_vec())).prop_map(|(t, i, bad)| {
            let mut b = t.into_bytes();
            let at = i.index(b.len() + 1);
            b.splice(at..at, bad.iter().copied());
            wire(0x81, &b, true)
        }),
        // Reserved opcodes.
        1 => (select(vec![3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15]), vec(any::<u8>(), 0..16))
            .prop_map(|(op, p)| wire(0x80 | op, &p, true)),
        // Unmasked.
        1 => Just(wire(0x81, ping, false)),
        // Reserved bits.
        1 => select(vec![0x40u8, 0x20, 0x10]).prop_map(move |rsv| wire(0x81 | rsv, ping, true)),
        // A control frame over 125 bytes, a fragmented control frame.
        1 => (126usize..300).prop_map(|n| wire(0x89, &vec![b'p'; n], true)),
        1 => Just(wire(0x09, b"p", true)),
        // A continuation that continues nothing.
        1 => Just(wire(0x80, ping, true)),
        // A 64-bit length with the top bit set.
        1 => Just(vec![0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]),
    ]
    .boxed()
}

pub fn ws_input() -> BoxedStrategy<WsInput> {
    prop_oneof![
        24 => text_frame().prop_map(WsInput::Text),
        2 => vec(any::<u8>(), 0..64).prop_map(WsInput::Binary),
        1 => vec(any::<u8>(), 0..125).prop_map(WsInput::Ping),
        1 => vec(any::<u8>(), 0..125).prop_map(WsInput::Pong),
        2 => wire_frame().prop_map(WsInput::Wire),
        1 => Just(WsInput::Fragmented(
            [wire(0x01, b"{\"type\":", true), wire(0x80, b"\"ping\"}", true)].concat()
        )),
        1 => (1usize..1_024).prop_map(|n| WsInput::Oversize(FRAME_LIMIT + n)),
    ]
    .boxed()
}
