//! Messages as binary frames. A message is stored (and spliced for live delivery) as JSON; a
//! binary frame needs its fields, so the JSON is read once per message — on the first binary
//! recipient — and each version's body is encoded once and shared by every binary recipient
//! of that version (`Message::body`).

use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;

use super::cmd;
use crate::domain::{AppId, MessageKind};

/// The fields of a stored record (or of a live frame's body) that binary frames carry.
#[derive(Deserialize)]
struct Record<'a> {
    kind: &'a str,
    sender: Option<u64>,
    receiver: Option<u64>,
    sender_app: Option<u64>,
    receiver_app: Option<u64>,
    #[serde(borrow)]
    device_tag: Option<Cow<'a, str>>,
    msgid: Option<i32>,
    group_id: Option<u64>,
    #[serde(borrow)]
    content: Cow<'a, str>,
    timestamp: Option<u64>,
}

/// One message, ready to be written in any version.
#[derive(Debug)]
pub struct Message {
    pub cmd: u8,
    pub sender: u64,
    /// The receiver uid, or the group id.
    pub receiver: u64,
    pub group_id: Option<u64>,
    /// A customer message's sender and receiver apps when they differ (else both are the
    /// recipient's).
    pub apps: Option<(u64, u64)>,
    /// The sending device's tag (`App::device_tag`), on peer and customer messages.
    pub device_tag: Option<Box<str>>,
    /// A peer IM's msgid as its sender wrote it (0: none, or not a peer IM).
    pub msgid: i32,
    /// Seconds (frames carry an i32).
    pub timestamp: i32,
    pub content: Bytes,
    /// Encoded bodies: version 0, and versions 1 and up.
    bodies: [OnceLock<Bytes>; 2],
}

impl Message {
    /// Reads a stored record or a live frame's JSON; `None` for a kind with no binary frame.
    pub fn parse(json: &[u8]) -> Option<Message> {
        let r: Record<'_> = serde_json::from_slice(json).ok()?;
        let kind = MessageKind::parse(r.kind)?;
        let cmd = match kind {
            MessageKind::Peer => cmd::IM,
            MessageKind::Group => cmd::GROUP_IM,
            MessageKind::Customer => cmd::CUSTOMER_V2,
            MessageKind::System => cmd::SYSTEM,
            MessageKind::GroupNotification => cmd::GROUP_NOTIFICATION,
            MessageKind::Notification => cmd::NOTIFICATION,
            // Never stored, never spliced: `rooms::LiveMessage` writes them.
            MessageKind::Room | MessageKind::Rt => return None,
        };
        let receiver = r.receiver.or(r.group_id).unwrap_or(0);
        Some(Message {
            cmd,
            sender: r.sender.unwrap_or(0),
            receiver: if kind == MessageKind::Group {
                r.group_id.unwrap_or(receiver)
            } else {
                receiver
            },
            group_id: r.group_id,
            apps: r.sender_app.zip(r.receiver_app),
            device_tag: r.device_tag.map(|t| t.into()),
            msgid: r.msgid.unwrap_or(0),
            timestamp: i32::try_from(r.timestamp.unwrap_or(0) / 1000).unwrap_or(i32::MAX),
            content: Bytes::from(r.content.into_owned()),
            bodies: Default::default(),
        })
    }

    /// Delivered live as a body (with METADATA); the other stored kinds are only announced
    /// (SYNC_NOTIFY) and fetched by sync, as the original does.
    pub fn live_body(&self) -> bool {
        matches!(self.cmd, cmd::IM | cmd::GROUP_IM | cmd::CUSTOMER_V2)
    }

    /// The body for `version`, encoded on first use. `app` is the recipient's app, which a
    /// customer message within one app carries as both of its apps (one that crosses apps
    /// names them itself, the same for every recipient).
    pub fn body(&self, version: u8, app: AppId) -> Bytes {
        let slot = &self.bodies[usize::from(version > 0)];
        slot.get_or_init(|| self.encode(version, app)).clone()
    }

    fn encode(&self, version: u8, app: AppId) -> Bytes {
        let mut b = BytesMut::with_capacity(self.content.len() + 36);
        match self.cmd {
            cmd::IM | cmd::GROUP_IM => {
                b.put_i64(self.sender as i64);
                b.put_i64(self.receiver as i64);
                if version > 0 {
                    b.put_i32(self.timestamp);
                }
                // The sender's msgid on peer IMs; 0 on group IMs, as the original.
                b.put_i32(self.msgid);
            }
            cmd::CUSTOMER_V2 => {
                let (from, to) = self.apps.unwrap_or((app.0, app.0));
                b.put_i64(from as i64);
                b.put_i64(self.sender as i64);
                b.put_i64(to as i64);
                b.put_i64(self.receiver as i64);
                b.put_i32(self.timestamp);
            }
            _ => {}
        }
        b.put_slice(&self.content);
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_peer_record_becomes_each_versions_im_body() {
        let json = br#"{"id":5,"seq":3,"kind":"peer","sender":1,"receiver":2,"content":"h\u00e9","timestamp":7000}"#;
        let m = Message::parse(json).unwrap();
        assert_eq!(m.cmd, cmd::IM);
        let v1 = m.body(1, AppId(7));
        assert_eq!(&v1[..8], &1i64.to_be_bytes());
        assert_eq!(&v1[8..16], &2i64.to_be_bytes());
        assert_eq!(&v1[16..20], &7i32.to_be_bytes(), "seconds");
        assert_eq!(&v1[20..24], &[0; 4]);
        assert_eq!(&v1[24..], "hé".as_bytes());
        assert_eq!(m.body(0, AppId(7)).len(), 20 + 3);
        assert_eq!(
            m.body(2, AppId(7)).as_ptr(),
            v1.as_ptr(),
            "shared, not re-encoded"
        );
    }
}
