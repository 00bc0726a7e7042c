//! Membership and settings changes of a `GroupActor`, one method each. Every one is stored
//! (with its `group_manager_stream` events, atomically), then applied in memory, then
//! announced with its SPEC §4.2 notification (`finish`, the shared step). A failed store write
//! changes nothing in memory; a notification that cannot be stored after the change is logged
//! (the change itself stands).
//! Adding and removing members is in `membership.rs`.

use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::{Value, json};

use super::commands::Notify;
use super::notice::{Announce, EachNotice, Notice, To};
use super::{GroupActor, GroupState, Reply, done};
use crate::dispatch::frame::Kind;
use crate::dispatch::members::Members;
use crate::dispatch::{DispatchError, Sent};
use crate::domain::{Uid, UserKey};
use crate::store::{GroupEvent, MemberPatch, MemberRecord, StoreError};

impl GroupActor {
    /// The shared step of every change: `op` (the store write) runs with the mailbox held;
    /// on success `apply` updates memory and names the notifications; the caller is answered
    /// (`Apply::applied`), then the notifications are sent, all before the group's next
    /// command. On a store error the actor stops (once it has answered): the next command
    /// loads the group as stored (a big change may have been committed and is then completed
    /// by that load). A group that `apply` found gone stops the same way.
    pub(super) fn finish<T: 'static>(
        &mut self,
        op: impl Future<Output = Result<T, StoreError>> + 'static,
        apply: impl FnOnce(&mut GroupActor, T) -> Option<Announce> + 'static,
        reply: Vec<Uid>,
    ) -> Reply<Vec<Uid>> {
        let early = self.applied.take();
        let fut = op.into_actor(self).then(move |r, act, _| {
            let announce = r.map(|v| apply(act, v));
            if let (Ok(_), Some(tx)) = (&announce, early) {
                let _ = tx.send(reply.clone());
            }
            let env = act.env.clone();
            async move {
                if let Some(a) = announce? {
                    a.send(&env).await;
                }
                Ok(reply)
            }
            .into_actor(act)
        });
        Box::pin(fut.map(|r, act, ctx| {
            if r.is_err() || act.state.is_none() {
                ctx.stop();
            }
            r
        }))
    }

    /// The notifications, with the group as it is now.
    pub(super) fn announce(
        &self,
        notices: Vec<Notice>,
        each: Option<EachNotice>,
    ) -> Option<Announce> {
        let st = self.state.as_ref()?;
        Some(Announce {
            app: st.app,
            gid: self.key,
            is_super: st.is_super,
            members: st.members.clone(),
            notices,
            each,
        })
    }

    pub(super) fn notice(&self, op: &str, fields: Value, to: To) -> Notice {
        Notice::new(
            self.body(Kind::GroupNotification, None, &self.note(op, fields)),
            to,
        )
    }

    pub(super) fn set(&mut self, f: impl FnOnce(&mut GroupState)) {
        self.kept = None; // every change of the state goes through here (`targets.rs`)
        if let Some(st) = &mut self.state {
            f(st);
        }
    }

    /// Members just added to a super group who are online start getting its messages.
    pub(super) fn join_online(&self, uids: impl Iterator<Item = Uid>) {
        let (Some(st), Some(r)) = (&self.state, self.env.registry.upgrade()) else {
            return;
        };
        for uid in uids {
            let user = UserKey::new(st.app, uid);
            r.online.join(self.key, user, || r.connected(user));
        }
    }

    /// The group is gone: forget it (`finish` then stops the actor).
    pub(super) fn gone(&mut self) {
        self.state = None;
        self.kept = None;
        if let Some(r) = self.env.registry.upgrade() {
            r.online.drop_group(self.key);
        }
    }

    /// An app-defined group notification (or `create`) to every member; never pushed.
    pub(super) fn notify(&mut self, cmd: Notify) -> Reply<Sent> {
        let is_super = match self.state(cmd.app) {
            Ok(st) => st.is_super,
            Err(e) => return done(Err(e)),
        };
        let mut notice = Notice::new(
            self.body(Kind::GroupNotification, None, &cmd.content),
            To::Members,
        );
        notice.idempotency = cmd
            .idempotency
            .map(|k| (k, self.env.limits.idempotency_ttl_secs));
        let (env, announce) = (self.env.clone(), self.announce(Vec::new(), None));
        let fut = async move {
            let Some(a) = announce else {
                return Err(DispatchError::GroupNotFound);
            };
            let id = a.deliver(&env, notice).await?;
            Ok(Sent {
                id,
                seq: 0,
                replayed: false,
                timeline: is_super,
            })
        };
        Box::pin(fut.into_actor(self))
    }

    pub(super) fn rename(&mut self, name: String) -> Reply<Vec<Uid>> {
        self.applied = None; // answered with its notification
        let notice = self.notice("update_name", json!({ "name": name }), To::Members);
        let (store, gid, stored) = (self.env.store.clone(), self.key, name.clone());
        let op = async move { store.rename_group(gid, &stored).await };
        self.finish(
            op,
            move |act, ()| {
                act.set(|st| st.name = name);
                act.announce(vec![notice], None)
            },
            Vec::new(),
        )
    }

    pub(super) fn disband(&mut self) -> Reply<Vec<Uid>> {
        self.applied = None; // answered with its notification
        let Some(st) = &self.state else {
            return done(Err(DispatchError::GroupNotFound));
        };
        // Every member gets it in their inbox: the group and its timeline are gone.
        let everyone: Vec<Uid> = st.members.uids().collect();
        let fields = json!({ "group_name": st.name });
        let notice = self.notice("disband", fields, To::Only(everyone));
        let (store, gid) = (self.env.store.clone(), self.key);
        let op = async move { store.delete_group(gid, &[GroupEvent::Disband]).await };
        self.finish(
            op,
            |act, ()| {
                let announce = act.announce(vec![notice], None);
                act.gone();
                announce
            },
            Vec::new(),
        )
    }

    pub(super) fn upgrade(&mut self) -> Reply<Vec<Uid>> {
        self.applied = None; // answered with its notification
        let Some(st) = &self.state else {
            return done(Err(DispatchError::GroupNotFound));
        };
        if st.is_super {
            return done(Ok(Vec::new()));
        }
        // Announced where members already look: their inboxes.
        let fields = json!({ "group_name": st.name, "super": 1 });
        let notice = self.notice("upgrade", fields, To::Inboxes);
        let (store, gid, app) = (self.env.store.clone(), self.key, st.app);
        let op = async move {
            let events = [GroupEvent::Upgrade { app }];
            store.upgrade_group(gid, &events).await
        };
        self.finish(
            op,
            |act, ()| {
                act.set(|st| st.is_super = true);
                let members = act.state.as_ref().map(|st| st.members.clone());
                act.join_online(members.iter().flat_map(|m| m.uids()));
                act.announce(vec![notice], None)
            },
            Vec::new(),
        )
    }

    pub(super) fn update(&mut self, uid: Uid, patch: MemberPatch) -> Reply<Vec<Uid>> {
        self.applied = None; // answered with its notification
        let Some(st) = &self.state else {
            return done(Err(DispatchError::GroupNotFound));
        };
        let Some(current) = st.members.get(uid) else {
            return done(Err(DispatchError::NotGroupMember));
        };
        let notices: Vec<Notice> = patch
            .nickname
            .iter()
            .map(|n| {
                let fields = json!({ "group_name": st.name, "member_id": uid, "nickname": n });
                self.notice("update_member_nickname", fields, To::Members)
            })
            .collect();
        let mut events = Vec::new();
        if let Some(m) = patch.mute.filter(|m| *m != current.mute) {
            events.push(GroupEvent::MemberMute(uid, m));
        }
        let (store, gid) = (self.env.store.clone(), self.key);
        let op = async move {
            let mut rec = store
                .member(gid, uid)
                .await?
                .unwrap_or_else(|| MemberRecord::new(uid, current.joined_at, 0));
            rec.mute = patch.mute.unwrap_or(rec.mute);
            rec.dnd = patch.dnd.unwrap_or(rec.dnd);
            if patch.nickname.is_some() {
                rec.nickname = patch.nickname.clone().filter(|n| !n.is_empty());
            }
            store.update_member(gid, &rec, &events).await?;
            Ok(rec)
        };
        self.finish(
            op,
            move |act, rec| {
                act.set(|st| {
                    let members: &mut Members = Arc::make_mut(&mut st.members);
                    members.set(uid, rec.mute, rec.dnd, rec.nickname.as_deref());
                });
                act.announce(notices, None)
            },
            vec![uid],
        )
    }
}
