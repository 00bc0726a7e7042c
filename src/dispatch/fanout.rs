//! Fan-out without a message per recipient: the group actor walks its members, looks each
//! up in the session registry and queues the shared frame on their connections directly
//! (`SessionShared` is the sessions' published view). Recipients who are not online for push
//! are reported back so the caller can batch one push job.

use std::sync::Arc;
use std::time::Instant;

use super::frame::Spliced;
use super::outbox::Frame;
use super::registry::Registry;
use crate::domain::UserKey;

/// Queues a stored message on every recipient's connections with the recipient's own inbox
/// seq. `offline` is called for each recipient not online for push. Returns deliveries.
pub fn deliver_seqs(
    registry: &Registry,
    recipients: impl Iterator<Item = (UserKey, u64)>,
    parts: &Arc<Spliced>,
    exclude: Option<u64>,
    mut offline: impl FnMut(UserKey),
) -> usize {
    let started = Instant::now();
    let (mut delivered, mut members) = (0, 0u64);
    for (user, seq) in recipients {
        members += 1;
        let online = registry.with_session(user, |s| {
            let (n, online) = s.deliver_seq(seq, &Frame::Spliced(parts.clone(), seq), exclude);
            delivered += n;
            online
        });
        if online != Some(true) {
            offline(user);
        }
    }
    record(started, members, delivered);
    delivered
}

/// Queues the same frame (a super-group message: `group_seq` is the same for everyone) on
/// every recipient's connections.
pub fn deliver_shared(
    registry: &Registry,
    recipients: impl Iterator<Item = UserKey>,
    frame: &Frame,
    exclude: Option<u64>,
    mut offline: impl FnMut(UserKey),
) -> usize {
    let started = Instant::now();
    let (mut delivered, mut members) = (0, 0u64);
    for user in recipients {
        members += 1;
        let online = registry.with_session(user, |s| {
            let (n, online) = s.deliver_except(frame, exclude);
            delivered += n;
            online
        });
        if online != Some(true) {
            offline(user);
        }
    }
    record(started, members, delivered);
    delivered
}

fn record(started: Instant, members: u64, delivered: usize) {
    metrics::histogram!("imd_group_fanout_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("imd_group_fanout_members_total").increment(members);
    metrics::counter!("imd_deliveries_total").increment(delivered as u64);
}
