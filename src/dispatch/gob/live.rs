//! ENTER_ROOM / LEAVE_ROOM / ROOM_IM and RT from a binary client, on the rooms and the live-only
//! send path every protocol shares (`rooms.rs`, `live.rs`). As the original: one room per
//! connection, room 0 ignored; ROOM_IM is answered with a plain ACK (no METADATA) and only in
//! the connection's own room by a user who may speak — otherwise, like RT, with nothing.

use super::conn::BinaryConnection;
use super::{Header, Out, status};
use crate::dispatch::rooms::Wire;
use crate::dispatch::{Content, Draft, SendRequest};
use crate::domain::{MessageKind, RoomId};

impl BinaryConnection {
    pub(super) fn enter_room(&self, room: u64) {
        let Some(a) = &self.authed else { return };
        if room == 0 || room > crate::domain::MAX_ID || a.info.customer {
            return;
        }
        let conn = a.registration.id();
        self.dispatcher.enter_room(
            a.info.user,
            conn,
            Wire::Binary,
            self.outbox.clone(),
            RoomId(room),
        );
    }

    pub(super) fn leave_room(&self, room: u64) {
        let Some(a) = &self.authed else { return };
        if room != 0 {
            self.dispatcher
                .leave_room(a.registration.id(), Some(RoomId(room)));
        }
    }

    /// ROOM_IM (`kind` Room) or RT: the sender must be the connection's user.
    pub(super) async fn send_live(
        &self,
        h: &Header,
        kind: MessageKind,
        sender: u64,
        to: u64,
        content: &[u8],
    ) {
        let Some(a) = &self.authed else { return };
        if sender != a.info.user.uid.0 || a.info.customer {
            return;
        }
        let draft = Draft {
            msgid: None,
            device_tag: None,
            to_app: None,
            kind,
            sender: a.info.user.uid,
            to,
            content: Content::Raw(content),
            idempotency: None,
            origin: Some(a.registration.id()),
        };
        let limit = self.dispatcher.limits().content;
        let request = match SendRequest::prepare(&a.info.app, limit, draft) {
            Ok(r) => r,
            Err(e) => return tracing::debug!(error = %e, "binary live send refused"),
        };
        match self.dispatcher.send_live(request).await {
            Ok(_) if kind == MessageKind::Room => {
                self.reply(Out::ack(h.seq, status::OK, 0, None));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "binary live send not sent: no ACK"),
        }
    }
}
