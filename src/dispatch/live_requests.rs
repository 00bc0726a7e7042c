//! A JSON client's room commands (`enter_room`, `leave_room`) and its live-only sends (`send`
//! with kind `room` or `rt`), answered with a `room` frame, an `ack` without seq, or `error`.

use serde_json::Value;

use super::connection::Connection;
use super::frame;
use super::prepare::SendRequest;
use super::rooms::Wire;
use crate::domain::{MAX_ID, RoomId};

/// A room id from a frame: positive, at most `MAX_ID`; `Err` names the field and why.
fn room_id(v: u64) -> Result<RoomId, String> {
    if v == 0 || v > MAX_ID {
        Err(format!(
            "`room_id` must be a positive integer up to {MAX_ID}"
        ))
    } else {
        Ok(RoomId(v))
    }
}

impl Connection {
    /// `{"type":"enter_room","room_id":N}`: this connection is in room N (and no other) now.
    pub(super) fn enter_room(&mut self, reference: Option<Value>, room: u64) {
        let reference = reference.as_ref();
        let room = match room_id(room) {
            Ok(r) => r,
            Err(msg) => return self.bad_frame(reference, "invalid_frame", &msg),
        };
        if self.info.customer {
            let msg = "customers cannot enter chat rooms";
            return self.reply(frame::error(reference, "customer_only", msg));
        }
        let conn = self.registration.id();
        self.dispatcher
            .enter_room(self.info.user, conn, Wire::Json, self.outbox.clone(), room);
        self.reply(frame::room(reference, Some(room)));
    }

    /// `{"type":"leave_room","room_id"?:N}`: leaves the room (only if it is N, when given).
    pub(super) fn leave_room(&mut self, reference: Option<Value>, room: Option<u64>) {
        let reference = reference.as_ref();
        let room = match room.map(room_id).transpose() {
            Ok(r) => r,
            Err(msg) => return self.bad_frame(reference, "invalid_frame", &msg),
        };
        let conn = self.registration.id();
        let left = self.dispatcher.leave_room(conn, room);
        if let (Some(asked), None) = (room, left) {
            let msg = format!("this connection is not in room {asked}");
            return self.reply(frame::error(reference, "not_in_room", &msg));
        }
        self.reply(frame::room(reference, None));
    }

    /// A prepared `send` of kind `room` (to the connection's room) or `rt` (to a user's open
    /// connections), answered with an `ack` without seq or an `error`.
    pub(super) async fn send_live(&mut self, reference: Option<&Value>, request: SendRequest) {
        let result = self.dispatcher.send_live(request).await;
        match result {
            Ok((id, _)) => self.reply(frame::ack_live(reference, id)),
            Err(e) => {
                let (_, code) = e.status_and_code();
                self.reply(frame::error(reference, code, &format!("not sent: {e}")));
            }
        }
    }
}
