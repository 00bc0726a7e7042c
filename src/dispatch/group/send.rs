//! A group message: checked, stored (a super group's timeline, or every member's inbox) with
//! the other sends queued beside it (`batch.rs`), answered, fanned out live — for a super
//! group to its members online only (`online.rs`) — then handed to a push stream for the
//! offline members (`push_stream.rs`), which runs off the command path.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::GroupActor;
use super::commands::Send;
use crate::dispatch::fanout::{Fanout, deliver_seqs};
use crate::dispatch::frame::{Kind, Spliced};
use crate::dispatch::outbox::Frame;
use crate::dispatch::push_stream::GroupPush;
use crate::dispatch::registry::Registry;
use crate::dispatch::session::PushView;
use crate::dispatch::{DispatchError, Sent};
use crate::domain::{Uid, UserKey};
use crate::store::{Append, Appended, StoreResult};

/// The answer to a `Send`, once its message is handed over (or refused).
pub(super) type Answer = oneshot::Sender<Result<Sent, DispatchError>>;

/// A send the group accepted (its sender a member, not muted), ready to be stored.
pub(super) struct Accepted {
    body: String,
    /// A normal group's inboxes, the sender's first (its seq is the ack's); empty for a super
    /// group, whose message goes on its timeline.
    inboxes: Vec<UserKey>,
    idempotency: Option<(String, u64)>,
    sender: Uid,
    content: String,
    origin: Option<u64>,
    stored: Option<oneshot::Sender<Sent>>,
    answer: Answer,
}

impl Accepted {
    /// What the store is asked to append for it.
    pub(super) fn append(&self) -> Append<'_> {
        Append {
            inboxes: &self.inboxes,
            body: &self.body,
            idempotency: self.idempotency.as_ref().map(|(k, ttl)| (k.as_str(), *ttl)),
        }
    }
}

/// A stored message on its way to the hubs: its fan-out (none for a replay) and its answer.
pub(super) struct Stored {
    fanout: Option<(Arc<Registry>, Fanout)>,
    sent: Sent,
    answer: Answer,
}

impl Stored {
    /// Hands the fan-out to the hubs, then answers: the next message of the group is handed
    /// over only once its predecessor's frames are queued, so order holds.
    pub(super) async fn hand_over(self) {
        if let Some((registry, fanout)) = self.fanout {
            fanout.send(&registry).await;
        }
        let _ = self.answer.send(Ok(self.sent));
    }
}

impl GroupActor {
    /// Checks a send against the group as this copy has it: refused sends are answered here.
    pub(super) fn accept(&self, cmd: Send, answer: Answer) -> Option<Accepted> {
        let refused = match self.state(cmd.app) {
            Err(e) => Some(e),
            Ok(st) => match st.members.get(cmd.sender) {
                None => Some(DispatchError::NotGroupMember),
                Some(m) if m.mute => Some(DispatchError::MemberMuted),
                Some(_) => None,
            },
        };
        if let Some(e) = refused {
            let _ = answer.send(Err(e));
            return None;
        }
        let st = self.state.as_ref()?;
        let inboxes: Vec<UserKey> = match st.is_super {
            true => Vec::new(),
            false => std::iter::once(cmd.sender)
                .chain(st.members.uids().filter(|u| *u != cmd.sender))
                .map(|u| UserKey::new(cmd.app, u))
                .collect(),
        };
        Some(Accepted {
            body: self.body(Kind::Group, Some(cmd.sender), &cmd.content),
            inboxes,
            idempotency: cmd
                .idempotency
                .map(|k| (k, self.env.limits.idempotency_ttl_secs)),
            sender: cmd.sender,
            content: cmd.content,
            origin: cmd.origin,
            stored: cmd.stored,
            answer,
        })
    }

    /// What follows the store of one message: a refusal or error is answered at once; a
    /// stored message is answered early (`Send::stored`), fanned out and pushed. `None` when
    /// nothing is left to hand over. `stale` is set if the store found the group changed.
    pub(super) fn stored(
        &mut self,
        m: Accepted,
        result: StoreResult<Appended>,
        stale: &mut bool,
    ) -> Option<Stored> {
        let a = match result {
            Ok(a) if a.stale => {
                *stale = true;
                let _ = m.answer.send(Err(DispatchError::StaleGroup));
                return None;
            }
            Ok(a) => a,
            Err(e) => {
                let _ = m.answer.send(Err(e.into()));
                return None;
            }
        };
        let is_super = self.state.as_ref().is_some_and(|st| st.is_super);
        let sent = Sent::of(&a, is_super);
        if let Some(tx) = m.stored {
            let _ = tx.send(sent);
        }
        let mut fanout = None;
        if !a.replayed {
            fanout = self.fan_out(&a, &m.body, &m.inboxes, m.origin);
            let seen = fanout.as_mut().map(|(_, f)| f.take_seen());
            self.push_offline(m.sender, &m.content, seen.unwrap_or_default());
        }
        Some(Stored {
            fanout,
            sent,
            answer: m.answer,
        })
    }

    /// Live delivery of a stored message: a super group's shared frame to its members online,
    /// a normal group's per-member seqs to every member.
    fn fan_out(
        &mut self,
        a: &Appended,
        body: &str,
        inboxes: &[UserKey],
        origin: Option<u64>,
    ) -> Option<(Arc<Registry>, Fanout)> {
        let registry = self.env.registry.upgrade()?;
        let fanout = if self.state.as_ref()?.is_super {
            let frame = Frame::Spliced(Spliced::with_field(a.id, "group_seq", body), a.first_seq);
            registry.note_relayed(self.key, a.first_seq);
            self.super_fanout(&registry, &frame, origin)?
        } else {
            let parts = Spliced::new(a.id, body);
            let recipients = inboxes.iter().copied().zip(a.seqs.iter().copied());
            deliver_seqs(&registry, recipients, &parts, origin)
        };
        Some((registry, fanout))
    }

    /// Push for the members who are not online (`seen`: the push decisions the fan-out made
    /// for the members with a session): a stream, off this actor's command path.
    fn push_offline(&self, sender: Uid, content: &str, mut seen: Vec<(Uid, PushView)>) {
        if let Some(st) = &self.state {
            seen.sort_unstable_by_key(|(u, _)| *u); // a normal group's fan-out starts with the sender
            self.env.streams.start(GroupPush {
                app: st.app,
                gid: self.gid,
                sender,
                content: content.into(),
                members: st.members.clone(),
                seen,
            });
        }
    }
}
