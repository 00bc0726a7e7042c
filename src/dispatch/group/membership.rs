//! Adding and removing members: checked, stored (any number, all or nothing: see
//! `store/redis/members.rs`), applied, then announced through `finish` (`change.rs`).
//!
//! A change of more than `limits.member_notification_threshold` members is announced with one
//! summary listing them (`add_members` / `quit_members`) instead of one notification each —
//! so a 100,000-member change costs one timeline entry and one delivery per member online,
//! not 100,000 of each — and every leaver then gets a `quit_group` of its own in its inbox.
//! A leaving master hands over to the longest-standing member who stays; the last members'
//! leaving disbands the group.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::commands::MemberSpec;
use super::notice::{EachNotice, Notice, To};
use super::{GroupActor, GroupState, Reply, check_size, done};
use crate::dispatch::DispatchError;
use crate::domain::{Uid, UserKey, now_secs};
use crate::store::{GroupEvent, MemberRecord};

/// A member's name/avatar for a notification, when given.
fn describe(mut fields: Value, spec: &MemberSpec) -> Value {
    if let Some(n) = &spec.name {
        fields["name"] = json!(n);
    }
    if let Some(a) = &spec.avatar {
        fields["avatar"] = json!(a);
    }
    fields
}

/// Stands for the member id in a notification sent to each leaver (`EachNotice`).
const MEMBER_MARK: &str = "\u{1}member\u{1}";

/// Specs of distinct uids (the first of each) that pass `keep`, in the order given.
fn distinct(specs: Vec<MemberSpec>, keep: impl Fn(Uid) -> bool) -> Vec<MemberSpec> {
    let mut seen = HashSet::with_capacity(specs.len());
    specs
        .into_iter()
        .filter(|s| keep(s.uid) && seen.insert(s.uid))
        .collect()
}

impl GroupActor {
    pub(super) fn add(
        &mut self,
        specs: Vec<MemberSpec>,
        inviter: Option<Value>,
    ) -> Reply<Vec<Uid>> {
        let Some(st) = &self.state else {
            return done(Err(DispatchError::GroupNotFound));
        };
        let fresh = distinct(specs, |u| !st.members.contains(u));
        let size = st.members.len() + fresh.len();
        if let Err(e) = check_size(&self.env.limits, st.is_super, size, false) {
            return done(Err(e));
        }
        if fresh.is_empty() {
            return done(Ok(Vec::new()));
        }
        if fresh.len() <= self.env.limits.member_notification_threshold {
            self.applied = None; // a small change is answered with its notifications
        }
        let added: Vec<Uid> = fresh.iter().map(|s| s.uid).collect();
        let notices = self.add_notices(st, &fresh, inviter);
        let (store, gid, is_super, uids) =
            (self.env.store.clone(), self.key, st.is_super, added.clone());
        let op = async move {
            // A super group's new members sync its timeline from here on.
            let join_seq = match is_super {
                true => store.timeline_seq(gid).await?,
                false => 0,
            };
            let now = now_secs();
            let records: Vec<MemberRecord> = uids
                .iter()
                .map(|u| MemberRecord::new(*u, now, join_seq))
                .collect();
            store.add_members(gid, &records).await?;
            Ok(records)
        };
        self.finish(
            op,
            move |act, records| {
                act.set(|st| st.members = Arc::new(st.members.merged(&records)));
                if is_super {
                    act.join_online(records.iter().map(|r| r.uid));
                }
                act.announce(notices, None)
            },
            added,
        )
    }

    /// `add_member` each, or one `add_members` summary past the threshold.
    fn add_notices(
        &self,
        st: &GroupState,
        fresh: &[MemberSpec],
        inviter: Option<Value>,
    ) -> Vec<Notice> {
        let with_inviter = |mut fields: Value| {
            if let Some(inv) = &inviter {
                fields["inviter"] = inv.clone();
            }
            fields
        };
        if fresh.len() > self.env.limits.member_notification_threshold {
            let ids: Vec<Uid> = fresh.iter().map(|s| s.uid).collect();
            let fields = json!({ "group_name": st.name, "member_ids": ids, "count": ids.len() });
            return vec![self.notice("add_members", with_inviter(fields), To::Members)];
        }
        fresh
            .iter()
            .map(|s| {
                let fields = describe(json!({ "group_name": st.name, "member_id": s.uid }), s);
                self.notice("add_member", with_inviter(fields), To::Members)
            })
            .collect()
    }

    pub(super) fn remove(&mut self, specs: Vec<MemberSpec>) -> Reply<Vec<Uid>> {
        let Some(st) = &self.state else {
            return done(Err(DispatchError::GroupNotFound));
        };
        let gone = distinct(specs, |u| st.members.contains(u));
        if gone.is_empty() {
            return done(Ok(Vec::new()));
        }
        if gone.len() <= self.env.limits.member_notification_threshold {
            self.applied = None; // a small change is answered with its notifications
        }
        let removed: Vec<Uid> = gone.iter().map(|s| s.uid).collect();
        if removed.len() == st.members.len() {
            return self.last_leave(gone);
        }
        // A leaving master hands over to the longest-standing member who stays.
        let master = removed
            .contains(&st.master)
            .then(|| st.members.successor(&removed))
            .flatten();
        let (notices, each) = self.quit_notices(st, &gone, master);
        let (store, gid, is_super, uids) = (
            self.env.store.clone(),
            self.key,
            st.is_super,
            removed.clone(),
        );
        let op = async move {
            store
                .remove_members(gid, &uids, master)
                .await
                .map(|()| uids)
        };
        self.finish(
            op,
            move |act, uids| {
                act.set(|st| {
                    Arc::make_mut(&mut st.members).remove(&uids);
                    st.master = master.unwrap_or(st.master);
                });
                if let (true, Some(r), Some(st)) =
                    (is_super, act.env.registry.upgrade(), &act.state)
                {
                    for uid in &uids {
                        r.online.leave(act.key, UserKey::new(st.app, *uid));
                    }
                }
                act.announce(notices, each)
            },
            removed,
        )
    }

    /// The last members leave: the group is disbanded; each leaver hears of its own leaving.
    fn last_leave(&mut self, gone: Vec<MemberSpec>) -> Reply<Vec<Uid>> {
        let removed: Vec<Uid> = gone.iter().map(|s| s.uid).collect();
        let (notices, each) = match self.state.as_ref() {
            Some(st) => self.quit_notices(st, &gone, None),
            None => return done(Err(DispatchError::GroupNotFound)),
        };
        // Nobody stays to read a timeline: every notice goes to its leaver's inbox only.
        let notices = notices
            .into_iter()
            .map(|n| match n.to {
                To::MembersAnd(leavers) => Notice::new(n.body, To::Only(leavers)),
                _ => Notice::new(n.body, To::Only(Vec::new())),
            })
            .collect();
        let (store, gid) = (self.env.store.clone(), self.key);
        let op = async move { store.delete_group(gid, &[GroupEvent::Disband]).await };
        self.finish(
            op,
            |act, ()| {
                let announce = act.announce(notices, each);
                act.gone();
                announce
            },
            removed,
        )
    }

    /// `quit_group` each (to the members and its leaver), or one `quit_members` summary to
    /// the members past the threshold plus a `quit_group` to each leaver. The master's
    /// successor, if the master leaves, is named as `new_master`.
    fn quit_notices(
        &self,
        st: &GroupState,
        gone: &[MemberSpec],
        master: Option<Uid>,
    ) -> (Vec<Notice>, Option<EachNotice>) {
        let with_master = |mut fields: Value, about: Option<Uid>| {
            if let Some(m) = master.filter(|_| about.is_none_or(|u| u == st.master)) {
                fields["new_master"] = json!(m);
            }
            fields
        };
        if gone.len() <= self.env.limits.member_notification_threshold {
            let notices = gone
                .iter()
                .map(|s| {
                    let fields = describe(json!({ "group_name": st.name, "member_id": s.uid }), s);
                    let fields = with_master(fields, Some(s.uid));
                    self.notice("quit_group", fields, To::MembersAnd(vec![s.uid]))
                })
                .collect();
            return (notices, None);
        }
        let ids: Vec<Uid> = gone.iter().map(|s| s.uid).collect();
        let fields = json!({ "group_name": st.name, "member_ids": ids, "count": ids.len() });
        let summary = self.notice("quit_members", with_master(fields, None), To::Members);
        let fields = json!({ "group_name": st.name, "member_id": MEMBER_MARK });
        let body = self.notice("quit_group", fields, To::Members).body;
        // The mark as it appears in the body: a JSON string inside the escaped content.
        let mark = serde_json::to_string(&serde_json::to_string(MEMBER_MARK).unwrap_or_default())
            .unwrap_or_default();
        let mark = mark
            .get(1..mark.len().saturating_sub(1))
            .unwrap_or_default();
        let each = body.rsplit_once(mark).map(|(head, tail)| EachNotice {
            head: head.to_string(),
            tail: tail.to_string(),
            users: ids,
        });
        (vec![summary], each)
    }
}
