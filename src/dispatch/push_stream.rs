//! Push for a group message's offline members, produced as a stream off the send path.
//!
//! After the live fan-out the group actor hands a `GroupPush` — the message, a snapshot of its
//! member table (an `Arc`, shared with the actor until the membership next changes) and the
//! push decisions the fan-out made for the members it found a session for — to `PushStreams`
//! and goes on with its next command. A task then walks the members and makes jobs of at most
//! `GROUP_JOB_RECEIVERS`: not the sender, not do-not-disturb, not online for push (SPEC §6),
//! and not a user whose loaded session says they have no device token (or, connected to
//! another node, whom the store found without one: `tokenless.rs`). The fan-out's decisions
//! are merged in (two sorted lists), so the members online cost no second look at their
//! sessions (whose locks the live fan-out's threads use). For a user with a loaded session the
//! decision and the tokens come from memory (`PushView`); for
//! the others the webhook and log sinks get the tokens with one store read per job, and the
//! redis sink gets none (GoBelieve's push daemon reads them itself). Each job waits for room in
//! the push worker's window (`PushQueue::submit_streamed`), so a million members are never
//! all queued at once.
//!
//! Bounded: `RUNNING` streams work at once, over every group; up to `QUEUED` more wait their
//! turn, each holding the message and its snapshot. Past that a message gets no push; it is
//! counted (`imd_push_jobs_dropped_total{reason="streams_full"}`) and logged once per burst.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::Semaphore;

use super::members::Members;
use super::registry::Registry;
use super::session::PushView;
use crate::domain::{AppId, DeviceToken, GroupId, Uid, UserKey};
use crate::push::{GROUP_JOB_RECEIVERS, PushJob, PushQueue};
use crate::store::Store;
use crate::store::cluster::Presence;

/// Streams producing jobs at once (the push worker is one thread: more would only queue).
const RUNNING: usize = 2;

/// Streams waiting for their turn; each holds its message (≤ `limits.content`).
const QUEUED: usize = 256;

/// Members looked at between two yields to the thread's other tasks (~0.1 ms of work).
const YIELD_EVERY: usize = 2048;

/// One group message to push to its offline members.
pub struct GroupPush {
    pub app: AppId,
    pub gid: GroupId,
    pub sender: Uid,
    pub content: Arc<str>,
    /// The members when the message was sent.
    pub members: Arc<Members>,
    /// The push decisions the live fan-out made for the members it found a session for,
    /// ascending by uid: used without a second look at those sessions.
    pub seen: Vec<(Uid, PushView)>,
}

/// The streams of every group of one dispatcher.
pub struct PushStreams {
    push: PushQueue,
    store: Store,
    registry: Weak<Registry>,
    running: Arc<Semaphore>,
    /// Streams started and not finished (running or waiting).
    pending: Arc<AtomicUsize>,
}

/// Gives a stream's place back when its task ends, however it ends.
struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PushStreams {
    pub fn new(push: PushQueue, store: Store, registry: Weak<Registry>) -> PushStreams {
        PushStreams {
            push,
            store,
            registry,
            running: Arc::new(Semaphore::new(RUNNING)),
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Starts pushing `job` on the current thread, behind the streams already waiting.
    pub fn start(&self, job: GroupPush) {
        if !self.push.enabled() {
            return;
        }
        if self.pending.fetch_add(1, Ordering::Relaxed) >= RUNNING + QUEUED {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.push.dropped("streams_full", 1);
            return;
        }
        let pending = Pending(self.pending.clone());
        let (running, stream) = (self.running.clone(), self.stream());
        actix::spawn(async move {
            let _pending = pending;
            if let Ok(_turn) = running.acquire_owned().await {
                stream.run(job).await;
            }
        });
    }

    fn stream(&self) -> Stream {
        Stream {
            push: self.push.clone(),
            store: self.store.clone(),
            registry: self.registry.clone(),
        }
    }
}

struct Stream {
    push: PushQueue,
    store: Store,
    registry: Weak<Registry>,
}

/// The receivers of the job being filled, with their tokens when known.
#[derive(Default)]
struct Batch {
    uids: Vec<Uid>,
    tokens: Vec<Option<Vec<DeviceToken>>>,
}

impl Stream {
    async fn run(&self, job: GroupPush) {
        let mut batch = Batch::default();
        let mut seen = job.seen.iter().peekable();
        for (i, m) in job.members.iter().enumerate() {
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                tokio::task::yield_now().await;
            }
            while seen.next_if(|(u, _)| *u < m.uid).is_some() {}
            let known = seen.next_if(|(u, _)| *u == m.uid).map(|(_, v)| v.clone());
            if m.uid == job.sender || m.dnd {
                continue;
            }
            let view = match known {
                Some(v) => v,
                None => {
                    let Some(registry) = self.registry.upgrade() else {
                        return; // shutting down
                    };
                    let user = UserKey::new(job.app, m.uid);
                    match registry.with_session(user, |s| s.push_view()) {
                        Some(v) => v,
                        None if registry.tokenless.knows(user) => PushView::NoTokens,
                        None => PushView::Unknown,
                    }
                }
            };
            match view {
                PushView::Online | PushView::NoTokens => continue,
                PushView::Tokens(t) => batch.push(m.uid, Some(t)),
                PushView::Unknown => batch.push(m.uid, None),
            }
            if batch.uids.len() == GROUP_JOB_RECEIVERS && !self.send(&job, &mut batch).await {
                return;
            }
        }
        self.send(&job, &mut batch).await;
    }

    /// Submits the batch as one job (after looking up unknown tokens if the sink wants them);
    /// false once the push worker is gone.
    async fn send(&self, job: &GroupPush, batch: &mut Batch) -> bool {
        let Batch {
            mut uids,
            mut tokens,
        } = std::mem::take(batch);
        self.offline_everywhere(job.app, &mut uids, &mut tokens)
            .await;
        let tokens = if self.push.needs_tokens() {
            let (kept, tokens) = self.resolve(job.app, uids, tokens).await;
            uids = kept;
            Some(tokens)
        } else {
            None
        };
        if uids.is_empty() {
            return true;
        }
        self.push
            .submit_streamed(PushJob::Group {
                app: job.app,
                sender: job.sender,
                group_id: job.gid,
                receivers: uids,
                content: job.content.clone(),
                tokens,
            })
            .await
    }

    /// Keeps the receivers that are not online for push on another node either, and drops
    /// (and remembers: `tokenless.rs`) those connected there without a device token — one
    /// store read per job, only when this node shares the store with others. A failed read
    /// keeps them all: a push too many rather than one lost.
    async fn offline_everywhere(
        &self,
        app: AppId,
        uids: &mut Vec<Uid>,
        tokens: &mut Vec<Option<Vec<DeviceToken>>>,
    ) {
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        if self.store.node().is_none() || uids.is_empty() {
            return;
        }
        let users: Vec<UserKey> = uids.iter().map(|u| UserKey::new(app, *u)).collect();
        let epoch = registry.tokenless.epoch();
        match self.store.group_push_presence(&users).await {
            Ok(found) if found.len() == uids.len() => {
                let tokenless = users
                    .iter()
                    .zip(&found)
                    .filter(|(_, p)| **p == Presence::Tokenless)
                    .map(|(u, _)| *u);
                registry.tokenless.learn(epoch, tokenless);
                let mut keep = found.iter().map(|p| *p == Presence::Offline);
                let mut keep2 = found.iter().map(|p| *p == Presence::Offline);
                uids.retain(|_| keep.next().unwrap_or(true));
                tokens.retain(|_| keep2.next().unwrap_or(true));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "push: presence on other nodes not read"),
        }
    }

    /// Fills in the tokens not known from memory (one store read) and keeps the receivers
    /// that have any. A failed read pushes them without tokens rather than not at all.
    async fn resolve(
        &self,
        app: AppId,
        uids: Vec<Uid>,
        mut tokens: Vec<Option<Vec<DeviceToken>>>,
    ) -> (Vec<Uid>, Vec<Vec<DeviceToken>>) {
        let wanted: Vec<UserKey> = uids
            .iter()
            .zip(&tokens)
            .filter(|(_, t)| t.is_none())
            .map(|(u, _)| UserKey::new(app, *u))
            .collect();
        if !wanted.is_empty() {
            match self.store.device_tokens(&wanted).await {
                Ok(found) => {
                    let mut found = found.into_iter();
                    for t in tokens.iter_mut().filter(|t| t.is_none()) {
                        *t = Some(found.next().unwrap_or_default());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "push: could not load device tokens"),
            }
        }
        uids.into_iter()
            .zip(tokens)
            .filter_map(|(u, t)| match t {
                Some(t) if t.is_empty() => None,
                t => Some((u, t.unwrap_or_default())),
            })
            .unzip()
    }
}

impl Batch {
    fn push(&mut self, uid: Uid, tokens: Option<Vec<DeviceToken>>) {
        self.uids.push(uid);
        self.tokens.push(tokens);
    }
}
