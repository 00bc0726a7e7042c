//! IM, GROUP_IM and CUSTOMER_V2 from a binary client: the one send preparation and path every
//! entry point takes (membership, mute, the client's msgid as idempotency key, push), answered
//! with METADATA (the message's place in the sender's queue, or the group's) and an ACK of
//! the client's frame seq — in the message's place in the connection's seq order.
//!
//! As the original: no ACK when the sender field is not the connection's user, for a peer
//! message the store refused, or for a muted group member; ACK 64 / 65 for a non-member / a
//! group that does not exist; a group message the store refused is acknowledged (status 0,
//! no METADATA).

use super::codec::Command;
use super::conn::BinaryConnection;
use super::{Header, Out, flag, status};
use crate::dispatch::outbox::Frame;
use crate::dispatch::{Content, DispatchError, Draft, KeyScope, SendRequest, Sent};
use crate::domain::MessageKind;

/// The fields of a client IM (CUSTOMER_V2: with the receiver's app when it is another).
struct Im<'a> {
    pub sender: u64,
    pub receiver: u64,
    pub receiver_app: Option<crate::domain::AppId>,
    pub msgid: i32,
    pub content: &'a [u8],
}

impl BinaryConnection {
    /// IM, GROUP_IM or CUSTOMER_V2 (from the connection's app, to it or across to or from the
    /// help-desk app).
    pub(super) async fn send_command(&mut self, h: &Header, command: Command<'_>) {
        let Some(app) = self.authed.as_ref().map(|a| a.info.user.app.0) else {
            return;
        };
        let (kind, im) = match command {
            Command::Im {
                group,
                sender,
                receiver,
                msgid,
                content,
            } => {
                let kind = if group {
                    MessageKind::Group
                } else {
                    MessageKind::Peer
                };
                (
                    kind,
                    Im {
                        sender,
                        receiver,
                        receiver_app: None,
                        msgid,
                        content,
                    },
                )
            }
            Command::Customer {
                sender_app,
                sender,
                receiver_app,
                receiver,
                content,
            } if sender_app == app => {
                let im = Im {
                    sender,
                    receiver,
                    receiver_app: Some(crate::domain::AppId(receiver_app)),
                    msgid: 0,
                    content,
                };
                (MessageKind::Customer, im)
            }
            _ => return,
        };
        self.send(h, kind, im).await;
    }

    async fn send(&mut self, h: &Header, kind: MessageKind, im: Im<'_>) {
        let Some(authed) = &self.authed else {
            return;
        };
        let (user, app) = (authed.info.user, authed.info.app.clone());
        if im.sender != user.uid.0 || (authed.info.customer && kind != MessageKind::Customer) {
            return;
        }
        let idempotency = match im.msgid {
            0 => None,
            id => KeyScope::Binary {
                user,
                device: &authed.device,
            }
            .key(&id.to_string())
            .ok(),
        };
        let draft = Draft {
            msgid: (kind == MessageKind::Peer && im.msgid != 0).then_some(im.msgid),
            device_tag: matches!(kind, MessageKind::Peer | MessageKind::Customer)
                .then(|| authed.info.device_tag())
                .flatten(),
            to_app: im.receiver_app,
            kind,
            sender: user.uid,
            to: im.receiver,
            content: Content::Raw(im.content),
            idempotency,
            origin: Some(authed.registration.id()),
        };
        let limit = self.dispatcher.limits().content;
        let request = match SendRequest::prepare(&app, limit, draft) {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!("imd_binary_refused_sends_total", "code" => e.code())
                    .increment(1);
                return tracing::debug!(error = %e, "binary send refused");
            }
        };
        let result = self.dispatcher.send(request).await;
        self.acknowledge(h.seq, kind, result);
    }

    fn acknowledge(&self, seq: i32, kind: MessageKind, result: Result<Sent, DispatchError>) {
        match result {
            Ok(sent) => {
                let meta = Some((sent.seq, sent.seq.saturating_sub(1)));
                if sent.timeline {
                    self.reply(Out::ack(seq, status::OK, flag::SUPER_GROUP, meta));
                } else if sent.replayed {
                    self.reply(Out::ack(seq, status::OK, 0, meta));
                } else {
                    // The ack takes the message's place in this connection's seq order.
                    let ack = Out::ack(seq, status::OK, 0, meta);
                    self.outbox.push_seq(sent.seq, Frame::Gob(ack));
                }
            }
            Err(DispatchError::GroupNotFound) => {
                self.reply(Out::ack(seq, status::GROUP_NONEXIST, 0, None))
            }
            Err(DispatchError::NotGroupMember) => {
                self.reply(Out::ack(seq, status::NOT_GROUP_MEMBER, 0, None))
            }
            Err(DispatchError::MemberMuted) => {}
            Err(e) if kind == MessageKind::Group => {
                tracing::debug!(error = %e, "binary group send failed; acknowledged as the original does");
                self.reply(Out::ack(seq, status::OK, 0, None));
            }
            Err(e) => tracing::debug!(error = %e, "binary send failed: no ACK"),
        }
    }
}
