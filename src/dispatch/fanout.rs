//! Fan-out without a message per recipient: the group actor walks its members, looks each up
//! in the session registry (`SessionShared`, the sessions' published view), groups their
//! connections by worker hub, and sends each hub one job (`hub.rs`). Recipients who are not
//! online for push are reported back so the caller can batch one push job.

use std::sync::Arc;
use std::time::Instant;

use super::frame::Spliced;
use super::hub::{Delivery, Job};
use super::outbox::Frame;
use super::registry::Registry;
use crate::domain::UserKey;

/// The per-hub jobs of one fan-out, to be handed over with `send`.
#[must_use = "a fan-out delivers nothing until it is sent"]
pub struct Fanout {
    jobs: Vec<(usize, Job)>,
}

impl Fanout {
    /// Hands every job to its hub, waiting while a hub's queue is full: a slow worker slows
    /// the fan-out down instead of letting queued jobs grow without bound.
    pub async fn send(self, registry: &Registry) {
        for (i, job) in self.jobs {
            registry.hubs.send(i, job).await;
        }
    }
}

/// Prepares a stored message for every recipient's connections with the recipient's own inbox
/// seq. `offline` is called for each recipient not online for push.
pub fn deliver_seqs(
    registry: &Registry,
    recipients: impl Iterator<Item = (UserKey, u64)>,
    parts: &Arc<Spliced>,
    exclude: Option<u64>,
    mut offline: impl FnMut(UserKey),
) -> Fanout {
    deliver(
        registry,
        recipients.map(|(u, seq)| (u, seq, ())),
        Delivery::Seq(parts.clone()),
        exclude,
        |u, ()| offline(u),
    )
}

/// Prepares the same frame (a super-group message: `group_seq` is the same for everyone) for
/// every recipient's connections. `offline` is called for each recipient not online for push,
/// with the tag the recipient came with (what the caller needs to decide on a push).
pub fn deliver_shared<T>(
    registry: &Registry,
    recipients: impl Iterator<Item = (UserKey, T)>,
    frame: &Frame,
    exclude: Option<u64>,
    offline: impl FnMut(UserKey, T),
) -> Fanout {
    deliver(
        registry,
        recipients.map(|(u, tag)| (u, 0, tag)),
        Delivery::Shared(frame.clone()),
        exclude,
        offline,
    )
}

fn deliver<T>(
    registry: &Registry,
    recipients: impl Iterator<Item = (UserKey, u64, T)>,
    delivery: Delivery,
    exclude: Option<u64>,
    mut offline: impl FnMut(UserKey, T),
) -> Fanout {
    let started = Instant::now();
    let hubs = &registry.hubs;
    let mut batches: Vec<Vec<(u64, u64)>> = (0..hubs.count()).map(|_| Vec::new()).collect();
    let (mut delivered, mut members) = (0, 0u64);
    for (user, seq, tag) in recipients {
        members += 1;
        let online = registry.with_session(user, |s| {
            let (n, online) = s.collect_targets(seq, exclude, &mut batches);
            delivered += n;
            online
        });
        if online != Some(true) {
            offline(user, tag);
        }
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
    Fanout { jobs }
}
