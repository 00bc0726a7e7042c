//! Request parts for the HTTP fuzz properties: JSON bodies, bodies that are not JSON, path
//! segments and query strings.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::Union;

use super::BODY_LIMIT;
use super::values::Hint::*;
use super::values::*;

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
