//! What a `GroupActor` is asked, one message type per command, each with its own reply type;
//! all checked against the caller's app (another app's group is "not found").

use std::time::Instant;

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::oneshot;

use super::view::GroupView;
use super::{GroupActor, Reply, done};
use crate::dispatch::{DispatchError, Sent};
use crate::domain::{AppId, Uid};
use crate::store::MemberPatch;

/// A member as given to add/remove requests (name/avatar only travel in notifications).
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub uid: Uid,
    pub name: Option<String>,
    pub avatar: Option<String>,
}

/// A group message from `sender` (a member, not muted): stored, then fanned out.
pub struct Send {
    pub app: AppId,
    pub sender: Uid,
    pub content: String,
    pub idempotency: Option<String>,
    /// The sending connection (ws sends), which gets an `ack` instead.
    pub origin: Option<u64>,
    /// Answered as soon as the message is stored, before the fan-out (SPEC §4.3).
    pub stored: Option<oneshot::Sender<Sent>>,
}

impl Message for Send {
    type Result = Result<Sent, DispatchError>;
}

/// A group notification with the given content (app-defined, or `create`), to the members.
pub struct Notify {
    pub app: AppId,
    pub content: String,
    pub idempotency: Option<String>,
}

impl Message for Notify {
    type Result = Result<Sent, DispatchError>;
}

/// A change of the group: stored, applied, then announced (`change.rs`). Answers the members
/// it applied to (added / removed), or none.
pub struct Apply {
    pub app: AppId,
    pub change: Change,
    /// For a change announced by a summary (more members than
    /// `limits.member_notification_threshold`): answered as soon as it is stored and applied,
    /// before the summary goes out (to 10,000 members online it is a lot of bytes to queue).
    pub applied: Option<oneshot::Sender<Vec<Uid>>>,
}

pub enum Change {
    Rename {
        name: String,
    },
    Disband,
    Add {
        members: Vec<MemberSpec>,
        inviter: Option<Value>,
    },
    Remove {
        members: Vec<MemberSpec>,
    },
    Upgrade,
    Update {
        uid: Uid,
        patch: MemberPatch,
    },
}

impl Message for Apply {
    type Result = Result<Vec<Uid>, DispatchError>;
}

/// GET /groups/{gid}: the group with a page of its members.
pub struct Info {
    pub app: AppId,
    /// Members with a uid above this (0: from the first).
    pub after: u64,
    pub limit: usize,
}

impl Message for Info {
    type Result = Result<GroupView, DispatchError>;
}

/// For `sync_group`: is `uid` a member (answered from memory)?
pub struct IsMember {
    pub app: AppId,
    pub uid: Uid,
}

impl Message for IsMember {
    type Result = Result<(), DispatchError>;
}

/// The result of a command that runs in turn (`batch::in_turn`).
type InTurn<T> = AtomicResponse<GroupActor, Result<T, DispatchError>>;

impl Handler<Send> for GroupActor {
    type Result = ResponseFuture<Result<Sent, DispatchError>>;
    fn handle(&mut self, cmd: Send, ctx: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        if self.state.as_ref().is_some_and(|st| st.ver.is_none()) && self.env.store.node().is_some()
        {
            // Created here from the request, version unknown: sends need a copy whose
            // version the store can check (`send.rs`), so the next attempt loads one.
            ctx.stop();
            return Box::pin(std::future::ready(Err(DispatchError::StaleGroup)));
        }
        self.queue(cmd, ctx)
    }
}

impl Handler<Notify> for GroupActor {
    type Result = InTurn<Sent>;
    fn handle(&mut self, cmd: Notify, _: &mut Context<Self>) -> InTurn<Sent> {
        self.last_active = Instant::now();
        self.in_turn(move |act| act.notify(cmd))
    }
}

impl Handler<Apply> for GroupActor {
    type Result = InTurn<Vec<Uid>>;
    fn handle(&mut self, cmd: Apply, _: &mut Context<Self>) -> InTurn<Vec<Uid>> {
        self.last_active = Instant::now();
        self.in_turn(move |act| act.apply(cmd))
    }
}

impl GroupActor {
    fn apply(&mut self, cmd: Apply) -> Reply<Vec<Uid>> {
        if let Err(e) = self.state(cmd.app) {
            return done(Err(e));
        }
        // Taken by `finish` for a big add or remove (`membership.rs`); any other change answers
        // once its notifications are out, as a small one always did.
        self.applied = cmd.applied;
        let reply = match cmd.change {
            Change::Rename { name } => self.rename(name),
            Change::Disband => self.disband(),
            Change::Add { members, inviter } => self.add(members, inviter),
            Change::Remove { members } => self.remove(members),
            Change::Upgrade => self.upgrade(),
            Change::Update { uid, patch } => self.update(uid, patch),
        };
        self.applied = None;
        reply
    }
}

/// Reads answer at once, from memory: they need no turn.
impl Handler<Info> for GroupActor {
    type Result = Result<GroupView, DispatchError>;
    fn handle(&mut self, cmd: Info, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        self.state(cmd.app)
            .map(|st| st.view(self.gid, cmd.after, cmd.limit))
    }
}

impl Handler<IsMember> for GroupActor {
    type Result = Result<(), DispatchError>;
    /// From memory: the group is not held up by a store read for every sync.
    fn handle(&mut self, cmd: IsMember, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        self.state(cmd.app)
            .and_then(|st| match st.members.contains(cmd.uid) {
                true => Ok(()),
                false => Err(DispatchError::NotGroupMember),
            })
    }
}
