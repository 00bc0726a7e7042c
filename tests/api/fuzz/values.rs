//! Values for the fuzz properties, per kind of field: valid ones (so that requests get past
//! parsing into the handlers and the store), edge cases, and every other kind of JSON; and
//! objects built from them.
//!
//! Values are JSON *text*, not `serde_json::Value`, so that bodies can hold what a `Value`
//! cannot: duplicate keys, nesting deeper than the parser's limit, lone surrogates.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::CONTENT_LIMIT;

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

pub fn strs(list: &[&'static str]) -> BoxedStrategy<String> {
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

pub fn edge_string() -> BoxedStrategy<String> {
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

pub fn wrong() -> BoxedStrategy<String> {
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
        Kind => strs(&[
            "\"peer\"",
            "\"peer\"",
            "\"group\"",
            "\"customer\"",
            "\"room\"",
            "\"rt\"",
        ]),
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
        Kind => strs(&["\"Peer\"", "\"system\"", "\"\"", "\"RT\""]),
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
pub fn some_pairs(fields: Fields) -> BoxedStrategy<Vec<(String, String)>> {
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

/// Byte sequences that are not UTF-8 (or are, but should not be in JSON text).
pub const BAD_UTF8: &[&[u8]] = &[
    &[0xFF],
    &[0xC0, 0x80],
    &[0xED, 0xA0, 0x80],
    &[0xF8, 0x88, 0x80, 0x80, 0x80],
    &[0xE2, 0x82],
    &[0x80],
    &[0xF4, 0x90, 0x80, 0x80],
    &[0x00],
];
