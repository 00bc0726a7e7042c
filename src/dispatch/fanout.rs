//! Fan-out without a message per recipient: the group actor names its recipients (a normal
//! group: every member; a super group: its members online, `online.rs`), each is looked up in
//! the session registry (`SessionShared`, the sessions' published view), their connections are
//! grouped by worker hub, and each hub gets one job (`hub.rs`). Push is decided elsewhere
//! (`push_stream.rs`).

use std::sync::Arc;
use std::time::Instant;

use super::frame::Spliced;
use super::hub::{Delivery, Job};
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

/// Prepares a stored message for every recipient's connections with the recipient's own inbox
/// seq.
pub fn deliver_seqs(
    registry: &Registry,
    recipients: impl Iterator<Item = (UserKey, u64)>,
    parts: &Arc<Spliced>,
    exclude: Option<u64>,
) -> Fanout {
    deliver(registry, recipients, Delivery::Seq(parts.clone()), exclude)
}

/// Prepares the same frame (a super-group message: `group_seq` is the same for everyone) for
/// every recipient's connections.
pub fn deliver_shared(
    registry: &Registry,
    recipients: impl Iterator<Item = UserKey>,
    frame: &Frame,
    exclude: Option<u64>,
) -> Fanout {
    deliver(
        registry,
        recipients.map(|u| (u, 0)),
        Delivery::Shared(frame.clone()),
        exclude,
    )
}

fn deliver(
    registry: &Registry,
    recipients: impl Iterator<Item = (UserKey, u64)>,
    delivery: Delivery,
    exclude: Option<u64>,
) -> Fanout {
    let started = Instant::now();
    let hubs = &registry.hubs;
    let mut batches: Vec<Vec<(u64, u64)>> = (0..hubs.count()).map(|_| Vec::new()).collect();
    let (mut delivered, mut members, mut seen) = (0, 0u64, Vec::new());
    for (user, seq) in recipients {
        members += 1;
        registry.with_session(user, |s| {
            let (n, online) = s.collect_targets(seq, exclude, &mut batches);
            delivered += n;
            seen.push((user.uid, s.push_view_given(online)));
        });
    }
    let jobs = batches
        .into_iter()
        .enumerate()
        .filter(|(_, targets)| !targets.is_empty())
        .map(|(i, targets)| {
            (
                i,
                Job {
                    delivery: delivery.clone(),
                    targets,
                },
            )
        })
        .collect();
    metrics::histogram!("imd_group_fanout_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("imd_group_fanout_members_total").increment(members);
    metrics::counter!("imd_deliveries_total").increment(delivered as u64);
    Fanout { jobs, seen }
}
