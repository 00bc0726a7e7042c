//! A super group's fan-out targets kept between messages. Preparing a message for 10,000
//! members online means 10,000 session look-ups and their connections grouped by hub
//! (`fanout::Targets`); while nobody connects, disconnects, joins or leaves, the next message
//! has exactly the same targets, so they are kept and reused.
//!
//! Kept with what they were made of, both compared before a reuse:
//! - the sessions epoch (`session::epoch`), read before the look-ups: any session's
//!   connections, `mute` or settings changing, or a session starting or stopping, bumps it;
//! - the group's online set (`OnlineIndex::snapshot`), the same shared slice while unchanged
//!   (held here, so its address cannot be reused by another).
//!
//! They are dropped with every change of the group's state (`GroupActor::set`, a reload),
//! which is where members are added and removed.
//!
//! A connection that closed since is skipped by its hub (it is no longer in the hub's table),
//! so a reuse never writes to a closed connection; a new connection bumps the epoch, so it is
//! never missed.

use std::sync::Arc;

use super::GroupActor;
use crate::dispatch::fanout::{Fanout, Targets, timed};
use crate::dispatch::hub::Delivery;
use crate::dispatch::outbox::Frame;
use crate::dispatch::registry::Registry;
use crate::dispatch::session;
use crate::domain::UserKey;

/// The targets of a super group's last message and what they were made of.
pub(super) struct Kept {
    epoch: u64,
    online: Arc<[u64]>,
    targets: Targets,
}

impl GroupActor {
    /// Prepares a super-group frame for the members online (except the connection `origin`),
    /// reusing the last message's targets while nothing they were made of changed.
    pub(super) fn super_fanout(
        &mut self,
        registry: &Registry,
        frame: &Frame,
        origin: Option<u64>,
    ) -> Option<Fanout> {
        let st = self.state.as_ref()?;
        let epoch = session::epoch(); // first: a change after this is seen next time
        let online = registry.online.snapshot(self.key);
        let delivery = Delivery::Shared(frame.clone());
        Some(timed(|| {
            let reusable = self
                .kept
                .as_ref()
                .filter(|k| k.epoch == epoch && Arc::ptr_eq(&k.online, &online));
            if let Some(kept) = reusable {
                metrics::counter!("imd_group_fanout_reused_total").increment(1);
                return kept.targets.clone().fanout(delivery, origin);
            }
            let recipients = st
                .members
                .present(&online)
                .map(|u| (UserKey::new(st.app, u), 0));
            let targets = Targets::collect(registry, recipients);
            self.kept = (!online.is_empty()).then(|| {
                let targets = targets.clone();
                Box::new(Kept {
                    epoch,
                    online,
                    targets,
                })
            });
            targets.fanout(delivery, origin)
        }))
    }
}
