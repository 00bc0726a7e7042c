//! A cheap reading of the frames the load generator receives most: a `message` frame in exactly
//! the shape the server writes (`{"type":"message",…,"content":"<payload>",…}`) whose content is
//! one of our payloads, escaped as a JSON string (`{\"t\":1,\"n\":2,\"s\":3,\"r\":4}`).
//!
//! Each receipt used to be parsed twice with serde_json (the frame, then its content), which cost
//! as much client CPU as the server spent delivering it. This scan answers only when the frame
//! is unambiguous — flat (no nested object, array or escape outside the payload), the payload's
//! numbers plain digits — and says `None` otherwise, so the caller falls back to serde_json and
//! anything unusual is judged exactly as before.

use super::payload::Payload;

/// Bytes still to read, consumed from the front.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn eat(&mut self, lit: &[u8]) -> Option<()> {
        self.0 = self.0.strip_prefix(lit)?;
        Some(())
    }

    /// A JSON unsigned integer as serde_json reads one into a u64: digits, no leading zero,
    /// no overflow.
    fn number(&mut self) -> Option<u64> {
        let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.0.split_at(len);
        if len == 0 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        let mut v: u64 = 0;
        for d in digits {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.0 = rest;
        Some(v)
    }

    /// `<q>key<q>:<number>` followed by `end`.
    fn field(&mut self, q: &[u8], key: u8, end: u8) -> Option<u64> {
        self.eat(q)?;
        self.eat(&[key])?;
        self.eat(q)?;
        self.eat(b":")?;
        let v = self.number()?;
        self.eat(&[end])?;
        Some(v)
    }

    /// A payload `{"t":…,"n":…,"s":…,"r":…}` with its quotes written as `q`.
    fn payload(&mut self, q: &[u8]) -> Option<Payload> {
        self.eat(b"{")?;
        Some(Payload {
            t: self.field(q, b't', b',')?,
            n: self.field(q, b'n', b',')?,
            s: self.field(q, b's', b',')?,
            r: self.field(q, b'r', b'}')?,
        })
    }
}

/// A payload written plainly (a binary-protocol body's content), or `None` when `content` is
/// not exactly that shape (the caller then asks serde_json).
pub fn plain_payload(content: &[u8]) -> Option<Payload> {
    let mut c = Cursor(content);
    let p = c.payload(b"\"")?;
    c.0.is_empty().then_some(p)
}

const MESSAGE: &[u8] = b"{\"type\":\"message\",";
const CONTENT: &[u8] = b",\"content\":\"";

/// No nesting, no escapes: every quote in `part` is structural, so a key found in it is a key
/// of the frame itself.
fn flat(part: &[u8]) -> bool {
    !part.iter().any(|b| matches!(b, b'{' | b'[' | b'\\'))
}

/// Where the top-level `"content"` key starts (its comma), one pass over a flat head; `None`
/// at the first sign of nesting or escapes.
fn content_key(rest: &[u8]) -> Option<usize> {
    for (i, b) in rest.iter().enumerate() {
        match b {
            b',' if rest[i..].starts_with(CONTENT) => return Some(i),
            b'{' | b'[' | b'\\' => return None,
            _ => {}
        }
    }
    None
}

/// The payload of a `message` frame of the server's shape, or `None` when the frame is anything
/// else (another type, a foreign content, an unusual layout): then serde_json decides.
pub fn message_payload(frame: &[u8]) -> Option<Payload> {
    let rest = frame.strip_prefix(MESSAGE)?;
    let at = content_key(rest)?;
    let mut c = Cursor(&rest[at + CONTENT.len()..]);
    let p = c.payload(b"\\\"")?;
    c.eat(b"\"")?;
    let tail = c.0;
    (flat(tail) && tail.ends_with(b"}")).then_some(p)
}

/// What the receive paths' tests read: one payload and a server frame around it.
#[cfg(test)]
pub(super) mod fixtures {
    use super::Payload;

    pub const OURS: Payload = Payload {
        t: 1_764_680_000_123_456,
        n: 42,
        s: 7,
        r: 12_345_678_901_234_567_890,
    };

    pub fn quoted(s: &str) -> String {
        serde_json::to_string(s).unwrap_or_default()
    }

    /// Frames the server writes that are not messages.
    pub const OTHER_FRAMES: [&str; 3] = [
        r#"{"type":"hello","uid":5}"#,
        r#"{"type":"pong"}"#,
        r#"{"type":"sync_end","seq":3}"#,
    ];

    /// A message frame as the server writes it, with `content` (quoted here) as its content.
    pub fn message(content: &str) -> String {
        let content = quoted(content);
        format!(
            r#"{{"type":"message","id":9,"group_seq":3,"kind":"group","sender":7,"receiver":5,"group_id":5,"content":{content},"timestamp":1764680000123}}"#
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{OTHER_FRAMES, OURS, message, quoted};
    use super::*;

    #[test]
    fn a_message_frame_with_our_payload_is_read_without_serde() {
        assert_eq!(
            message_payload(message(&OURS.encode()).as_bytes()),
            Some(OURS)
        );
        assert_eq!(plain_payload(OURS.encode().as_bytes()), Some(OURS));
    }

    #[test]
    fn a_foreign_content_is_left_to_serde() {
        let notification = message(r#"{"create":{"group_id":5}}"#);
        assert_eq!(message_payload(notification.as_bytes()), None);
        assert_eq!(message_payload(message("hello").as_bytes()), None);
        assert_eq!(plain_payload(b"hello"), None);
    }

    #[test]
    fn frames_of_other_types_are_left_to_serde() {
        for f in OTHER_FRAMES {
            assert_eq!(message_payload(f.as_bytes()), None, "{f}");
        }
    }

    #[test]
    fn odd_but_valid_frames_are_left_to_serde() {
        let ours = quoted(&OURS.encode());
        let plain = message(&OURS.encode());
        let odd = [
            // Keys in another order, or "type" not first.
            format!(r#"{{"id":9,"type":"message","content":{ours}}}"#),
            // An escape before the content: its quotes are no longer plainly structural.
            plain.replace(r#""kind":"group""#, r#""kind":"gr\u006fup""#),
            // A nested object holding a "content" of its own.
            plain.replace(r#""sender":7"#, r#""x":{"content":"y"}"#),
            // The payload escaped differently (\/ for nothing, a unicode escape for a digit).
            plain.replace(r#"\"n\":42"#, r#"\"n\":4\u0032"#),
            // Numbers serde_json would not read as a u64.
            message(&OURS.encode().replace(":42", ":042")),
            message(&OURS.encode().replace(":42", ":18446744073709551616")),
            // Whitespace inside the payload.
            message(&OURS.encode().replace(",", ", ")),
        ];
        for f in odd {
            assert_eq!(message_payload(f.as_bytes()), None, "{f}");
        }
        assert_eq!(
            plain_payload(OURS.encode().replace(",", " ,").as_bytes()),
            None
        );
    }
}
