//! Where actors live: the session registry (dashmap) and the dispatch arbiters, one per core,
//! that actors are spread over by hash so both cores do dispatch work; and who is online in
//! which super group (`online.rs`).

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::{Addr, ArbiterHandle};
use dashmap::DashMap;

use super::conn_threads::ConnThreads;
use super::group::GroupActor;
use super::hub::Hubs;
use super::online::OnlineIndex;
use super::session::{SessionShared, UserSession};
use crate::domain::{GroupKey, UserKey};

/// A loaded session: its mailbox and the view fan-out reads.
#[derive(Clone)]
pub struct SessionEntry {
    pub addr: Addr<UserSession>,
    pub shared: Arc<SessionShared>,
    pub generation: u64,
}

/// Asks an actor whether it has been idle long enough to stop. One sweeper per registry
/// sends it to every loaded actor periodically, instead of a timer in every actor.
#[derive(actix::Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Sweep;

/// A loaded group actor.
#[derive(Clone)]
pub struct GroupEntry {
    pub addr: Addr<GroupActor>,
    pub generation: u64,
}

/// Which `group_seq`s of a super group this node has delivered: all up to `upto`, and the
/// ones in `above` (its own sends and other nodes' can finish in either order).
pub struct Relayed {
    upto: u64,
    above: std::collections::BTreeSet<u64>,
}

impl Relayed {
    /// Starts the record at the first message seen (nothing before it is owed).
    fn from(group_seq: u64) -> Relayed {
        Relayed {
            upto: group_seq.saturating_sub(1),
            above: Default::default(),
        }
    }

    fn gap(&self, group_seq: u64, max: u64) -> (bool, Vec<u64>) {
        if group_seq <= self.upto || self.above.contains(&group_seq) {
            return (true, Vec::new());
        }
        let from = (self.upto + 1).max(group_seq.saturating_sub(max));
        let missing = (from..group_seq)
            .filter(|s| !self.above.contains(s))
            .collect();
        (false, missing)
    }

    fn skip(&mut self, group_seq: u64) {
        self.upto = self.upto.max(group_seq);
        let upto = self.upto;
        self.above.retain(|s| *s > upto);
    }

    fn note(&mut self, group_seq: u64) {
        if group_seq > self.upto {
            self.above.insert(group_seq);
        }
        while self.above.first() == Some(&(self.upto + 1)) {
            self.above.pop_first();
            self.upto += 1;
        }
        // A gap never filled (too big, or trimmed from the timeline) is given up on.
        if self.above.len() > 1024
            && let Some(last) = self.above.last().copied()
        {
            self.upto = last;
            self.above.clear();
        }
    }
}

/// Keys are our own ids, looked up per member in every fan-out: a fast hash, seeded per process.
type FastHash = foldhash::fast::RandomState;

pub struct Registry {
    /// Per-thread delivery hubs (`hub.rs`).
    pub hubs: Hubs,
    /// The threads connections run on, each with its hub (`conn_threads.rs`).
    pub conn_threads: ConnThreads,
    /// Which members of each super group are online (`online.rs`): written by sessions and
    /// group actors, read by super-group fan-out.
    pub online: OnlineIndex,
    /// Users with no device token whose sessions are on other nodes (`tokenless.rs`).
    pub tokenless: super::tokenless::Tokenless,
    sessions: DashMap<UserKey, SessionEntry, FastHash>,
    groups: DashMap<GroupKey, GroupEntry, FastHash>,
    /// Super group → the newest `group_seq` this node has delivered (its own sends' fan-out
    /// and other nodes' relayed messages): a relayed message further on means some were lost
    /// on the way, read back from the timeline (`group/relay.rs`). Kept across the group
    /// actor's reloads.
    relayed: DashMap<GroupKey, Relayed, FastHash>,
    arbiters: Vec<actix::Arbiter>,
    hasher: std::collections::hash_map::RandomState,
    next_generation: AtomicU64,
}

impl Registry {
    /// Starts `threads` dispatch arbiters and as many connection threads (0 = one per core).
    pub fn new(threads: usize) -> Registry {
        let n = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Registry {
            hubs: Hubs::default(),
            conn_threads: ConnThreads::new(n),
            online: OnlineIndex::default(),
            tokenless: Default::default(),
            sessions: DashMap::with_hasher(FastHash::default()),
            groups: DashMap::with_hasher(FastHash::default()),
            relayed: DashMap::with_hasher(FastHash::default()),
            arbiters: (0..n).map(|_| actix::Arbiter::new()).collect(),
            hasher: Default::default(),
            next_generation: AtomicU64::new(1),
        }
    }

    /// The arbiter an actor keyed by `key` lives on.
    pub fn arbiter_for(&self, key: impl Hash) -> ArbiterHandle {
        let i = (self.hasher.hash_one(key) % self.arbiters.len() as u64) as usize;
        self.arbiters[i].handle()
    }

    /// Runs `f` on a loaded session's shared view without cloning the entry.
    pub fn with_session<R>(&self, user: UserKey, f: impl FnOnce(&SessionShared) -> R) -> Option<R> {
        self.sessions.get(&user).map(|e| f(&e.shared))
    }

    pub fn session(&self, user: UserKey) -> Option<SessionEntry> {
        self.sessions.get(&user).map(|e| e.clone())
    }

    /// The user's session, started with `make` if there is none.
    pub fn session_or_start(
        &self,
        user: UserKey,
        make: impl FnOnce(u64, Arc<SessionShared>) -> UserSession + Send + 'static,
    ) -> SessionEntry {
        self.sessions
            .entry(user)
            .or_insert_with(|| {
                let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                super::session::changed();
                let shared = Arc::new(SessionShared::default());
                let for_actor = shared.clone();
                let addr = actix::Actor::start_in_arbiter(&self.arbiter_for(user), move |_| {
                    make(generation, for_actor)
                });
                SessionEntry {
                    addr,
                    shared,
                    generation,
                }
            })
            .clone()
    }

    /// Forgets a session, unless a newer one already took its place.
    pub fn remove_session(&self, user: UserKey, generation: u64) {
        self.sessions
            .remove_if(&user, |_, e| e.generation == generation);
        super::session::changed();
    }

    /// Every loaded session (shutdown, revocation sweeps).
    pub fn sessions(&self) -> Vec<SessionEntry> {
        self.sessions.iter().map(|e| e.value().clone()).collect()
    }

    /// Every loaded session with its user (a resync walks them).
    pub fn sessions_by_user(&self) -> Vec<(UserKey, SessionEntry)> {
        self.sessions
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The user has a live connection (a loaded session with at least one).
    pub fn connected(&self, user: UserKey) -> bool {
        self.with_session(user, SessionShared::has_conns)
            .unwrap_or(false)
    }
}

impl Registry {
    /// The group's actor, started with `make` (it loads the group itself) if not loaded.
    pub fn group_or_start(
        &self,
        gid: GroupKey,
        make: impl FnOnce(u64) -> GroupActor + Send + 'static,
    ) -> GroupEntry {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                let addr = actix::Actor::start_in_arbiter(&self.arbiter_for(gid), move |_| {
                    make(generation)
                });
                GroupEntry { addr, generation }
            })
            .clone()
    }

    pub fn remove_group(&self, gid: GroupKey, generation: u64) {
        self.groups
            .remove_if(&gid, |_, e| e.generation == generation);
    }

    /// Forgets the loaded actor of `gid`, whatever its generation, so that the next command
    /// starts a fresh one that loads the group. For a group just created: a command about its
    /// id before it existed loaded an actor that knows the id as "no such group".
    pub fn forget_group(&self, gid: GroupKey) {
        self.groups.remove(&gid);
    }

    /// This node has delivered the super group's message `group_seq`.
    pub fn note_relayed(&self, gid: GroupKey, group_seq: u64) {
        let mut e = self
            .relayed
            .entry(gid)
            .or_insert_with(|| Relayed::from(group_seq));
        e.note(group_seq);
    }

    /// Nothing up to `group_seq` is owed to this node's members (none of them was online).
    pub fn skip_relayed(&self, gid: GroupKey, group_seq: u64) {
        let mut e = self
            .relayed
            .entry(gid)
            .or_insert_with(|| Relayed::from(group_seq));
        e.skip(group_seq);
    }

    /// For a message `group_seq` of another node: whether it was delivered here already, and
    /// which earlier ones this node has not delivered (at most `max` of them; none for a group
    /// it has delivered nothing of yet).
    pub fn relay_gap(&self, gid: GroupKey, group_seq: u64, max: u64) -> (bool, Vec<u64>) {
        self.relayed
            .get(&gid)
            .map_or((false, Vec::new()), |e| e.gap(group_seq, max))
    }

    /// Every super group this node has delivered messages of, with the newest.
    pub fn relayed_groups(&self) -> Vec<(GroupKey, u64)> {
        self.relayed
            .iter()
            .map(|e| (*e.key(), e.above.last().copied().unwrap_or(e.upto)))
            .collect()
    }

    /// Forgets every loaded group actor (their copies may be stale after a lost invalidation;
    /// the next command loads afresh).
    pub fn forget_groups(&self) {
        self.groups.clear();
    }
}

impl Registry {
    /// Starts the sweeper: every `every`, each loaded session and group is asked to stop if
    /// idle. It ends with the registry.
    pub fn start_sweeper(self: &Arc<Self>, every: std::time::Duration) {
        let registry = Arc::downgrade(self);
        let arbiter = self.arbiters[0].handle();
        arbiter.spawn(async move {
            loop {
                actix_web::rt::time::sleep(every).await;
                let Some(r) = registry.upgrade() else { break };
                for e in r.sessions.iter() {
                    let _ = e.addr.try_send(Sweep);
                }
                for e in r.groups.iter() {
                    let _ = e.addr.try_send(Sweep);
                }
            }
        });
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_super_group_messages_tell_duplicates_from_gaps() {
        let mut r = Relayed::from(9);
        r.note(9); // a send of this node
        r.note(11); // …and another, before 10 from another node
        assert_eq!(r.gap(10, 200), (false, vec![]), "10 is owed, not lost");
        r.note(10);
        assert_eq!(r.gap(11, 200), (true, vec![]), "11 was delivered");
        assert_eq!(r.gap(14, 200), (false, vec![12, 13]), "12 and 13 were lost");
        assert_eq!(
            r.gap(400, 200).1.len(),
            200,
            "a catch-up reads at most `max`"
        );
        r.skip(20);
        assert_eq!(
            r.gap(21, 200),
            (false, vec![]),
            "nobody was online up to 20"
        );
    }
}
