//! `GroupActor`: one per loaded group, the single writer of its membership and its message
//! order. Every send and every change goes through its mailbox, so a send never races a
//! membership change and all members see one order. It loads lazily from the store, holds
//! members compactly (`Members`), fans messages out itself (`fanout`) and stops when idle.
//!
//! Each command runs to completion (store write, notifications, fan-out) before the next one
//! starts (`AtomicResponse`): a group is sequential, groups run in parallel on the dispatch
//! arbiters.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::fanout::{Fanout, deliver_seqs, deliver_shared};
use super::frame::{self, Body, Kind, Spliced};
use super::members::Members;
use super::outbox::Frame;
use super::registry::Registry;
use super::{DispatchError, Sent};
use crate::config::Limits;
use crate::domain::{AppId, GroupId, Uid, UserKey, now_millis, now_secs};
use crate::push::{PushJob, PushQueue};
use crate::store::{Append, GroupRecord, MemberPatch, Store, StoreError};

/// What a group actor needs from outside.
#[derive(Clone)]
pub struct Env {
    pub store: Store,
    pub push: PushQueue,
    pub registry: Weak<Registry>,
    pub limits: Arc<Limits>,
}

struct GroupState {
    app: AppId,
    name: String,
    master: Uid,
    is_super: bool,
    members: Members,
}

/// A member as given to add/remove requests (name/avatar only travel in notifications).
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub uid: Uid,
    pub name: Option<String>,
    pub avatar: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberView {
    pub uid: Uid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    pub mute: bool,
    pub do_not_disturb: bool,
}

/// GET /groups/{gid}.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub group_id: GroupId,
    pub name: String,
    pub master: Uid,
    #[serde(rename = "super")]
    pub is_super: bool,
    pub members: Vec<MemberView>,
}

/// Commands, all checked against the caller's app (another app's group is "not found").
pub enum GroupCmd {
    Send {
        app: AppId,
        sender: Uid,
        content: String,
        idempotency: Option<String>,
        origin: Option<u64>,
        /// Answered as soon as the message is stored, before the fan-out (SPEC §4.3).
        stored: Option<oneshot::Sender<Sent>>,
    },
    /// A change of the group, or a notification to its members (`change.rs`).
    Change {
        app: AppId,
        change: Change,
    },
    Info {
        app: AppId,
    },
    /// For `sync_group`: is `uid` a member (answered from memory)?
    Member {
        app: AppId,
        uid: Uid,
    },
}

/// What a `GroupCmd::Change` does: each is stored, then announced to the members.
pub enum Change {
    /// A group notification with the given content (app-defined, or `create`).
    Notify {
        content: String,
        idempotency: Option<String>,
    },
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

pub enum GroupReply {
    Sent(Sent),
    /// Members the change applied to (added / removed), or empty.
    Changed(Vec<Uid>),
    Info(GroupView),
    /// `uid` is a member.
    Member,
}

impl Message for GroupCmd {
    type Result = Result<GroupReply, DispatchError>;
}

pub struct GroupActor {
    gid: GroupId,
    generation: u64,
    /// `None` until loaded, and for a group that does not exist.
    state: Option<GroupState>,
    /// Shared by every group actor of the dispatcher (one allocation, not one per group).
    env: Arc<Env>,
    last_active: Instant,
}

type Reply = AtomicResponse<GroupActor, Result<GroupReply, DispatchError>>;

fn done(r: Result<GroupReply, DispatchError>) -> Reply {
    AtomicResponse::new(Box::pin(fut::ready(r)))
}

impl GroupActor {
    pub fn new(gid: GroupId, generation: u64, env: Arc<Env>) -> Self {
        GroupActor {
            gid,
            generation,
            state: None,
            env,
            last_active: Instant::now(),
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

    /// Stores and fans out a group message from `sender` (a member, not muted).
    fn send(
        &mut self,
        app: AppId,
        sender: Uid,
        content: String,
        idem: Option<String>,
        origin: Option<u64>,
        stored: Option<oneshot::Sender<Sent>>,
    ) -> Reply {
        let st = match self.state(app) {
            Ok(st) => st,
            Err(e) => return done(Err(e)),
        };
        match st.members.get(sender) {
            None => return done(Err(DispatchError::NotGroupMember)),
            Some(m) if m.mute => return done(Err(DispatchError::MemberMuted)),
            Some(_) => {}
        }
        let body = self.body(Kind::Group, Some(sender), &content);
        let store = self.env.store.clone();
        let ttl = self.env.limits.idempotency_ttl_secs;
        let gid = self.gid;
        if st.is_super {
            let fut = async move {
                let r = store
                    .append_timeline(gid, &body, idem.as_deref().map(|k| (k, ttl)))
                    .await;
                (r, body)
            };
            return AtomicResponse::new(Box::pin(fut.into_actor(self).then(
                move |(r, body), act, _| {
                    let mut fanout = None;
                    let reply = r.map(|a| {
                        let sent = Sent::of(&a, true);
                        if let Some(tx) = stored {
                            let _ = tx.send(sent);
                        }
                        if !a.replayed {
                            let frame = Frame::Text(
                                Spliced::with_field(a.id, "group_seq", &body).render(a.first_seq),
                            );
                            fanout = act.fan_out_super(&frame, origin, Some((sender, &content)));
                        }
                        GroupReply::Sent(sent)
                    });
                    handed_over(fanout, reply.map_err(Into::into)).into_actor(act)
                },
            )));
        }
        // Normal group: one inbox entry per member, the sender's first (its seq is the ack's).
        let inboxes: Vec<UserKey> = std::iter::once(sender)
            .chain(st.members.uids().filter(|u| *u != sender))
            .map(|u| UserKey::new(app, u))
            .collect();
        let fut = async move {
            let r = store
                .append(&Append {
                    inboxes: &inboxes,
                    body: &body,
                    idempotency: idem.as_deref().map(|k| (k, ttl)),
                })
                .await;
            (r, body, inboxes)
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).then(
            move |(r, body, inboxes), act, _| {
                let mut fanout = None;
                let reply = r.map(|a| {
                    let sent = Sent::of(&a, false);
                    if let Some(tx) = stored {
                        let _ = tx.send(sent);
                    }
                    if !a.replayed {
                        let parts = Spliced::new(a.id, &body);
                        fanout = act.fan_out_normal(
                            &inboxes,
                            &a.seqs,
                            &parts,
                            origin,
                            Some((sender, &content)),
                        );
                    }
                    GroupReply::Sent(sent)
                });
                handed_over(fanout, reply.map_err(Into::into)).into_actor(act)
            },
        )))
    }

    /// Live delivery of a stored normal-group message; push for members not online (the
    /// sender and members with the group on do-not-disturb excepted).
    fn fan_out_normal(
        &self,
        inboxes: &[UserKey],
        seqs: &[u64],
        parts: &Arc<Spliced>,
        origin: Option<u64>,
        push: Option<(Uid, &str)>,
    ) -> Option<(Arc<Registry>, Fanout)> {
        let registry = self.env.registry.upgrade()?;
        let mut offline = Vec::new();
        let recipients = inboxes.iter().copied().zip(seqs.iter().copied());
        let fanout = deliver_seqs(&registry, recipients, parts, origin, |u| {
            offline.push(u.uid)
        });
        if let (Some((sender, content)), Some(st)) = (push, &self.state) {
            // At most a normal group's size: a lookup per offline member is cheap here.
            offline.retain(|u| *u != sender && st.members.get(*u).is_some_and(|m| !m.dnd));
            self.push_group(offline, sender, content);
        }
        Some((registry, fanout))
    }

    /// Live delivery of a stored super-group message, deciding on push in the same walk over
    /// the members (up to a million): offline, not the sender, not on do-not-disturb.
    fn fan_out_super(
        &self,
        frame: &Frame,
        origin: Option<u64>,
        push: Option<(Uid, &str)>,
    ) -> Option<(Arc<Registry>, Fanout)> {
        let (registry, st) = (self.env.registry.upgrade()?, self.state.as_ref()?);
        let sender = push.map(|(s, _)| s);
        let mut receivers = Vec::new();
        let recipients = st.members.iter().map(|m| (UserKey::new(st.app, m.uid), m));
        let fanout = deliver_shared(&registry, recipients, frame, origin, |_, m| {
            if sender.is_some_and(|s| s != m.uid) && !m.dnd {
                receivers.push(m.uid);
            }
        });
        if let Some((sender, content)) = push {
            self.push_group(receivers, sender, content);
        }
        Some((registry, fanout))
    }

    /// One push job for the group's `receivers` (already filtered), if any.
    fn push_group(&self, receivers: Vec<Uid>, sender: Uid, content: &str) {
        let Some(st) = &self.state else {
            return;
        };
        if !receivers.is_empty() {
            self.env.push.submit(PushJob::Group {
                app: st.app,
                sender,
                group_id: self.gid,
                receivers,
                content: content.into(),
                tokens: None,
            });
        }
    }
}

/// Hands a prepared fan-out to the hubs, then yields the command's result: the next command
/// of the group starts only once its predecessor's frames are queued, so order holds.
async fn handed_over(
    fanout: Option<(Arc<Registry>, Fanout)>,
    reply: Result<GroupReply, DispatchError>,
) -> Result<GroupReply, DispatchError> {
    if let Some((registry, fanout)) = fanout {
        fanout.send(&registry).await;
    }
    reply
}

/// Inboxes per store append of a notification: bounds one script's run time (a disbanded
/// super group may be huge).
const NOTIFY_CHUNK: usize = 1000;

/// Delivers a group notification (never pushed): on the timeline for the members of a super
/// group, in the inboxes of everyone else (`extras`: leavers, disbanded members) and of all
/// recipients of a normal group. Returns the message id: one id for the whole notification,
/// wherever and in however many appends it is stored (SPEC §5.2).
async fn notify(
    env: Arc<Env>,
    (app, gid, is_super): (AppId, GroupId, bool),
    members: Arc<[Uid]>,
    extras: Vec<Uid>,
    body: String,
    idempotency: Option<(&str, u64)>,
) -> Result<u64, StoreError> {
    let registry = env.registry.upgrade();
    // Allocated by the first append; every later one stores under it. The idempotency key
    // goes with the first append: a replay there means all of it was sent before.
    let mut id = None;
    let mut idempotency = idempotency;
    if is_super && !members.is_empty() {
        let a = env
            .store
            .append_timeline(gid, &body, idempotency.take())
            .await?;
        if a.replayed {
            return Ok(a.id);
        }
        id = Some(a.id);
        let frame = Frame::Text(Spliced::with_field(a.id, "group_seq", &body).render(a.first_seq));
        if let Some(r) = &registry {
            let recipients = members.iter().map(|u| (UserKey::new(app, *u), ()));
            deliver_shared(r, recipients, &frame, None, |_, ()| {})
                .send(r)
                .await;
        }
    }
    let mut inbox_users: Vec<UserKey> = extras.iter().map(|u| UserKey::new(app, *u)).collect();
    if !is_super {
        inbox_users.extend(
            members
                .iter()
                .filter(|u| !extras.contains(u))
                .map(|u| UserKey::new(app, *u)),
        );
    }
    for chunk in inbox_users.chunks(NOTIFY_CHUNK) {
        let append = Append {
            inboxes: chunk,
            body: &body,
            idempotency: idempotency.take(),
        };
        let a = env.store.append_as(&append, id).await?;
        if a.replayed {
            return Ok(a.id);
        }
        let id = *id.get_or_insert(a.id);
        if let Some(r) = &registry {
            let parts = Spliced::new(id, &body);
            let recipients = chunk.iter().copied().zip(a.seqs.iter().copied());
            deliver_seqs(r, recipients, &parts, None, |_| {})
                .send(r)
                .await;
        }
    }
    Ok(id.unwrap_or(0))
}

impl Actor for GroupActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        metrics::gauge!("imd_group_actors").increment(1.0);
        let store = self.env.store.clone();
        let gid = self.gid;
        ctx.wait(
            async move { store.load_group(gid).await }
                .into_actor(self)
                .map(|r, act, ctx| match r {
                    Ok(Some(record)) => act.state = Some(GroupState::from(record)),
                    Ok(None) => {}
                    Err(e) => {
                        // Unloadable: stop, so the next command starts a fresh load.
                        tracing::warn!(group = %act.gid, error = %e, "group: load failed");
                        ctx.stop();
                    }
                }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("imd_group_actors").decrement(1.0);
        if let Some(r) = self.env.registry.upgrade() {
            r.remove_group(self.gid, self.generation);
        }
    }
}

impl From<GroupRecord> for GroupState {
    fn from(r: GroupRecord) -> Self {
        GroupState {
            app: r.app,
            name: r.name,
            master: r.master,
            is_super: r.is_super,
            members: Members::from_records(r.members),
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

impl Handler<GroupCmd> for GroupActor {
    type Result = Reply;

    fn handle(&mut self, cmd: GroupCmd, ctx: &mut Context<Self>) -> Reply {
        self.last_active = Instant::now();
        match cmd {
            GroupCmd::Send {
                app,
                sender,
                content,
                idempotency,
                origin,
                stored,
            } => self.send(app, sender, content, idempotency, origin, stored),
            GroupCmd::Info { app } => done(
                self.state(app)
                    .map(|st| GroupReply::Info(st.view(self.gid))),
            ),
            GroupCmd::Member { app, uid } => done(self.member(app, uid)),
            GroupCmd::Change { app, change } => self.change(app, change, ctx),
        }
    }
}

impl GroupState {
    fn view(&self, gid: GroupId) -> GroupView {
        GroupView {
            group_id: gid,
            name: self.name.clone(),
            master: self.master,
            is_super: self.is_super,
            members: self
                .members
                .iter()
                .map(|m| MemberView {
                    uid: m.uid,
                    nickname: self.members.nickname(m.uid).map(str::to_string),
                    mute: m.mute,
                    do_not_disturb: m.dnd,
                })
                .collect(),
        }
    }
}

impl GroupActor {
    /// Membership from memory: the group is not held up by a store read for every sync.
    fn member(&mut self, app: AppId, uid: Uid) -> Result<GroupReply, DispatchError> {
        if self.state(app)?.members.contains(uid) {
            Ok(GroupReply::Member)
        } else {
            Err(DispatchError::NotGroupMember)
        }
    }
}

mod change;
