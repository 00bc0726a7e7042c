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
    offline: impl FnMut(UserKey),
) -> Fanout {
    deliver(
        registry,
        recipients,
        Delivery::Seq(parts.clone()),
        exclude,
        offline,
    )
}

/// Prepares the same frame (a super-group message: `group_seq` is the same for everyone) for
/// every recipient's connections.
pub fn deliver_shared(
    registry: &Registry,
    recipients: impl Iterator<Item = UserKey>,
    frame: &Frame,
    exclude: Option<u64>,
    offline: impl FnMut(UserKey),
) -> Fanout {
    let recipients = recipients.map(|u| (u, 0));
    deliver(
        registry,
        recipients,
        Delivery::Shared(frame.clone()),
        exclude,
        offline,
    )
}

fn deliver(
    registry: &Registry,
    recipients: impl Iterator<Item = (UserKey, u64)>,
    delivery: Delivery,
    exclude: Option<u64>,
    mut offline: impl FnMut(UserKey),
) -> Fanout {
    let started = Instant::now();
    let hubs = &registry.hubs;
    let mut batches: Vec<Vec<(u64, u64)>> = (0..hubs.count()).map(|_| Vec::new()).collect();
    let (mut delivered, mut members) = (0, 0u64);
    for (user, seq) in recipients {
        members += 1;
        let online = registry.with_session(user, |s| {
            let (n, online) = s.collect_targets(seq, exclude, &mut batches);
            delivered += n;
            online
        });
        if online != Some(true) {
            offline(user);
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
