//! Fan-out without a message per recipient: the group actor names its recipients (a normal
//! group: every member; a super group: its members online, `online.rs`), each is looked up in
//! the session registry (`SessionShared`, the sessions' published view), their connections are
//! grouped by worker hub (`Targets`, which a super group keeps for its next message:
//! `group/targets.rs`), and each hub gets one job (`hub.rs`). Push is decided elsewhere
//! (`push_stream.rs`).

use std::sync::Arc;
use std::time::Instant;

use super::frame::Spliced;
use super::hub::{Delivery, HubTargets, Job};
use super::outbox::Frame;
use super::registry::Registry;
use super::session::PushView;
use crate::domain::{Uid, UserKey};

/// The per-hub jobs of one fan-out, to be handed over with `send`.
#[must_use = "a fan-out delivers nothing until it is sent"]
pub struct Fanout {
    jobs: Vec<(usize, Job)>,
    /// The push decision (SPEC §6) for every recipient with a session, in recipient order, as
    /// the fan-out found it: the push stream uses it without looking at their sessions again.
    seen: Vec<(Uid, PushView)>,
}

impl Fanout {
    /// The recipients the fan-out found a session for, with their push decisions.
    pub fn take_seen(&mut self) -> Vec<(Uid, PushView)> {
        std::mem::take(&mut self.seen)
    }

    /// Hands every job to its hub, waiting while a hub's queue is full: a slow worker slows
    /// the fan-out down instead of letting queued jobs grow without bound.
    pub async fn send(self, registry: &Registry) {
        for (i, job) in self.jobs {
            registry.hubs.send(i, job).await;
        }
    }
}

/// Every recipient's connections grouped by hub, with the push decisions: what a fan-out
/// prepares before it has a frame. A super group keeps it for its next message while nothing
/// it was made of changed (`group/targets.rs`).
#[derive(Clone)]
pub struct Targets {
    per_hub: Vec<(usize, HubTargets)>,
    seen: Vec<(Uid, PushView)>,
    /// Connections over every hub.
    conns: usize,
    members: u64,
}

impl Targets {
    /// Looks every recipient up in the session registry: their connections (each with the
    /// recipient's seq; 0 for a shared frame) and push decisions.
    pub fn collect(registry: &Registry, recipients: impl Iterator<Item = (UserKey, u64)>) -> Self {
        let mut batches: Vec<Vec<(u64, u64)>> =
            (0..registry.hubs.count()).map(|_| Vec::new()).collect();
        let (mut conns, mut members, mut seen) = (0, 0u64, Vec::new());
        for (user, seq) in recipients {
            members += 1;
            registry.with_session(user, |s| {
                let (n, online) = s.collect_targets(seq, None, &mut batches);
                conns += n;
                seen.push((user.uid, s.push_view_given(online)));
            });
        }
        let per_hub = batches
            .into_iter()
            .enumerate()
            .filter(|(_, targets)| !targets.is_empty())
            .map(|(i, targets)| (i, targets.into()))
            .collect();
        Targets {
            per_hub,
            seen,
            conns,
            members,
        }
    }

    /// The jobs that deliver `delivery` to these targets except the connection `exclude`.
    pub fn fanout(self, delivery: Delivery, exclude: Option<u64>) -> Fanout {
        let excluded = exclude.map_or(0, |x| {
            let hit = |(_, t): &(usize, HubTargets)| t.iter().any(|(c, _)| *c == x);
            usize::from(self.per_hub.iter().any(hit))
        });
        metrics::counter!("imd_group_fanout_members_total").increment(self.members);
        metrics::counter!("imd_deliveries_total").increment((self.conns - excluded) as u64);
        let jobs = self
            .per_hub
            .into_iter()
            .map(|(i, targets)| {
                let delivery = delivery.clone();
                (
                    i,
                    Job {
                        delivery,
                        targets,
                        exclude,
                    },
                )
            })
            .collect();
        Fanout {
            jobs,
            seen: self.seen,
        }
    }
}

/// Prepares a stored message for every recipient's connections with the recipient's own inbox
/// seq.
pub fn deliver_seqs(
    registry: &Registry,
    recipients: impl Iterator<Item = (UserKey, u64)>,
    parts: &Arc<Spliced>,
    exclude: Option<u64>,
) -> Fanout {
    timed(|| Targets::collect(registry, recipients).fanout(Delivery::Seq(parts.clone()), exclude))
}

/// Prepares the same frame (a super-group message: `group_seq` is the same for everyone) for
/// every recipient's connections.
pub fn deliver_shared(
    registry: &Registry,
    recipients: impl Iterator<Item = UserKey>,
    frame: &Frame,
    exclude: Option<u64>,
) -> Fanout {
    let recipients = recipients.map(|u| (u, 0));
    let delivery = Delivery::Shared(frame.clone());
    timed(|| Targets::collect(registry, recipients).fanout(delivery, exclude))
}

/// Runs a fan-out's preparation, recording how long it took.
pub fn timed(prepare: impl FnOnce() -> Fanout) -> Fanout {
    let started = Instant::now();
    let fanout = prepare();
    metrics::histogram!("imd_group_fanout_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    fanout
}
