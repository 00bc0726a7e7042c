//! What an authenticated binary client asks for (sends: `send.rs`, rooms and RT: `live.rs`): SYNC (its inbox after a key),
//! SYNC_GROUP (a super group's timeline), the keys it confirms (SYNC_KEY, GROUP_SYNC_KEY, kept
//! where the original kept them) and UNREAD_COUNT. Sync keys are our inbox seqs and
//! `group_seq`s. A store failure drops the request (the client syncs again on the next
//! SYNC_NOTIFY or reconnect), as the original does.

use super::codec::Command;
use super::conn::BinaryConnection;
use super::message::Message;
use super::{Header, Out, cmd, group_key_body, key_body};
use crate::dispatch::wire::{Codec, Wire};
use crate::domain::{AppId, GroupId, GroupKey, MessageKind};
use crate::store::stored_seq;

impl BinaryConnection {
    pub(super) async fn request(&mut self, h: &Header, command: Command<'_>, wire: &mut Wire) {
        match command {
            Command::Sync(key) => self.sync(key, wire).await,
            Command::SyncGroup { group, key } => self.sync_group(group, key, wire).await,
            Command::SyncKey(_) | Command::GroupSyncKey { .. } | Command::UnreadCount(_) => {
                self.reported(command).await
            }
            Command::Im { .. } | Command::Customer { .. } => self.send_command(h, command).await,
            Command::EnterRoom(room) => self.enter_room(room),
            Command::LeaveRoom(room) => self.leave_room(room),
            Command::RoomIm {
                sender,
                room,
                content,
            } => {
                let kind = MessageKind::Room;
                self.send_live(h, kind, sender, room, content).await
            }
            Command::Rt {
                sender,
                receiver,
                content,
            } => {
                let kind = MessageKind::Rt;
                self.send_live(h, kind, sender, receiver, content).await
            }
            // Handled before authentication is checked.
            Command::Auth { .. } | Command::Ping | Command::Ignored => {}
        }
    }

    /// What the client reports: its confirmed keys (the personal one also moves this device's
    /// offline count) and its unread count.
    async fn reported(&self, command: Command<'_>) {
        let Some(a) = &self.authed else { return };
        let (user, store) = (a.info.user, self.dispatcher.store());
        let result = match command {
            Command::SyncKey(key) => match store.set_ack(user, &a.device, key).await {
                Ok(()) => store.set_sync_key(user, None, key).await,
                Err(e) => Err(e),
            },
            Command::GroupSyncKey { group, key } => {
                store.set_sync_key(user, Some(GroupId(group)), key).await
            }
            Command::UnreadCount(n) => store.set_unread(user, n).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "binary report not stored");
        }
    }

    /// A page size that never fills more than half the outbound queue.
    fn page(&self) -> usize {
        let limits = self.dispatcher.limits();
        limits.sync_batch.min(limits.outbound_queue / 2).max(1)
    }

    /// SYNC: SYNC_BEGIN, the inbox after `key` (0: the stored key), SYNC_END with the last
    /// seq sent — or, for a client whose key is ahead of the inbox, the inbox's newest, which
    /// brings it back — and a SYNC_NOTIFY when the page was full (more may follow).
    async fn sync(&mut self, key: u64, wire: &Wire) {
        let Some(user) = self.authed.as_ref().map(|a| a.info.user) else {
            return;
        };
        metrics::counter!("imd_binary_sync_requests_total").increment(1);
        let store = self.dispatcher.store().clone();
        let key = match key {
            0 => store.sync_key(user, None).await.unwrap_or(0),
            k => k,
        };
        let limit = self.page();
        let Ok(records) = store.inbox_after(user, key, u64::MAX, limit).await else {
            return;
        };
        self.reply(Out::new(cmd::SYNC_BEGIN, key_body(key)));
        self.records(&records, wire);
        let end = match records.last().and_then(|r| stored_seq(r)) {
            Some(last) => last,
            None => match store.latest_seq(user).await {
                Ok(newest) if newest < key => newest,
                _ => key,
            },
        };
        self.reply(Out::new(cmd::SYNC_END, key_body(end)));
        if records.len() == limit {
            self.reply(Out::new(cmd::SYNC_NOTIFY, key_body(end + 1)));
        }
    }

    /// SYNC_GROUP: a super group's timeline after `key` (0: the stored key; from the join
    /// on), for members; anything else is ignored, as the original does.
    async fn sync_group(&mut self, group: u64, key: u64, wire: &Wire) {
        let Some(user) = self.authed.as_ref().map(|a| a.info.user) else {
            return;
        };
        metrics::counter!("imd_binary_sync_requests_total").increment(1);
        let gid = GroupId(group);
        let key = match key {
            0 => self
                .dispatcher
                .store()
                .sync_key(user, Some(gid))
                .await
                .unwrap_or(0),
            k => k,
        };
        let limit = self.page();
        let Ok((records, mut last, more)) = self.dispatcher.sync_group(user, gid, key, limit).await
        else {
            return;
        };
        if records.is_empty() {
            // A key ahead of the timeline is brought back to its newest, as for SYNC.
            let store = self.dispatcher.store();
            if let Ok(newest) = store.timeline_seq(GroupKey::new(user.app, gid)).await {
                last = last.min(newest);
            }
        }
        self.reply(Out::new(cmd::SYNC_GROUP_BEGIN, group_key_body(group, key)));
        self.records(&records, wire);
        self.reply(Out::new(cmd::SYNC_GROUP_END, group_key_body(group, last)));
        if more {
            self.reply(Out::new(
                cmd::SYNC_GROUP_NOTIFY,
                group_key_body(group, last + 1),
            ));
        }
    }

    /// Stored records as frames of this connection's version (kinds without a frame skipped).
    fn records(&self, records: &[String], wire: &Wire) {
        let (version, app) = match wire.codec {
            Codec::Binary { version, app, .. } => (version, app),
            Codec::Json => (0, AppId(0)),
        };
        let me = self.authed.as_ref().map(|a| &a.info);
        let tag = me.and_then(|i| i.device_tag());
        for r in records {
            if let Some(m) = Message::parse(r.as_bytes()) {
                // SELF, as the original: sent by this user from this very device.
                let own = me.is_some_and(|i| m.sender == i.user.uid.0)
                    && m.device_tag.is_some()
                    && m.device_tag.as_deref() == tag.as_deref();
                let mut out = Out::new(m.cmd, m.body(version, app));
                out.flag = if own { super::flag::SELF } else { 0 };
                self.reply(out);
            }
        }
    }
}
