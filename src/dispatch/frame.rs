//! Wire JSON for the WebSocket channel (SPEC §5.2), built once per message.
//!
//! A message is serialized once into its stored body (`"kind":…,"content":…,"timestamp":…}`);
//! the stored record prepends `{"id":N,"seq":M,` and a live frame prepends
//! `{"type":"message","id":N,"seq":`, the recipient's seq and a comma. Recipients share the
//! encoded bytes by reference count; only the seq digits differ per recipient.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::gob::message::Message;
use crate::domain::{AppId, GroupId, RoomId, Uid};

/// Message kinds of SPEC §5.2 (the type lives in `domain`).
pub use crate::domain::MessageKind as Kind;

/// The parts of a message that are the same for every recipient.
pub struct Body<'a> {
    pub kind: Kind,
    pub sender: Option<Uid>,
    /// A uid, or the group id for group messages.
    pub receiver: u64,
    /// The sender's and the receiver's apps, when they differ (a customer message to or from
    /// the help desk): `sender_app`, `receiver_app`.
    pub apps: Option<(AppId, AppId)>,
    /// The sending device's tag (`App::device_tag`): `device_tag`.
    pub device_tag: Option<&'a str>,
    /// The sender's own id of a binary IM (`msgid`), passed on as the original did.
    pub msgid: Option<i32>,
    pub group_id: Option<GroupId>,
    pub content: &'a str,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
}

/// `"kind":"…",…,"timestamp":T}` — the stored body after the id/seq fields.
pub fn body(b: &Body<'_>) -> String {
    let mut out = String::with_capacity(b.content.len() + 96);
    out.push_str("\"kind\":\"");
    out.push_str(b.kind.as_str());
    out.push('"');
    if let Some(sender) = b.sender {
        push_num(&mut out, ",\"sender\":", sender.0);
    }
    push_num(&mut out, ",\"receiver\":", b.receiver);
    if let Some((from, to)) = b.apps {
        push_num(&mut out, ",\"sender_app\":", from.0);
        push_num(&mut out, ",\"receiver_app\":", to.0);
    }
    if let Some(tag) = b.device_tag {
        out.push_str(",\"device_tag\":");
        push_json_str(&mut out, tag);
    }
    if let Some(id) = b.msgid {
        out.push_str(",\"msgid\":");
        out.push_str(itoa::Buffer::new().format(id));
    }
    if let Some(gid) = b.group_id {
        push_num(&mut out, ",\"group_id\":", gid.0);
    }
    out.push_str(",\"content\":");
    push_json_str(&mut out, b.content);
    push_num(&mut out, ",\"timestamp\":", b.timestamp);
    out.push('}');
    out
}

fn push_num(out: &mut String, key: &str, v: u64) {
    out.push_str(key);
    out.push_str(itoa::Buffer::new().format(v));
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    // serde_json's escaping; writing into a String cannot fail.
    if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
}

/// The shared bytes of a live `message` frame whose recipients differ only by seq.
#[derive(Debug)]
pub struct Spliced {
    /// `{"type":"message","id":N,"seq":`
    pub head: Bytes,
    /// `,"kind":…}`
    pub tail: Bytes,
    /// The spliced field is a super group's `group_seq` (not an inbox `seq`).
    pub timeline: bool,
    /// The message's fields for binary-protocol connections, read from `tail` by the first
    /// of them (`None`: a kind they have no frame for).
    binary: OnceLock<Option<Message>>,
}

impl Spliced {
    pub fn new(id: u64, body: &str) -> Arc<Spliced> {
        Self::with_field(id, "seq", body)
    }

    /// Same, with another per-recipient field name (super groups use `group_seq`).
    pub fn with_field(id: u64, field: &str, body: &str) -> Arc<Spliced> {
        let mut head = String::with_capacity(48);
        head.push_str("{\"type\":\"message\",\"id\":");
        head.push_str(itoa::Buffer::new().format(id));
        head.push_str(",\"");
        head.push_str(field);
        head.push_str("\":");
        let mut tail = String::with_capacity(body.len() + 1);
        tail.push(',');
        tail.push_str(body);
        Arc::new(Spliced {
            head: Bytes::from(head),
            tail: Bytes::from(tail),
            timeline: field == "group_seq",
            binary: OnceLock::new(),
        })
    }

    /// A stored record (`{"id":N,"<field>":M,<body>`, as the store writes it) as a shared frame
    /// and its seq, so a message read back from the store (gap repair) reaches every codec in
    /// its own form. `None` for a record not in that shape.
    pub fn from_stored(stored: &str, field: &str) -> Option<(Arc<Spliced>, u64)> {
        let rest = stored.strip_prefix("{\"id\":")?;
        let (id, rest) = rest.split_once(',')?;
        let rest = rest
            .strip_prefix('"')?
            .strip_prefix(field)?
            .strip_prefix("\":")?;
        let (seq, body) = rest.split_once(',')?;
        Some((
            Self::with_field(id.parse().ok()?, field, body),
            seq.parse().ok()?,
        ))
    }

    /// The message as binary-protocol connections write it, read once.
    pub(super) fn binary(&self) -> Option<&Message> {
        self.binary
            .get_or_init(|| {
                let mut json = Vec::with_capacity(self.tail.len());
                json.push(b'{');
                json.extend_from_slice(self.tail.get(1..).unwrap_or_default());
                Message::parse(&json)
            })
            .as_ref()
    }

    /// The complete frame text for one value of the spliced field.
    pub fn render(&self, seq: u64) -> Bytes {
        let digits = itoa::Buffer::new().format(seq).to_string();
        let mut v = Vec::with_capacity(self.head.len() + digits.len() + self.tail.len());
        v.extend_from_slice(&self.head);
        v.extend_from_slice(digits.as_bytes());
        v.extend_from_slice(&self.tail);
        Bytes::from(v)
    }
}

/// A `message` frame without seq (notifications are not stored).
pub fn unstored_message(id: u64, body: &str) -> Bytes {
    let mut s = String::with_capacity(body.len() + 32);
    s.push_str("{\"type\":\"message\",\"id\":");
    s.push_str(itoa::Buffer::new().format(id));
    s.push(',');
    s.push_str(body);
    Bytes::from(s)
}

/// A stored record (`{"id":…,"seq":…,…}`) as a `message` frame.
pub fn stored_message(stored: &str) -> Bytes {
    let rest = stored.strip_prefix('{').unwrap_or(stored);
    let mut s = String::with_capacity(rest.len() + 18);
    s.push_str("{\"type\":\"message\",");
    s.push_str(rest);
    Bytes::from(s)
}

/// `hello`; `device_tag` is this connection's (`App::device_tag`), as its own sends carry it.
pub fn hello(app: AppId, uid: Uid, seq: u64, device_tag: Option<&str>) -> Bytes {
    let mut s = format!(r#"{{"type":"hello","uid":{uid},"appid":{app},"seq":{seq}"#);
    if let Some(tag) = device_tag {
        s.push_str(",\"device_tag\":");
        push_json_str(&mut s, tag);
    }
    s.push('}');
    Bytes::from(s)
}

pub fn sync_end(seq: u64, more: bool) -> Bytes {
    Bytes::from(format!(
        r#"{{"type":"sync_end","seq":{seq},"more":{more}}}"#
    ))
}

pub fn pong() -> Bytes {
    Bytes::from_static(br#"{"type":"pong"}"#)
}

/// `{"type":"ack","ref":…,"id":…,"seq":…}`; `ref` is echoed as the client sent it.
pub fn ack(reference: Option<&serde_json::Value>, id: u64, seq: u64) -> Bytes {
    let mut s = String::from(r#"{"type":"ack","ref":"#);
    s.push_str(&reference.map_or_else(|| "null".to_string(), |r| r.to_string()));
    push_num(&mut s, ",\"id\":", id);
    push_num(&mut s, ",\"seq\":", seq);
    s.push('}');
    Bytes::from(s)
}

/// The ack of a live-only send (room, RT): an id, no seq (nothing was stored).
pub fn ack_live(reference: Option<&serde_json::Value>, id: u64) -> Bytes {
    let mut s = String::from(r#"{"type":"ack","ref":"#);
    s.push_str(&reference.map_or_else(|| "null".to_string(), |r| r.to_string()));
    push_num(&mut s, ",\"id\":", id);
    s.push('}');
    Bytes::from(s)
}

/// `{"type":"room","ref":…,"room_id":N|null}`: the connection's room after `enter_room` or
/// `leave_room`.
pub fn room(reference: Option<&serde_json::Value>, room: Option<RoomId>) -> Bytes {
    let mut s = String::from(r#"{"type":"room","ref":"#);
    s.push_str(&reference.map_or_else(|| "null".to_string(), |r| r.to_string()));
    match room {
        Some(r) => push_num(&mut s, ",\"room_id\":", r.0),
        None => s.push_str(",\"room_id\":null"),
    }
    s.push('}');
    Bytes::from(s)
}

/// The ack of a super-group send: its position on the group timeline.
pub fn ack_group(reference: Option<&serde_json::Value>, id: u64, group_seq: u64) -> Bytes {
    let mut s = String::from(r#"{"type":"ack","ref":"#);
    s.push_str(&reference.map_or_else(|| "null".to_string(), |r| r.to_string()));
    push_num(&mut s, ",\"id\":", id);
    push_num(&mut s, ",\"group_seq\":", group_seq);
    s.push('}');
    Bytes::from(s)
}

/// Ends a `sync_group` batch.
pub fn sync_group_end(gid: GroupId, group_seq: u64, more: bool) -> Bytes {
    Bytes::from(format!(
        r#"{{"type":"sync_end","group_id":{gid},"group_seq":{group_seq},"more":{more}}}"#
    ))
}

pub fn error(reference: Option<&serde_json::Value>, code: &str, message: &str) -> Bytes {
    let mut s = String::from(r#"{"type":"error""#);
    if let Some(r) = reference {
        s.push_str(",\"ref\":");
        s.push_str(&r.to_string());
    }
    s.push_str(",\"error\":");
    push_json_str(&mut s, code);
    s.push_str(",\"message\":");
    push_json_str(&mut s, message);
    s.push('}');
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spliced_frame_is_valid_json_with_the_recipients_seq() {
        let b = body(&Body {
            apps: None,
            device_tag: None,
            msgid: None,
            kind: Kind::Peer,
            sender: Some(Uid(1)),
            receiver: 2,
            group_id: None,
            content: "hi \"there\"\n",
            timestamp: 5,
        });
        let f = Spliced::new(9, &b).render(42);
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["id"], 9);
        assert_eq!(v["seq"], 42);
        assert_eq!(v["kind"], "peer");
        assert_eq!(v["content"], "hi \"there\"\n");
        let stored = format!("{{\"id\":9,\"seq\":42,{b}");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&stored_message(&stored)).unwrap(),
            v
        );
    }

    #[test]
    fn a_stored_record_read_back_is_the_same_shared_frame() {
        let b = body(&Body {
            apps: None,
            device_tag: None,
            msgid: None,
            kind: Kind::Group,
            sender: Some(Uid(1)),
            receiver: 7,
            group_id: Some(crate::domain::GroupId(7)),
            content: "x",
            timestamp: 5,
        });
        let live = Spliced::with_field(9, "group_seq", &b).render(42);
        let stored = format!("{{\"id\":9,\"group_seq\":42,{b}");
        let (parts, seq) = Spliced::from_stored(&stored, "group_seq").unwrap();
        assert_eq!((parts.render(seq), parts.timeline), (live, true));
        assert!(Spliced::from_stored(&stored, "seq").is_none());
        assert!(Spliced::from_stored("{\"id\":x", "seq").is_none());
    }
}
