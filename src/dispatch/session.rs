//! `UserSession`: one actor per user with live connections or recent traffic.
//!
//! It owns the user's connection list (platform, device id, outbox), do-not-disturb peers,
//! `mute` and bound push tokens — loaded lazily from the store when it starts and reloaded when
//! the users API changes them — and decides per message whether to deliver to connections
//! and/or create a push job (SPEC §6). It is the only writer of `SessionShared`, the
//! read-mostly view that group fan-out reads directly so a 10,000-member fan-out does not send
//! 10,000 actor messages. It stops itself when idle.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::outbox::{CloseReason, Frame, Outbox};
use super::registry::Registry;
use crate::domain::{DeviceToken, Platform, Uid, UserKey, now_millis};
use crate::push::{PushJob, PushQueue};
use crate::store::Store;

/// One live connection as the session and fan-out see it.
#[derive(Clone)]
pub struct ConnRef {
    pub id: u64,
    pub platform: Platform,
    pub outbox: Arc<Outbox>,
    /// The hub (worker thread) this connection's socket task runs on.
    pub hub: usize,
    /// Counted in the store's location of the user (`Store::connect_here`), so other nodes
    /// route the user's messages here: taken off again when the connection goes.
    pub announced: Arc<AtomicBool>,
}

/// Bumped after every change of what fan-out reads from any session (connections, `mute`,
/// settings) and when a session is dropped or started: a fan-out prepared at one value is
/// still exact while it holds (`group/targets.rs`). Read before preparing, bumped after
/// writing, so a preparation that read the old value ran before the change was complete —
/// as if it had run before the change, which the session's sync after it covers.
static EPOCH: AtomicU64 = AtomicU64::new(1);

/// The current sessions epoch (see `EPOCH`).
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

/// Something fan-out reads from a session changed (see `EPOCH`).
pub(super) fn changed() {
    EPOCH.fetch_add(1, Ordering::SeqCst);
}

/// What fan-out may read without messaging the actor.
#[derive(Default)]
pub struct SessionShared {
    /// Live connections; written only by the session actor.
    conns: RwLock<Arc<[ConnRef]>>,
    /// The user's `mute`: a desktop/web connection counts as online for push only while set.
    mute: AtomicBool,
    /// Do-not-disturb peers and device tokens; `None` until loaded. Written by the actor.
    settings: RwLock<Option<Arc<Settings>>>,
    /// When a message last came through (ms since the epoch): keeps a busy session loaded.
    last_active_ms: AtomicU64,
}

impl SessionShared {
    /// The current connections (a cheap snapshot).
    pub fn conns(&self) -> Arc<[ConnRef]> {
        self.conns
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set_conns(&self, conns: Vec<ConnRef>) {
        let conns: Arc<[ConnRef]> = conns.into();
        match self.conns.write() {
            Ok(mut c) => *c = conns,
            Err(p) => *p.into_inner() = conns,
        }
        changed();
    }

    /// SPEC §6: online for push when any iOS/Android connection is open, or a desktop/web one
    /// while the user's `mute` is on.
    fn online_in(&self, conns: &[ConnRef]) -> bool {
        let mute = self.mute.load(Ordering::Relaxed);
        conns.iter().any(|c| c.platform.is_mobile() || mute)
    }

    /// Queues a stored message on every connection except `exclude`. Returns deliveries made
    /// and whether the user counts as online for push — from one snapshot of the connections.
    pub fn deliver_seq(&self, seq: u64, frame: &Frame, exclude: Option<u64>) -> (usize, bool) {
        let conns = self.conns();
        let n = conns
            .iter()
            .filter(|c| Some(c.id) != exclude && c.outbox.push_seq(seq, frame.clone()))
            .count();
        (n, self.online_in(&conns))
    }

    /// Adds this user's connections (except `exclude`) to per-hub target lists, for a fan-out
    /// that delivers through the hubs. Returns targets added and online-for-push, from one
    /// look at the connections.
    pub fn collect_targets(
        &self,
        seq: u64,
        exclude: Option<u64>,
        batches: &mut Vec<Vec<(u64, u64)>>,
    ) -> (usize, bool) {
        // Under the read lock, without cloning: nothing here touches a connection's own state.
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for c in conns.iter().filter(|c| Some(c.id) != exclude) {
            if c.hub >= batches.len() {
                batches.resize_with(c.hub + 1, Vec::new); // a hub started after the count
            }
            batches[c.hub].push((c.id, seq));
            n += 1;
        }
        (n, self.online_in(&conns))
    }

    /// Queues a frame outside the inbox seq order (super-group messages, notifications) on
    /// every connection except `exclude`; deliveries made and online-for-push, as above.
    pub fn deliver_except(&self, frame: &Frame, exclude: Option<u64>) -> (usize, bool) {
        let conns = self.conns();
        let n = conns
            .iter()
            .filter(|c| Some(c.id) != exclude && c.outbox.push(frame.clone()))
            .count();
        (n, self.online_in(&conns))
    }
}

/// What a group's push stream needs to know about a member with a loaded session (SPEC §6),
/// from memory.
#[derive(Clone)]
pub enum PushView {
    /// Online for push: no job.
    Online,
    /// Known to have no device token bound: no job.
    NoTokens,
    /// Offline for push, with these tokens (newest first).
    Tokens(Vec<DeviceToken>),
    /// Offline for push; the settings are not loaded (yet).
    Unknown,
}

impl SessionShared {
    /// Has at least one live connection (the online index's notion of online).
    pub fn has_conns(&self) -> bool {
        !self.conns().is_empty()
    }

    /// The push decision for a group message, without a store read.
    pub fn push_view(&self) -> PushView {
        self.push_view_given(self.online_in(&self.conns()))
    }

    /// `push_view`, with online-for-push already known (the fan-out just looked).
    pub fn push_view_given(&self, online: bool) -> PushView {
        if online {
            return PushView::Online;
        }
        match self.settings() {
            None => PushView::Unknown,
            Some(s) if s.tokens.is_empty() => PushView::NoTokens,
            Some(s) => PushView::Tokens(s.tokens.clone()),
        }
    }
}

/// Settings loaded from the store.
#[derive(Default)]
struct Settings {
    dnd_peers: HashSet<Uid>,
    tokens: Vec<DeviceToken>,
    /// May not speak in chat rooms.
    forbidden: bool,
}

impl SessionShared {
    fn settings(&self) -> Option<Arc<Settings>> {
        self.settings
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The user's `forbidden` (no speaking in rooms); `None` while the settings are not
    /// loaded — also right after the users API changed them, until they are reloaded.
    pub fn forbidden(&self) -> Option<bool> {
        self.settings().map(|s| s.forbidden)
    }

    fn set_settings(&self, settings: Settings) {
        let settings = Some(Arc::new(settings));
        match self.settings.write() {
            Ok(mut s) => *s = settings,
            Err(p) => *p.into_inner() = settings,
        }
        changed(); // after `mute` too, which is stored just before
    }

    /// Delivers a message for this user and makes the push decision (SPEC §6). `None` when a
    /// push decision is needed but the settings are not loaded and `defaults` is not allowed:
    /// the caller then goes through the session actor, which loads them. With `defaults`, an
    /// unloadable user is pushed to (better a push too many than a lost one).
    pub fn handle(&self, msg: &Deliver, push: &PushQueue, defaults: bool) -> Option<usize> {
        let settings = self.settings();
        if settings.is_none() && msg.push.is_some() && !defaults {
            return None;
        }
        self.last_active_ms.store(now_millis(), Ordering::Relaxed);
        let (delivered, online) = match msg.seq {
            Some(seq) => self.deliver_seq(seq, &msg.frame, msg.exclude),
            None => self.deliver_except(&msg.frame, msg.exclude),
        };
        metrics::counter!("imd_deliveries_total").increment(delivered as u64);
        if let Some(intent) = &msg.push
            && !online
            && !msg.elsewhere
        {
            let (job, dnd_from) = match intent {
                PushIntent::Peer { from, job } => (job, Some(*from)),
                PushIntent::Always(job) => (job, None),
            };
            let muted = dnd_from.is_some_and(|from| {
                settings
                    .as_ref()
                    .is_some_and(|s| s.dnd_peers.contains(&from))
            });
            // A user known to have no device token gets no job (unknown: the worker looks).
            let tokenless = settings.as_ref().is_some_and(|s| s.tokens.is_empty());
            if !muted && !tokenless {
                push.submit(with_tokens(
                    job.clone(),
                    settings.as_ref().map(|s| &s.tokens),
                ));
            }
        }
        Some(delivered)
    }
}

pub struct UserSession {
    user: UserKey,
    /// Identifies this incarnation in the registry (a newer one may replace it).
    generation: u64,
    shared: Arc<SessionShared>,
    conns: Vec<ConnRef>,
    store: Store,
    push: PushQueue,
    registry: Weak<Registry>,
    idle_after: Duration,
    last_active: Instant,
}

impl UserSession {
    pub fn new(
        user: UserKey,
        generation: u64,
        shared: Arc<SessionShared>,
        store: Store,
        push: PushQueue,
        registry: Weak<Registry>,
        idle_after: Duration,
    ) -> Self {
        UserSession {
            user,
            generation,
            shared,
            conns: Vec::new(),
            store,
            push,
            registry,
            idle_after,
            last_active: Instant::now(),
        }
    }

    /// Loads settings, holding the mailbox until done so no decision uses stale defaults.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let user = self.user;
        ctx.wait(
            async move { store.load_user(user).await }
                .into_actor(self)
                .map(|res, act, _| match res {
                    Ok(record) => {
                        act.shared.mute.store(record.mute, Ordering::Relaxed);
                        act.shared.set_settings(Settings {
                            dnd_peers: record.dnd_peers.into_iter().collect(),
                            tokens: record.device_tokens,
                            forbidden: record.forbidden,
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "session: could not load user settings"),
                }),
        );
    }

    fn publish_conns(&self) {
        self.shared.set_conns(self.conns.clone());
    }

    /// Without connections the user is no longer online for any group's fan-out.
    fn leave_groups_if_offline(&self) {
        if self.conns.is_empty()
            && let Some(registry) = self.registry.upgrade()
        {
            registry.online.leave_all(self.user);
        }
    }
}

impl Actor for UserSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        metrics::gauge!("imd_sessions").increment(1.0);
        self.load(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("imd_sessions").decrement(1.0);
        if let Some(registry) = self.registry.upgrade() {
            // Not `online.leave_all`: a stopping session has no connections (their last
            // `Disconnect` left the groups), and a newer session may have entered them since.
            registry.remove_session(self.user, self.generation);
        }
        for c in &self.conns {
            c.outbox.close(CloseReason::GoingAway, "session ended");
        }
    }
}

/// The registry's periodic sweep: a session without connections or traffic stops.
impl Handler<super::registry::Sweep> for UserSession {
    type Result = ();
    fn handle(&mut self, _: super::registry::Sweep, ctx: &mut Context<Self>) {
        let busy_ms =
            now_millis().saturating_sub(self.shared.last_active_ms.load(Ordering::Relaxed));
        let idle = self
            .last_active
            .elapsed()
            .min(Duration::from_millis(busy_ms));
        if self.conns.is_empty() && idle >= self.idle_after {
            ctx.stop();
        }
    }
}

/// A new connection joins the session, unless the user already holds the maximum (`.1`).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Connect(pub ConnRef, pub usize);

impl Handler<Connect> for UserSession {
    type Result = bool;
    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> bool {
        self.last_active = Instant::now();
        if self.conns.len() >= msg.1 {
            return false;
        }
        self.conns.push(msg.0);
        self.publish_conns();
        true
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect(pub u64);

impl Handler<Disconnect> for UserSession {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.last_active = Instant::now();
        if let Some(gone) = self.conns.iter().find(|c| c.id == msg.0)
            && gone.announced.swap(false, Ordering::Relaxed)
        {
            let (store, user, platform) = (self.store.clone(), self.user, gone.platform);
            actix::spawn(async move {
                if let Err(e) = store.disconnect_here(user, platform).await {
                    tracing::warn!(error = %e, "connection not taken off the user's location");
                }
            });
        }
        self.conns.retain(|c| c.id != msg.0);
        self.publish_conns();
        self.leave_groups_if_offline();
    }
}

/// What to do for a recipient who is not online (SPEC §6).
#[derive(Clone)]
pub enum PushIntent {
    /// Push unless the receiver has do-not-disturb for `from`.
    Peer { from: Uid, job: PushJob },
    /// Push (system and customer messages).
    Always(PushJob),
}

/// A message for this user: a stored one (with its inbox seq) or an unstored notification.
#[derive(Message, Clone)]
#[rtype(result = "usize")]
pub struct Deliver {
    pub frame: Frame,
    /// Inbox seq; `None` for notifications.
    pub seq: Option<u64>,
    /// The sending connection, which gets an `ack` instead.
    pub exclude: Option<u64>,
    pub push: Option<PushIntent>,
    /// The user counts as online for push on another node (`Appended::elsewhere`).
    pub elsewhere: bool,
}

impl Handler<Deliver> for UserSession {
    type Result = usize;

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) -> usize {
        self.last_active = Instant::now();
        if self.shared.settings().is_none() && msg.push.is_some() {
            // The load failed; try again for later messages, decide this one now.
            self.load(ctx);
        }
        self.shared.handle(&msg, &self.push, true).unwrap_or(0)
    }
}

fn with_tokens(mut job: PushJob, known: Option<&Vec<DeviceToken>>) -> PushJob {
    if let Some(known) = known {
        match &mut job {
            PushJob::Peer { tokens, .. }
            | PushJob::System { tokens, .. }
            | PushJob::Customer { tokens, .. } => *tokens = Some(known.clone()),
            PushJob::Group { .. } => {}
        }
    }
    job
}

/// The users API changed this user's settings: reload them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload;

impl Handler<Reload> for UserSession {
    type Result = ();
    fn handle(&mut self, _: Reload, ctx: &mut Context<Self>) {
        // Until the new settings are in, deliveries come through this mailbox (behind the load)
        // instead of the published view, so nothing is decided on the old settings.
        match self.shared.settings.write() {
            Ok(mut s) => *s = None,
            Err(p) => *p.into_inner() = None,
        }
        changed();
        self.load(ctx);
    }
}

/// Close every connection (token revoked, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll(pub CloseReason, pub &'static str);

impl Handler<CloseAll> for UserSession {
    type Result = ();
    fn handle(&mut self, msg: CloseAll, _: &mut Context<Self>) {
        for c in &self.conns {
            c.outbox.close(msg.0, msg.1);
        }
    }
}
