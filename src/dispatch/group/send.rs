//! A group message: stored (a super group's timeline, or every member's inbox), answered, fanned
//! out live — for a super group to its members online only (`online.rs`) — then handed to a
//! push stream for the offline members (`push_stream.rs`), which runs off the command path.

use std::sync::Arc;

use actix::prelude::*;

use super::commands::Send;
use super::{GroupActor, Reply, done};
use crate::dispatch::fanout::{Fanout, deliver_seqs};
use crate::dispatch::frame::{Kind, Spliced};
use crate::dispatch::outbox::Frame;
use crate::dispatch::push_stream::GroupPush;
use crate::dispatch::registry::Registry;
use crate::dispatch::session::PushView;
use crate::dispatch::{DispatchError, Sent};
use crate::domain::{Uid, UserKey};
use crate::store::{Append, Appended};

impl GroupActor {
    pub(super) fn send(&mut self, cmd: Send) -> Reply<Sent> {
        let st = match self.state(cmd.app) {
            Ok(st) => st,
            Err(e) => return done(Err(e)),
        };
        match st.members.get(cmd.sender) {
            None => return done(Err(DispatchError::NotGroupMember)),
            Some(m) if m.mute => return done(Err(DispatchError::MemberMuted)),
            Some(_) => {}
        }
        let body = self.body(Kind::Group, Some(cmd.sender), &cmd.content);
        let store = self.env.store.clone();
        let idem = cmd
            .idempotency
            .map(|k| (k, self.env.limits.idempotency_ttl_secs));
        let (gid, is_super, ver) = (self.key, st.is_super, st.ver);
        // A normal group: one inbox entry per member, the sender's first (its seq is the ack's).
        let inboxes: Vec<UserKey> = match is_super {
            true => Vec::new(),
            false => std::iter::once(cmd.sender)
                .chain(st.members.uids().filter(|u| *u != cmd.sender))
                .map(|u| UserKey::new(cmd.app, u))
                .collect(),
        };
        let fut = async move {
            let idem = idem.as_ref().map(|(k, ttl)| (k.as_str(), *ttl));
            // Stored only if the group is still as this copy has it (`ver`): a change made
            // through another node whose announcement is late or lost never lets a message
            // reach a removed member or miss an added one.
            let r = match (is_super, ver) {
                (true, _) => store.append_timeline_in_group(gid, &body, idem, ver).await,
                (false, v) => {
                    let append = Append {
                        inboxes: &inboxes,
                        body: &body,
                        idempotency: idem,
                    };
                    match v {
                        Some(v) => store.append_in_group(&append, gid, v).await,
                        None => store.append(&append).await,
                    }
                }
            };
            (r, body, inboxes)
        };
        let (sender, content, origin, stored) = (cmd.sender, cmd.content, cmd.origin, cmd.stored);
        AtomicResponse::new(Box::pin(fut.into_actor(self).then(
            move |(r, body, inboxes), act, ctx| {
                let mut fanout = None;
                let reply = match r {
                    Ok(a) if a.stale => {
                        // Stopped, so the caller's retry loads the group as stored.
                        ctx.stop();
                        Err(DispatchError::StaleGroup)
                    }
                    r => r.map_err(Into::into).map(|a| {
                        let sent = Sent::of(&a, is_super);
                        if let Some(tx) = stored {
                            let _ = tx.send(sent);
                        }
                        if !a.replayed {
                            fanout = act.fan_out(&a, &body, &inboxes, origin);
                            let seen = fanout.as_mut().map(|(_, f)| f.take_seen());
                            act.push_offline(sender, &content, seen.unwrap_or_default());
                        }
                        sent
                    }),
                };
                handed_over(fanout, reply).into_actor(act)
            },
        )))
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

/// Hands a prepared fan-out to the hubs, then yields the command's result: the next command
/// of the group starts only once its predecessor's frames are queued, so order holds.
async fn handed_over(
    fanout: Option<(Arc<Registry>, Fanout)>,
    reply: Result<Sent, DispatchError>,
) -> Result<Sent, DispatchError> {
    if let Some((registry, fanout)) = fanout {
        fanout.send(&registry).await;
    }
    reply
}
