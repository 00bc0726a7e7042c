//! Membership and settings changes of a `GroupActor`: each one is stored (with its
//! `group_manager_stream` events, atomically), then announced with its SPEC §4.2 notification,
//! then applied in memory. A failed store write changes nothing; a notification that cannot
//! be stored after the change is logged (the change itself stands).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::json;

use super::{Change, GroupActor, GroupReply, MemberSpec, Reply, done, notify};
use crate::dispatch::frame::Kind;
use crate::dispatch::{DispatchError, Sent};
use crate::domain::{AppId, Uid, now_secs};
use crate::store::{GroupEvent, MemberRecord, StoreError};

/// A member's name/avatar for a notification, when given.
fn describe(mut fields: serde_json::Value, spec: &MemberSpec) -> serde_json::Value {
    if let Some(n) = &spec.name {
        fields["name"] = json!(n);
    }
    if let Some(a) = &spec.avatar {
        fields["avatar"] = json!(a);
    }
    fields
}

impl GroupActor {
    /// Runs `op` (the store write, then notifications) with the mailbox held; on success applies
    /// the change in memory and answers `reply`.
    fn finish<T: 'static>(
        &mut self,
        op: impl Future<Output = Result<T, StoreError>> + 'static,
        apply: impl FnOnce(&mut GroupActor, &mut Context<GroupActor>, T) + 'static,
        reply: GroupReply,
    ) -> Reply {
        AtomicResponse::new(Box::pin(op.into_actor(self).map(move |r, act, ctx| {
            apply(act, ctx, r?);
            Ok(reply)
        })))
    }

    pub(super) fn change(&mut self, app: AppId, change: Change, _: &mut Context<Self>) -> Reply {
        let st = match self.state(app) {
            Ok(st) => st,
            Err(e) => return done(Err(e)),
        };
        // The member list is copied (`recipients`) only by the commands that announce
        // something, once their checks have passed.
        let is_super = st.is_super;
        let recipients = || -> Arc<[Uid]> { st.members.uids().collect() };
        let (gid, env, group_name) = (self.gid, self.env.clone(), st.name.clone());
        let store = env.store.clone();
        let key = (app, gid, is_super);
        match change {
            Change::Notify {
                content,
                idempotency,
            } => {
                let body = self.body(Kind::GroupNotification, None, &content);
                let (ttl, members) = (env.limits.idempotency_ttl_secs, recipients());
                let fut = async move {
                    let idem = idempotency.as_deref().map(|k| (k, ttl));
                    notify(env, key, members, Vec::new(), body, idem).await
                };
                AtomicResponse::new(Box::pin(fut.into_actor(self).map(move |r, _, _| {
                    let id = r?;
                    Ok(GroupReply::Sent(Sent {
                        id,
                        seq: 0,
                        replayed: false,
                        timeline: is_super,
                    }))
                })))
            }
            Change::Rename { name } => {
                let body = self.body(
                    Kind::GroupNotification,
                    None,
                    &self.note("update_name", json!({ "name": name })),
                );
                let new_name = name.clone();
                let members = recipients();
                let op = async move {
                    store.rename_group(gid, &name).await?;
                    announce(notify(env, key, members, Vec::new(), body, None).await);
                    Ok(())
                };
                self.finish(
                    op,
                    move |act, _, ()| act.set(|st| st.name = new_name),
                    GroupReply::Changed(Vec::new()),
                )
            }
            Change::Disband => {
                let note = self.note("disband", json!({ "group_name": group_name }));
                let body = self.body(Kind::GroupNotification, None, &note);
                let everyone: Vec<Uid> = st.members.uids().collect();
                let op = async move {
                    store.delete_group(gid, &[GroupEvent::Disband]).await?;
                    // Every member gets it in their inbox: the group and its timeline are gone.
                    announce(
                        notify(
                            env,
                            (app, gid, false),
                            Arc::from(Vec::new()),
                            everyone,
                            body,
                            None,
                        )
                        .await,
                    );
                    Ok(())
                };
                self.finish(
                    op,
                    |act, ctx, ()| {
                        act.state = None;
                        ctx.stop();
                    },
                    GroupReply::Changed(Vec::new()),
                )
            }
            Change::Upgrade if is_super => done(Ok(GroupReply::Changed(Vec::new()))),
            Change::Upgrade => {
                let note = self.note("upgrade", json!({ "group_name": group_name, "super": 1 }));
                let body = self.body(Kind::GroupNotification, None, &note);
                let members = recipients();
                let op = async move {
                    store
                        .upgrade_group(gid, &[GroupEvent::Upgrade { app }])
                        .await?;
                    // Announced where members already look: their inboxes.
                    announce(notify(env, (app, gid, false), members, Vec::new(), body, None).await);
                    Ok(())
                };
                self.finish(
                    op,
                    |act, _, ()| act.set(|st| st.is_super = true),
                    GroupReply::Changed(Vec::new()),
                )
            }
            Change::Add {
                members: specs,
                inviter,
            } => {
                // New uids, each once (its first spec), in the order given.
                let mut seen = HashSet::with_capacity(specs.len());
                let fresh: Vec<MemberSpec> = specs
                    .into_iter()
                    .filter(|s| !st.members.contains(s.uid) && seen.insert(s.uid))
                    .collect();
                let limits = &self.env.limits;
                let limit = if is_super {
                    limits.super_group_members
                } else {
                    limits.normal_group_members
                };
                if st.members.len() + fresh.len() > limit {
                    let hint = if is_super {
                        ""
                    } else {
                        "; upgrade it to a super group for more"
                    };
                    return done(Err(DispatchError::GroupTooLarge(format!(
                        "a {} group holds at most {limit} members{hint}",
                        if is_super { "super" } else { "normal" }
                    ))));
                }
                if fresh.is_empty() {
                    return done(Ok(GroupReply::Changed(Vec::new())));
                }
                let added: Vec<Uid> = fresh.iter().map(|s| s.uid).collect();
                let bodies: Vec<String> = fresh
                    .iter()
                    .map(|s| {
                        let mut fields =
                            describe(json!({ "group_name": group_name, "member_id": s.uid }), s);
                        if let Some(inv) = &inviter {
                            fields["inviter"] = inv.clone();
                        }
                        self.body(
                            Kind::GroupNotification,
                            None,
                            &self.note("add_member", fields),
                        )
                    })
                    .collect();
                let events: Vec<GroupEvent> =
                    added.iter().map(|u| GroupEvent::MemberAdd(*u)).collect();
                let after: Arc<[Uid]> = st.members.uids().chain(added.iter().copied()).collect();
                let uids = added.clone();
                let op = async move {
                    let join_seq = if is_super {
                        store.timeline_seq(gid).await?
                    } else {
                        0
                    };
                    let now = now_secs();
                    let records: Vec<MemberRecord> = uids
                        .iter()
                        .map(|u| MemberRecord::new(*u, now, join_seq))
                        .collect();
                    store.add_members(gid, &records, &events).await?;
                    for body in bodies {
                        announce(
                            notify(env.clone(), key, after.clone(), Vec::new(), body, None).await,
                        );
                    }
                    Ok(records)
                };
                self.finish(
                    op,
                    |act, _, records| act.set(|st| st.members.insert(&records)),
                    GroupReply::Changed(added),
                )
            }
            Change::Remove { members: specs } => {
                // Members to remove, each once (its first spec), in the order given.
                let mut seen = HashSet::with_capacity(specs.len());
                let gone: Vec<MemberSpec> = specs
                    .into_iter()
                    .filter(|s| st.members.contains(s.uid) && seen.insert(s.uid))
                    .collect();
                if gone.iter().any(|s| s.uid == st.master) {
                    return done(Err(DispatchError::MasterCannotLeave));
                }
                if gone.is_empty() {
                    return done(Ok(GroupReply::Changed(Vec::new())));
                }
                let removed: Vec<Uid> = gone.iter().map(|s| s.uid).collect();
                let notes: Vec<(Uid, String)> = gone
                    .iter()
                    .map(|s| {
                        let fields =
                            describe(json!({ "group_name": group_name, "member_id": s.uid }), s);
                        (
                            s.uid,
                            self.body(
                                Kind::GroupNotification,
                                None,
                                &self.note("quit_group", fields),
                            ),
                        )
                    })
                    .collect();
                let events: Vec<GroupEvent> = removed
                    .iter()
                    .map(|u| GroupEvent::MemberRemove(*u))
                    .collect();
                let remaining: Arc<[Uid]> =
                    st.members.uids().filter(|u| !seen.contains(u)).collect();
                let uids = removed.clone();
                let op = async move {
                    store.remove_members(gid, &uids, &events).await?;
                    for (leaver, body) in notes {
                        announce(
                            notify(
                                env.clone(),
                                key,
                                remaining.clone(),
                                vec![leaver],
                                body,
                                None,
                            )
                            .await,
                        );
                    }
                    Ok(uids)
                };
                self.finish(
                    op,
                    |act, _, uids| {
                        act.set(|st| {
                            st.members.remove(&uids);
                        })
                    },
                    GroupReply::Changed(removed),
                )
            }
            Change::Update { uid, patch } => {
                let Some(current) = st.members.get(uid) else {
                    return done(Err(DispatchError::NotGroupMember));
                };
                let nickname_note = patch.nickname.as_ref().map(|n| {
                    let fields =
                        json!({ "group_name": group_name, "member_id": uid, "nickname": n });
                    let note = self.note("update_member_nickname", fields);
                    (
                        self.body(Kind::GroupNotification, None, &note),
                        recipients(),
                    )
                });
                let mut events = Vec::new();
                if let Some(m) = patch.mute.filter(|m| *m != current.mute) {
                    events.push(GroupEvent::MemberMute(uid, m));
                }
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
                    store.update_member(app, gid, &rec, &events).await?;
                    if let Some((body, members)) = nickname_note {
                        announce(notify(env, key, members, Vec::new(), body, None).await);
                    }
                    Ok(rec)
                };
                self.finish(
                    op,
                    move |act, _, rec| {
                        act.set(|st| {
                            st.members
                                .set(uid, rec.mute, rec.dnd, rec.nickname.as_deref())
                        })
                    },
                    GroupReply::Changed(vec![uid]),
                )
            }
        }
    }

    fn set(&mut self, f: impl FnOnce(&mut super::GroupState)) {
        if let Some(st) = &mut self.state {
            f(st);
        }
    }
}

/// A notification that could not be stored after its change was: logged, counted.
fn announce(r: Result<u64, StoreError>) {
    if let Err(e) = r {
        metrics::counter!("imd_group_notifications_failed_total").increment(1);
        tracing::warn!(error = %e, "group notification not stored");
    }
}
