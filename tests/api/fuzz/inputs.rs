//! Generators for the fuzz properties: values of every shape for each kind of field, whole
//! request bodies (objects with the right field names and wrong values, other JSON, raw bytes),
//! path segments, query strings and WebSocket frames.
//!
//! Values are generated as JSON *text*, not `serde_json::Value`, so that bodies can hold what a
//! `Value` cannot: duplicate keys, nesting deeper than the parser's limit, lone surrogates.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::Union;

/// Limits of the fuzzed servers: small, so that oversized inputs are cheap to send.
pub const BODY_LIMIT: usize = 64 * 1024;
pub const CONTENT_LIMIT: usize = 4 * 1024;
pub const FRAME_LIMIT: usize = 16 * 1024;

/// What a field is meant to hold. Its generator mixes valid values (so that requests get past
/// parsing into the handlers and the store) with every kind of wrong one.
#[derive(Debug, Clone, Copy)]
pub enum Hint {
    /// A uid or group id: 1..=12 exist in the fixtures.
    Id,
    /// An app id: 7 and 8 exist.
    App,
    /// A seq or `after` position.
    Seq,
    Text,
    /// A boolean that also accepts 0/1.
    Flag,
    /// Message content: a string, or an object sent as its JSON text.
    Content,
    /// An array of uids or `{uid, name?, avatar?}`.
    Members,
    /// `{peer_uid, on}`.
    Dnd,
    /// `{uid, name?}`.
    Inviter,
    /// A push device token.
    Token,
    /// A client reference (`client_msg_id`, ws `ref`).
    Ref,
    /// A ws `send` kind.
    Kind,
    Any,
}

use Hint::*;

pub type Fields = &'static [(&'static str, Hint)];

pub const MEMBER: Fields = &[("uid", Id), ("name", Text), ("avatar", Text)];

pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn strs(list: &[&'static str]) -> BoxedStrategy<String> {
    select(list.to_vec()).prop_map(str::to_string).boxed()
}

fn edge_number() -> BoxedStrategy<String> {
    prop_oneof![
        strs(&[
            "0",
            "-0",
            "-1",
            "1.0",
            "1.5",
            "-2.5",
            "1e3",
            "1E400",
            "-1e400",
            "0.1e1",
            "9223372036854775807",
            "9223372036854775806",
            "9223372036854775808",
            "-9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "9007199254740993",
            "4503599627370497",
            "123456789012345678901234567890",
        ]),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        prop::num::f64::NORMAL.prop_map(|f| serde_json::Value::from(f).to_string()),
    ]
    .boxed()
}

fn edge_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => strs(&[
            "", " ", "0", "-1", " 7 ", "+7", "007", "1.0", "1e3", "0x1f", "١٢٣", "７",
            "9223372036854775807", "9223372036854775808", "99999999999999999999", "abc",
            "null", "true", "peer", "group", "ping", "ack",
        ])
        .prop_map(|s| quote(&s)),
        1 => strs(&[
            r#""\u0000""#,
            r#""\ud800""#,
            r#""\udfff\ud800""#,
            r#""\uD83D\uDE00""#,
            r#""a\"b\\c""#,
            r#""\n\t\r""#,
        ]),
        2 => "\\PC{0,24}".prop_map(|s| quote(&s)),
        2 => any::<String>().prop_map(|s| quote(&s)),
        1 => select(vec![19usize, 20, 64, 400]).prop_map(|n| quote(&"9".repeat(n))),
        1 => select(vec![129usize, 1_025, 4_097, CONTENT_LIMIT + 1])
            .prop_map(|n| quote(&"x".repeat(n))),
    ]
    .boxed()
}

fn junk() -> BoxedStrategy<String> {
    strs(&[
        "null",
        "true",
        "false",
        "[]",
        "{}",
        "[1]",
        "[[]]",
        r#"{"uid":1}"#,
        "[null]",
        r#"{"":null}"#,
    ])
}

/// Any JSON value, up to a few levels deep.
pub fn any_json() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        edge_number(),
        edge_string(),
        junk(),
        (1u64..=12).prop_map(|n| n.to_string())
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
            vec(("\\PC{0,8}", inner), 0..6).prop_map(|pairs| object_text(&pairs)),
        ]
    })
    .boxed()
}

/// Nesting up to 2,000 levels (the parser stops at 128).
pub fn deep() -> BoxedStrategy<String> {
    (1usize..2_000, 0..3u8)
        .prop_map(|(n, k)| match k {
            0 => format!("{}{}", "[".repeat(n), "]".repeat(n)),
            1 => format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n)),
            _ => format!("{}1{}", r#"[{"uid":"#.repeat(n), "}]".repeat(n)),
        })
        .boxed()
}

fn wrong() -> BoxedStrategy<String> {
    prop_oneof![
        3 => edge_number(),
        3 => edge_string(),
        2 => junk(),
        2 => any_json(),
        1 => deep(),
    ]
    .boxed()
}

/// A value a field meant to hold `hint` accepts.
pub fn valid(hint: Hint) -> BoxedStrategy<String> {
    match hint {
        Id => prop_oneof![
            6 => (1u64..=12).prop_map(|n| n.to_string()),
            2 => (1u64..=12).prop_map(|n| quote(&n.to_string())),
            2 => strs(&[
                "9223372036854775807",
                "9223372036854775806",
                "\"9223372036854775807\"",
                "9007199254740993",
                "4503599627370497",
                "\" 12\"",
            ]),
        ]
        .boxed(),
        App => strs(&["7", "8", "\"7\""]),
        Seq => (0u64..=40).prop_map(|n| n.to_string()).boxed(),
        Text => prop_oneof![
            3 => "[a-zA-Z0-9 ]{0,12}".prop_map(|s| quote(&s)),
            1 => "\\PC{0,24}".prop_map(|s| quote(&s)),
        ]
        .boxed(),
        Flag => strs(&["true", "false", "0", "1"]),
        Content => prop_oneof![
            3 => "\\PC{0,40}".prop_map(|s| quote(&s)),
            1 => vec(("[a-z]{1,6}", any_json()), 0..4).prop_map(|p| object_text(&p)),
        ]
        .boxed(),
        Members => vec(prop_oneof![3 => valid(Id), 2 => valid_object(MEMBER)], 0..6)
            .prop_map(|items| format!("[{}]", items.join(",")))
            .boxed(),
        Dnd => valid_object(&[("peer_uid", Id), ("on", Flag)]),
        Inviter => valid_object(&[("uid", Id), ("name", Text)]),
        Token => "[A-Za-z0-9_-]{1,40}".prop_map(|s| quote(&s)).boxed(),
        Ref => prop_oneof![
            3 => "[a-z0-9-]{1,12}".prop_map(|s| quote(&s)),
            1 => (0u64..100).prop_map(|n| n.to_string()),
        ]
        .boxed(),
        Kind => strs(&["\"peer\"", "\"peer\"", "\"group\"", "\"customer\""]),
        Any => any_json(),
    }
}

/// Values a field meant to hold `hint` must refuse, or nearly: its edge cases.
fn edges(hint: Hint) -> BoxedStrategy<String> {
    match hint {
        Flag => strs(&["2", "-1", "1.0", "\"true\"", "\"1\"", "null", "[]", "{}"]),
        Content => prop_oneof![
            (CONTENT_LIMIT - 3..CONTENT_LIMIT + 3).prop_map(|n| quote(&"c".repeat(n))),
            (CONTENT_LIMIT - 12..CONTENT_LIMIT + 3)
                .prop_map(|n| format!(r#"{{"t":{}}}"#, quote(&"c".repeat(n)))),
        ]
        .boxed(),
        Token => prop_oneof![
            strs(&["\"\"", "\"   \"", "\" t \""]),
            (4_090usize..4_100).prop_map(|n| quote(&"t".repeat(n))),
        ]
        .boxed(),
        Ref => (127usize..131).prop_map(|n| quote(&"r".repeat(n))).boxed(),
        Kind => strs(&["\"Peer\"", "\"system\"", "\"\"", "\"room\""]),
        Members => vec(value(Id), 0..6)
            .prop_map(|items| format!("[{}]", items.join(",")))
            .boxed(),
        Dnd => object(&[("peer_uid", Id), ("on", Flag)]),
        Inviter => object(&[("uid", Id), ("name", Text)]),
        Id | Seq | Text | App => edge_string(),
        Any => any_json(),
    }
}

/// A value for a field meant to hold `hint`: valid, an edge case, or of any other kind.
pub fn value(hint: Hint) -> BoxedStrategy<String> {
    prop_oneof![5 => valid(hint), 2 => edges(hint), 3 => wrong()].boxed()
}

/// `{"k":v,…}` from JSON-text values, keeping duplicate keys.
pub fn object_text(pairs: &[(String, String)]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{v}", quote(k)))
        .collect();
    format!("{{{}}}", items.join(","))
}

/// The key/value pairs of an object with these fields: each field present or not, with a value
/// for its kind; sometimes unknown keys, sometimes a known key twice; in any order.
pub fn pairs(fields: Fields) -> BoxedStrategy<Vec<(String, String)>> {
    let present: Vec<BoxedStrategy<Option<(String, String)>>> = fields
        .iter()
        .map(|&(k, h)| {
            proptest::option::weighted(0.8, value(h))
                .prop_map(move |v| v.map(|v| (k.to_string(), v)))
                .boxed()
        })
        .collect();
    let names: Vec<String> = fields.iter().map(|f| f.0.to_string()).collect();
    let twice = if names.is_empty() {
        Just(None).boxed()
    } else {
        proptest::option::weighted(0.1, (select(names), value(Any))).boxed()
    };
    let unknown = vec(("\\PC{0,10}", any_json()), 0..2);
    (present, unknown, twice)
        .prop_map(|(present, unknown, twice)| {
            let mut pairs: Vec<(String, String)> = present.into_iter().flatten().collect();
            pairs.extend(unknown);
            pairs.extend(twice);
            pairs
        })
        .prop_shuffle()
        .boxed()
}

/// The pairs of an object with every field valid.
fn valid_pairs(fields: Fields) -> BoxedStrategy<Vec<(String, String)>> {
    let all: Vec<BoxedStrategy<(String, String)>> = fields
        .iter()
        .map(|&(k, h)| valid(h).prop_map(move |v| (k.to_string(), v)).boxed())
        .collect();
    all.boxed()
}

fn valid_object(fields: Fields) -> BoxedStrategy<String> {
    valid_pairs(fields).prop_map(|p| object_text(&p)).boxed()
}

/// The pairs of an object: all valid, all but one valid, or anything (`pairs`).
fn some_pairs(fields: Fields) -> BoxedStrategy<Vec<(String, String)>> {
    prop_oneof![1 => valid_pairs(fields), 2 => nearly_valid(fields), 3 => pairs(fields)].boxed()
}

/// The pairs of an object with every field valid but one, which is wrong or missing: such a
/// body gets past everything but the one check.
fn nearly_valid(fields: Fields) -> BoxedStrategy<Vec<(String, String)>> {
    type Field = ((String, String), Option<String>);
    let all: Vec<BoxedStrategy<Field>> = fields
        .iter()
        .map(|&(k, h)| {
            (valid(h), proptest::option::weighted(0.8, value(h)))
                .prop_map(move |(v, other)| ((k.to_string(), v), other))
                .boxed()
        })
        .collect();
    (all, any::<Index>())
        .prop_map(|(all, i)| {
            let spoil = if all.is_empty() {
                0
            } else {
                i.index(all.len())
            };
            let mut pairs = Vec::new();
            for (j, ((k, v), other)) in all.into_iter().enumerate() {
                match (j == spoil, other) {
                    (false, _) => pairs.push((k, v)),
                    (true, Some(other)) => pairs.push((k, other)),
                    (true, None) => {}
                }
            }
            pairs
        })
        .boxed()
}

/// An object with these fields: all valid, all but one valid, or anything.
pub fn object(fields: Fields) -> BoxedStrategy<String> {
    some_pairs(fields).prop_map(|p| object_text(&p)).boxed()
}

/// A JSON body for an endpoint with these fields; `members`: it also takes a bare array of
/// members or one member object.
pub fn json_body(fields: Fields, members: bool) -> BoxedStrategy<Vec<u8>> {
    let mut shapes = vec![
        (12, object(fields)),
        (
            1,
            vec(object(fields), 0..3)
                .prop_map(|items| format!("[{}]", items.join(",")))
                .boxed(),
        ),
        (1, any_json()),
        (1, wrong()),
        (1, deep()),
    ];
    if members {
        shapes.push((4, value(Members)));
        shapes.push((3, object(MEMBER)));
    }
    Union::new_weighted(shapes)
        .prop_map(String::into_bytes)
        .boxed()
}

/// Byte sequences that are not UTF-8 (or are, but should not be in JSON text).
const BAD_UTF8: &[&[u8]] = &[
    &[0xFF],
    &[0xC0, 0x80],
    &[0xED, 0xA0, 0x80],
    &[0xF8, 0x88, 0x80, 0x80, 0x80],
    &[0xE2, 0x82],
    &[0x80],
    &[0xF4, 0x90, 0x80, 0x80],
    &[0x00],
];

const ODD_BODIES: &[&[u8]] = &[
    b"",
    b"   ",
    b"\0",
    b"null",
    b"{",
    b"}",
    b"{\"",
    b"[",
    b"\"",
    b"nul",
    b"tru",
    b"1e99999",
    b"-",
    b"{\"uid\":1,}",
    b"{'uid':1}",
    b"{uid:1}",
    b"\xEF\xBB\xBF{}",
    b"{\"\\ud800\":1}",
    b"{\"uid\":1}{\"uid\":2}",
    b"{\"uid\":01}",
    b"{\"uid\":NaN}",
    b"{\"uid\":Infinity}",
    b"{\"uid\":1}\x00",
    b"/* comment */ {}",
];

const TRAILERS: &[&[u8]] = &[b"}", b"]", b"x", b",", b"{}", b"\"", b"\n\x01"];

/// Bodies that are not (valid) JSON: truncated, with bytes that are not UTF-8, random bytes, a
/// byte-order mark, trailing garbage, over the size limit.
pub fn raw_body(fields: Fields) -> BoxedStrategy<Vec<u8>> {
    let obj = || object(fields);
    Union::new_weighted(vec![
        (
            3,
            (obj(), any::<Index>())
                .prop_map(|(t, i)| {
                    let b = t.into_bytes();
                    b[..i.index(b.len())].to_vec()
                })
                .boxed(),
        ),
        (
            3,
            (obj(), any::<Index>(), select(BAD_UTF8.to_vec()))
                .prop_map(|(t, i, bad)| {
                    let mut b = t.into_bytes();
                    let at = i.index(b.len() + 1);
                    b.splice(at..at, bad.iter().copied());
                    b
                })
                .boxed(),
        ),
        (2, vec(any::<u8>(), 0..256).boxed()),
        (
            1,
            obj()
                .prop_map(|t| [b"\xEF\xBB\xBF".as_slice(), t.as_bytes()].concat())
                .boxed(),
        ),
        (
            1,
            (obj(), select(TRAILERS.to_vec()))
                .prop_map(|(t, tail)| [t.as_bytes(), tail].concat())
                .boxed(),
        ),
        (
            2,
            select(ODD_BODIES.to_vec()).prop_map(<[u8]>::to_vec).boxed(),
        ),
        (
            1,
            (0..3u8, 1usize..4_096)
                .prop_map(|(k, extra)| {
                    let n = BODY_LIMIT + extra;
                    match k {
                        0 => vec![b' '; n],
                        1 => format!(r#"{{"uid":1,"user_name":"{}"}}"#, "x".repeat(n)).into_bytes(),
                        _ => vec![b'a'; n],
                    }
                })
                .boxed(),
        ),
    ])
    .boxed()
}

/// Every byte that is not unreserved in a URI, as `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path segment where an id belongs.
pub fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (1u64..=12).prop_map(|n| n.to_string()),
        3 => strs(&[
            "0", "-1", "+1", "1.0", "1e3", "%201", "1%20", "007", "9223372036854775807",
            "9223372036854775808", "18446744073709551616", "99999999999999999999999999999",
            "%D9%A3", "abc", "%00", "%2F", "%FF", "%2e%2e", ".", "..", "~", "null", "%25",
        ]),
        2 => "\\PC{1,12}".prop_map(|s| percent_encode(&s)),
        1 => "[0-9]{20,300}",
    ]
    .boxed()
}

/// A query string made of these keys (and others): repeated keys, keys without values, values
/// of every kind, broken percent-encoding.
pub fn query(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    let key = prop_oneof![
        4 => select(keys.to_vec()).prop_map(str::to_string),
        1 => "[a-z_]{0,8}",
        1 => "\\PC{1,6}".prop_map(|s| percent_encode(&s)),
    ];
    let val = prop_oneof![
        4 => (0u64..50).prop_map(|n| n.to_string()),
        4 => segment(),
        1 => Just(String::new()),
        1 => strs(&["%FF%FE", "%", "%zz", "a%2", "+", "%2B1", "1,2", "%5B%5D", "-0"]),
    ];
    vec(
        prop_oneof![
            8 => (key.clone(), val).prop_map(|(k, v)| format!("{k}={v}")),
            1 => key,
            1 => strs(&["", "=", "&", "==", "&&"]),
        ],
        0..5,
    )
    .prop_map(|parts| parts.join("&"))
    .boxed()
}

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
    /// reserved opcodes, unmasked frames, overlong control frames, fragments.
    Wire(Vec<u8>),
}

const SYNC: Fields = &[("after", Seq), ("limit", Seq)];
const SYNC_GROUP: Fields = &[("group_id", Id), ("after", Seq)];
const ACK: Fields = &[("seq", Seq)];
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
        // A continuation that continues nothing; a text message in two fragments.
        1 => Just(wire(0x80, ping, true)),
        1 => Just([wire(0x01, b"{\"type\":", true), wire(0x80, b"\"ping\"}", true)].concat()),
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
        1 => (1usize..1_024).prop_map(|n| WsInput::Oversize(FRAME_LIMIT + n)),
    ]
    .boxed()
}
