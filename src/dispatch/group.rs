//! `GroupActor`: one per loaded group, the single writer of its membership and its message
//! order. Every send and every change goes through its mailbox, so a send never races a
//! membership change and all members see one order. It loads lazily from the store (a page of
//! members at a time, commands waiting meanwhile), holds members compactly (`Members`), fans
//! messages out itself (`send.rs`), hands push to a stream (`push_stream.rs`) and stops when
//! idle.
//!
//! Each command runs to completion (store write, notifications, fan-out) before the next one
//! starts (`AtomicResponse`): a group is sequential, groups run in parallel on the dispatch
//! arbiters. Sends that arrive together are stored together, in one round-trip, and keep
//! their place among the other commands (`batch.rs`). The commands and their replies are in
//! `commands.rs`.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{Value, json};

use super::DispatchError;
use super::frame::{self, Body, Kind};
use super::members::{Members, MembersBuilder};
use super::push_stream::PushStreams;
use super::registry::Registry;
use crate::config::Limits;
use crate::domain::{AppId, GroupId, GroupKey, Uid, now_millis, now_secs};
use crate::store::{GroupRecord, Store, StoreError};

mod batch;
mod change;
mod commands;
mod membership;
mod notice;
mod relay;
mod send;
mod targets;
mod view;

pub use self::commands::{Apply, Change, Info, IsMember, MemberSpec, Notify, Send};
pub use self::relay::Relay;
pub use self::view::{GroupView, MemberView};

/// What a group actor needs from outside.
pub struct Env {
    pub store: Store,
    pub registry: Weak<Registry>,
    pub limits: Arc<Limits>,
    /// Push for offline members, off the send path (shared by every group).
    pub streams: PushStreams,
}

struct GroupState {
    app: AppId,
    name: String,
    master: Uid,
    is_super: bool,
    /// Shared with the push streams of recent messages; a change copies it if one still runs.
    members: Arc<Members>,
    /// The stored group's `ver` when this copy was loaded (`None`: not read, a group this
    /// node just created). Sends store only while it is current (`send.rs`).
    ver: Option<u64>,
}

pub struct GroupActor {
    gid: GroupId,
    /// `gid` with its app: the key of the stored group and of the registry's entry.
    key: GroupKey,
    generation: u64,
    /// `None` until loaded, and for a group that does not exist.
    state: Option<GroupState>,
    /// Shared by every group actor of the dispatcher (one allocation, not one per group).
    env: Arc<Env>,
    last_active: Instant,
    /// The early answer of the `Apply` being handled, for `finish` to take.
    applied: Option<tokio::sync::oneshot::Sender<Vec<Uid>>>,
    /// A super group's last fan-out targets, for the next message (`group/targets.rs`).
    kept: Option<Box<targets::Kept>>,
    /// Sends taken from the mailbox, to be stored together (`group/batch.rs`).
    queued: VecDeque<batch::Queued>,
}

/// A command's reply, computed with the mailbox held (`batch::in_turn` wraps it).
type Reply<T> = ResponseActFuture<GroupActor, Result<T, DispatchError>>;

fn done<T: 'static>(r: Result<T, DispatchError>) -> Reply<T> {
    Box::pin(fut::ready(r))
}

/// The member limit of a group of this kind, in one place: `members` after the change.
pub fn check_size(
    limits: &Limits,
    is_super: bool,
    members: usize,
    creating: bool,
) -> Result<(), DispatchError> {
    let (kind, limit) = match is_super {
        true => ("super", limits.super_group_members),
        false => ("normal", limits.normal_group_members),
    };
    if members <= limit {
        return Ok(());
    }
    let hint = match (is_super, creating) {
        (true, _) => "",
        (false, true) => "; create a super group (\"super\": true) for more",
        (false, false) => "; upgrade it to a super group for more",
    };
    Err(DispatchError::GroupTooLarge(format!(
        "{members} members, but a {kind} group holds at most {limit}{hint}"
    )))
}

impl GroupActor {
    pub fn new(key: GroupKey, generation: u64, env: Arc<Env>) -> Self {
        GroupActor {
            gid: key.id,
            key,
            generation,
            state: None,
            env,
            last_active: Instant::now(),
            applied: None,
            kept: None,
            queued: VecDeque::new(),
        }
    }

    /// An actor for a group just created from `record`: it starts with the members it was
    /// given instead of reading them back.
    pub fn created(key: GroupKey, generation: u64, env: Arc<Env>, record: GroupRecord) -> Self {
        let mut members = MembersBuilder::default();
        members.extend(record.members);
        GroupActor {
            state: Some(GroupState {
                app: record.app,
                name: record.name,
                master: record.master,
                is_super: record.is_super,
                members: Arc::new(members.finish()),
                ver: None,
            }),
            ..GroupActor::new(key, generation, env)
        }
    }

    fn state(&self, app: AppId) -> Result<&GroupState, DispatchError> {
        match &self.state {
            Some(s) if s.app == app => Ok(s),
            _ => Err(DispatchError::GroupNotFound),
        }
    }

    fn body(&self, kind: Kind, sender: Option<Uid>, content: &str) -> String {
        frame::body(&Body {
            apps: None,
            device_tag: None,
            msgid: None,
            kind,
            sender,
            receiver: self.gid.0,
            group_id: Some(self.gid),
            content,
            timestamp: now_millis(),
        })
    }

    /// The timestamped JSON of a SPEC §4.2 notification: `{"<op>": {group_id, …, timestamp}}`.
    fn note(&self, op: &str, mut fields: Value) -> String {
        fields["group_id"] = json!(self.gid);
        fields["timestamp"] = json!(now_secs());
        json!({ op: fields }).to_string()
    }
}

/// Reads the group's record, then its members a page at a time.
async fn load(store: Store, gid: GroupKey) -> Result<Option<GroupState>, StoreError> {
    // Read first: a change between this and the members makes the copy look older than it
    // is, which costs a reload at the next send, never a message to the wrong members.
    let ver = store.group_version(gid).await?;
    let Some(meta) = store.group_meta(gid).await? else {
        return Ok(None);
    };
    let mut members = MembersBuilder::default();
    store
        .load_members(&meta, |page| members.extend(page))
        .await?;
    Ok(Some(GroupState {
        app: meta.app,
        name: meta.name,
        master: meta.master,
        is_super: meta.is_super,
        members: Arc::new(members.finish()),
        ver: Some(ver),
    }))
}

impl Actor for GroupActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        metrics::gauge!("imd_group_actors").increment(1.0);
        if self.state.is_some() {
            return; // `created`
        }
        // The mailbox is held until the group is in: commands sent meanwhile wait, not fail.
        ctx.wait(load(self.env.store.clone(), self.key).into_actor(self).map(
            |r, act, ctx| match r {
                Ok(state) => {
                    act.state = state;
                    act.kept = None;
                }
                Err(e) => {
                    // Unloadable: stop, so the next command starts a fresh load.
                    tracing::warn!(group = %act.gid, error = %e, "group: load failed");
                    ctx.stop();
                }
            },
        ));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("imd_group_actors").decrement(1.0);
        if let Some(r) = self.env.registry.upgrade() {
            r.remove_group(self.key, self.generation);
        }
    }
}

/// The registry's periodic sweep: an idle actor stops (a group that does not exist sooner).
impl Handler<super::registry::Sweep> for GroupActor {
    type Result = ();
    fn handle(&mut self, _: super::registry::Sweep, ctx: &mut Context<Self>) {
        let idle = Duration::from_secs(self.env.limits.actor_idle_secs);
        let limit = if self.state.is_some() {
            idle
        } else {
            idle.min(Duration::from_secs(5))
        };
        if self.last_active.elapsed() >= limit {
            ctx.stop();
        }
    }
}
