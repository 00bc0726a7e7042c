//! The `Dispatcher`'s group side: creating groups, and routing every other group operation to
//! the group's actor (started on demand).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, MailboxError};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::group::{
    Apply, Change, Env, GroupActor, GroupView, Info, IsMember, MemberSpec, Notify, Send, check_size,
};
use super::{DispatchError, Dispatcher, Sent};
use crate::domain::{AppId, GroupId, GroupKey, Uid, UserKey, now_secs};
use crate::store::{GroupRecord, MemberPatch, MemberRecord};

/// The early answer of a command (`Send::stored`, `Apply::applied`), which normally comes
/// first, or else the handler's own result (a refusal, a store error). Dropping `handled` once
/// the early answer is in does not cancel what the actor still does (fan-out, notifications).
async fn early_or_handled<T>(
    early: oneshot::Receiver<T>,
    handled: impl Future<Output = Result<Result<T, DispatchError>, MailboxError>>,
) -> Result<Result<T, DispatchError>, MailboxError> {
    tokio::pin!(handled, early);
    tokio::select! {
        biased;
        answer = &mut early => match answer {
            Ok(answer) => Ok(Ok(answer)),
            Err(_) => handled.await,
        },
        reply = &mut handled => reply,
    }
}

/// POST /groups, validated.
pub struct NewGroup {
    /// 0 = allocate one.
    pub group_id: GroupId,
    pub master: Uid,
    pub name: String,
    pub is_super: bool,
    pub members: Vec<MemberSpec>,
    /// The members exactly as posted, echoed in the `create` notification.
    pub posted_members: Value,
}

impl Dispatcher {
    fn group_env(&self) -> Arc<Env> {
        self.inner.group_env.clone()
    }

    /// Runs `attempt` against the group's actor (started, and the group loaded, on demand). An
    /// actor that was just stopping (its mailbox closed: idle, disbanded, or its load failed)
    /// is forgotten and the attempt runs once more on a fresh one.
    pub(super) async fn on_group<T, Fut>(
        &self,
        gid: GroupKey,
        mut attempt: impl FnMut(Addr<GroupActor>) -> Fut,
    ) -> Result<T, DispatchError>
    where
        Fut: Future<Output = Result<Result<T, DispatchError>, MailboxError>>,
    {
        for _ in 0..2 {
            let env = self.group_env();
            let entry = self
                .inner
                .registry
                .group_or_start(gid, move |generation| GroupActor::new(gid, generation, env));
            match attempt(entry.addr).await {
                Ok(result) => return result,
                Err(MailboxError::Closed) | Err(MailboxError::Timeout) => {
                    self.inner.registry.remove_group(gid, entry.generation);
                    actix_web::rt::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        Err(DispatchError::Store(crate::store::StoreError::Unavailable(
            "group could not be loaded".into(),
        )))
    }

    /// Sends a command to the group's actor and waits for its reply.
    async fn group<M, T>(&self, gid: GroupKey, make: impl Fn() -> M) -> Result<T, DispatchError>
    where
        M: actix::Message<Result = Result<T, DispatchError>> + std::marker::Send + 'static,
        T: std::marker::Send + 'static,
        GroupActor: actix::Handler<M>,
    {
        self.on_group(gid, |addr| addr.send(make())).await
    }

    /// Creates a group (the master is always a member) and announces it to the members.
    pub async fn create_group(&self, app: AppId, g: NewGroup) -> Result<GroupId, DispatchError> {
        let mut uids: Vec<Uid> = g
            .members
            .iter()
            .map(|m| m.uid)
            .chain(std::iter::once(g.master))
            .collect();
        uids.sort_unstable();
        uids.dedup();
        check_size(&self.inner.limits, g.is_super, uids.len(), true)?;
        let now = now_secs();
        let record = GroupRecord {
            id: g.group_id,
            app,
            name: g.name.clone(),
            master: g.master,
            is_super: g.is_super,
            members: uids.iter().map(|u| MemberRecord::new(*u, now, 0)).collect(),
        };
        let gid = self
            .inner
            .store
            .create_group(&record)
            .await?
            .ok_or(DispatchError::GroupIdTaken)?;
        let registry = &self.inner.registry;
        let key = GroupKey::new(app, gid);
        // A command about this id before it existed may have loaded an actor that knows it as
        // "no such group": replaced by one that starts with the group as created.
        registry.forget_group(key);
        let env = self.group_env();
        registry.group_or_start(key, move |generation| {
            GroupActor::created(key, generation, env, record)
        });
        if g.is_super {
            // Stored first (with each member's `user_groups`), then the members online join.
            for uid in uids {
                let user = UserKey::new(app, uid);
                registry.online.join(key, user, || registry.connected(user));
            }
        }
        let note = json!({ "create": {
            "group_id": gid, "master": g.master, "name": g.name,
            "members": g.posted_members, "timestamp": now,
        }});
        let content = note.to_string();
        let notify = || Notify {
            app,
            content: content.clone(),
            idempotency: None,
        };
        if let Err(e) = self.group(key, notify).await {
            tracing::warn!(group = %gid, error = %e, "create notification not sent");
        }
        Ok(gid)
    }

    /// A group message from `sender`: membership and mute are checked by the group's actor.
    /// Answers once the message is stored; the fan-out goes on in the group's actor.
    pub async fn send_group(
        &self,
        app: AppId,
        sender: Uid,
        gid: GroupId,
        content: &str,
        idempotency: Option<String>,
        origin: Option<u64>,
    ) -> Result<Sent, DispatchError> {
        let attempt = || {
            self.on_group(GroupKey::new(app, gid), |addr| {
                let (tx, stored) = oneshot::channel();
                let handled = addr.send(Send {
                    app,
                    sender,
                    content: content.to_string(),
                    idempotency: idempotency.clone(),
                    origin,
                    stored: Some(tx),
                });
                early_or_handled(stored, handled)
            })
        };
        // A copy of the group older than the stored one stores nothing (`StaleGroup`): its
        // actor stops, and the next attempt loads the group as it is now.
        for _ in 0..3 {
            match attempt().await {
                Err(DispatchError::StaleGroup) => continue,
                r => return r,
            }
        }
        Err(DispatchError::StaleGroup)
    }

    /// An app-defined group notification to every member (stored, never pushed).
    pub async fn send_group_notification(
        &self,
        app: AppId,
        gid: GroupId,
        content: &str,
        idempotency: Option<String>,
    ) -> Result<Sent, DispatchError> {
        self.group(GroupKey::new(app, gid), || Notify {
            app,
            content: content.to_string(),
            idempotency: idempotency.clone(),
        })
        .await
    }

    /// A change, answered once it is stored and applied (its notifications follow).
    async fn change(
        &self,
        app: AppId,
        gid: GroupId,
        change: impl Fn() -> Change,
    ) -> Result<Vec<Uid>, DispatchError> {
        self.on_group(GroupKey::new(app, gid), |addr| {
            let (tx, early) = oneshot::channel();
            let handled = addr.send(Apply {
                app,
                change: change(),
                applied: Some(tx),
            });
            early_or_handled(early, handled)
        })
        .await
    }

    pub async fn rename_group(
        &self,
        app: AppId,
        gid: GroupId,
        name: &str,
    ) -> Result<(), DispatchError> {
        self.change(app, gid, || Change::Rename {
            name: name.to_string(),
        })
        .await
        .map(drop)
    }

    pub async fn disband_group(&self, app: AppId, gid: GroupId) -> Result<(), DispatchError> {
        self.change(app, gid, || Change::Disband).await.map(drop)
    }

    pub async fn upgrade_group(&self, app: AppId, gid: GroupId) -> Result<(), DispatchError> {
        self.change(app, gid, || Change::Upgrade).await.map(drop)
    }

    /// Adds members (existing ones are left alone); returns the ones added.
    pub async fn add_members(
        &self,
        app: AppId,
        gid: GroupId,
        members: Vec<MemberSpec>,
        inviter: Option<Value>,
    ) -> Result<Vec<Uid>, DispatchError> {
        self.change(app, gid, || Change::Add {
            members: members.clone(),
            inviter: inviter.clone(),
        })
        .await
    }

    /// Removes members; returns the ones that were members. A leaving master hands over to
    /// the longest-standing member who stays; a group its last members leave is disbanded.
    pub async fn remove_members(
        &self,
        app: AppId,
        gid: GroupId,
        members: Vec<MemberSpec>,
    ) -> Result<Vec<Uid>, DispatchError> {
        self.change(app, gid, || Change::Remove {
            members: members.clone(),
        })
        .await
    }

    pub async fn update_member(
        &self,
        app: AppId,
        gid: GroupId,
        uid: Uid,
        patch: MemberPatch,
    ) -> Result<(), DispatchError> {
        self.change(app, gid, || Change::Update {
            uid,
            patch: patch.clone(),
        })
        .await
        .map(drop)
    }

    /// The group with up to `limit` of its members with a uid above `after`.
    pub async fn group_info(
        &self,
        app: AppId,
        gid: GroupId,
        after: u64,
        limit: usize,
    ) -> Result<GroupView, DispatchError> {
        self.group(GroupKey::new(app, gid), || Info { app, after, limit })
            .await
    }

    /// A super group's timeline after `after` for a member (from their join on):
    /// (stored records, the last `group_seq` covered, more to come).
    pub async fn sync_group(
        &self,
        user: UserKey,
        gid: GroupId,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<String>, u64, bool), DispatchError> {
        let key = GroupKey::new(user.app, gid);
        self.group(key, || IsMember {
            app: user.app,
            uid: user.uid,
        })
        .await?;
        // The join seq is read here, not in the group actor, which would wait for it. Gone
        // since the check: the member has just left.
        let join_seq = self
            .inner
            .store
            .member(key, user.uid)
            .await?
            .ok_or(DispatchError::NotGroupMember)?
            .join_seq;
        let from = after.max(join_seq);
        let records = self.inner.store.timeline_after(key, from, limit).await?;
        let last = records
            .last()
            .and_then(|r| crate::store::stored_seq(r))
            .unwrap_or(from);
        let more = records.len() == limit;
        Ok((records, last, more))
    }
}
