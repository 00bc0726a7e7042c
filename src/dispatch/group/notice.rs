//! The notification step every change ends with (SPEC §4.2): store a group notification where
//! its recipients read it and deliver it live. Never pushed.
//!
//! A super group's notification goes once on its timeline and live to its members online; a
//! normal group's into every member's inbox. Users no longer in the group (leavers, the
//! members of a disbanded group) get it in their inbox. One notification has one message id
//! wherever and in however many appends it is stored (SPEC §5.2).

use std::collections::HashSet;
use std::sync::Arc;

use super::Env;
use crate::dispatch::fanout::{deliver_seqs, deliver_shared};
use crate::dispatch::frame::Spliced;
use crate::dispatch::members::Members;
use crate::dispatch::outbox::Frame;
use crate::domain::{AppId, GroupKey, Uid, UserKey};
use crate::store::{Append, AppendEach, StoreError};

/// Inboxes per store append of a notification: bounds one script's run time (a disbanded
/// super group may be huge).
const CHUNK: usize = 1000;

/// Who gets a notification.
pub(super) enum To {
    /// The members, the group's way: a super group's timeline, a normal group's inboxes.
    Members,
    /// The members, and these users in their inboxes (leavers), under the same id.
    MembersAnd(Vec<Uid>),
    /// Every member in their inbox, whatever the kind (an upgrade: where they look so far).
    Inboxes,
    /// Only these users, in their inboxes (a disbanded group's members).
    Only(Vec<Uid>),
}

pub(super) struct Notice {
    /// The stored body (`frame::body`) of the notification.
    pub body: String,
    pub to: To,
    /// Namespaced key and TTL: a retry stores and delivers nothing again.
    pub idempotency: Option<(String, u64)>,
}

impl Notice {
    pub fn new(body: String, to: To) -> Notice {
        Notice {
            body,
            to,
            idempotency: None,
        }
    }
}

/// One notification per user, each naming its user: the body is `head`, the uid, `tail`
/// (`AppendEach`). For the leavers of a change announced by a summary.
pub(super) struct EachNotice {
    pub head: String,
    pub tail: String,
    pub users: Vec<Uid>,
}

/// The notifications of one change, with the group as it is after the change.
pub(super) struct Announce {
    pub app: AppId,
    pub gid: GroupKey,
    pub is_super: bool,
    pub members: Arc<Members>,
    pub notices: Vec<Notice>,
    pub each: Option<EachNotice>,
}

impl Announce {
    /// Sends everything; a notification that cannot be stored is logged and counted (the
    /// change itself stands). The group's own notifications are sent before this returns (the
    /// group's next command comes after them); the leavers' `EachNotice` — inbox appends for
    /// users no longer in the group, as many as the change removed — goes on in a task of
    /// its own, so a big removal is answered without waiting for it.
    pub async fn send(mut self, env: &Arc<Env>) {
        let notices = std::mem::take(&mut self.notices);
        for notice in notices {
            logged(self.deliver(env, notice).await.map(drop));
        }
        if let Some(each) = self.each.take() {
            let env = env.clone();
            actix::spawn(async move { logged(self.deliver_each(&env, &each).await) });
        }
    }

    /// Stores and delivers one notification; its message id.
    pub async fn deliver(&self, env: &Env, notice: Notice) -> Result<u64, StoreError> {
        let registry = env.registry.upgrade();
        let (app, gid) = (self.app, self.gid);
        let (group_way, extras, all_inboxes) = match notice.to {
            To::Members => (true, Vec::new(), false),
            To::MembersAnd(extras) => (true, extras, false),
            To::Inboxes => (false, Vec::new(), true),
            To::Only(extras) => (false, extras, false),
        };
        let body = &notice.body;
        // Allocated by the first append; every later one stores under it. The idempotency key
        // goes with the first append: a replay there means all of it was sent before.
        let (mut id, mut idempotency) = (None, notice.idempotency.as_ref());
        if group_way && self.is_super && !self.members.is_empty() {
            let a = env
                .store
                .append_timeline(gid, body, idem(idempotency.take()))
                .await?;
            if a.replayed {
                return Ok(a.id);
            }
            id = Some(a.id);
            if let Some(r) = &registry {
                let frame =
                    Frame::Spliced(Spliced::with_field(a.id, "group_seq", body), a.first_seq);
                let online = r.online.snapshot(gid);
                let recipients = self.members.present(&online).map(|u| UserKey::new(app, u));
                r.note_relayed(gid, a.first_seq);
                deliver_shared(r, recipients, &frame, None).send(r).await;
            }
        }
        let mut inboxes: Vec<UserKey> = extras.iter().map(|u| UserKey::new(app, *u)).collect();
        if (group_way && !self.is_super) || all_inboxes {
            let extras: HashSet<Uid> = extras.into_iter().collect();
            inboxes.extend(
                self.members
                    .uids()
                    .filter(|u| !extras.contains(u))
                    .map(|u| UserKey::new(app, u)),
            );
        }
        for chunk in inboxes.chunks(CHUNK) {
            let append = Append {
                inboxes: chunk,
                body,
                idempotency: idem(idempotency.take()),
            };
            let a = env.store.append_as(&append, id).await?;
            if a.replayed {
                return Ok(a.id);
            }
            let id = *id.get_or_insert(a.id);
            if let Some(r) = &registry {
                let parts = Spliced::new(id, body);
                let recipients = chunk.iter().copied().zip(a.seqs.iter().copied());
                deliver_seqs(r, recipients, &parts, None).send(r).await;
            }
        }
        Ok(id.unwrap_or(0))
    }

    /// Stores one copy per user (its own id) and delivers it to those online.
    async fn deliver_each(&self, env: &Env, each: &EachNotice) -> Result<(), StoreError> {
        let registry = env.registry.upgrade();
        for chunk in each.users.chunks(CHUNK) {
            let inboxes: Vec<UserKey> = chunk.iter().map(|u| UserKey::new(self.app, *u)).collect();
            let append = AppendEach {
                inboxes: &inboxes,
                head: &each.head,
                tail: &each.tail,
            };
            let stored = env.store.append_each(&append).await?;
            let Some(r) = &registry else { continue };
            for (user, (id, seq)) in inboxes.iter().zip(stored) {
                r.with_session(*user, |s| {
                    let body = format!("{}{}{}", each.head, user.uid, each.tail);
                    s.deliver_seq(seq, &Frame::Spliced(Spliced::new(id, &body), seq), None);
                });
            }
        }
        Ok(())
    }
}

fn idem(i: Option<&(String, u64)>) -> Option<(&str, u64)> {
    i.map(|(k, ttl)| (k.as_str(), *ttl))
}

/// A notification that could not be stored after its change was: logged, counted.
fn logged(r: Result<(), StoreError>) {
    if let Err(e) = r {
        metrics::counter!("imd_group_notifications_failed_total").increment(1);
        tracing::warn!(error = %e, "group notification not stored");
    }
}
