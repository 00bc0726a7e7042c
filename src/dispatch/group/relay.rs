//! A super-group message another node stored (`BusEvent::Timeline`): this node's group actor
//! delivers it to the members online here, as the storing node did to its own. Push was
//! decided by the storing node (with every node's presence, `push_stream.rs`).
//!
//! Relayed messages carry their `group_seq`. One further on than the newest this node has
//! delivered (`Registry::relayed`) means some were lost on the way (a dropped subscription):
//! they are read from the timeline and delivered first, in order; one at or below it is a
//! duplicate and dropped. A resync asks for the same catch-up without a message (`body`
//! `None`).

use actix::prelude::*;

use super::{GroupActor, Reply, done};
use crate::dispatch::DispatchError;
use crate::dispatch::frame::Spliced;
use crate::dispatch::outbox::Frame;
use crate::domain::AppId;
use crate::store::stored_seq;

/// Timeline entries one catch-up reads at most; members online past a bigger gap get the rest
/// by `sync_group`.
const CATCH_UP_MAX: u64 = 200;

/// Deliver a stored super-group message (or catch up to `group_seq`) to the members online on
/// this node.
pub struct Relay {
    pub app: AppId,
    pub id: u64,
    pub group_seq: u64,
    /// The stored JSON after `{"id":N,"group_seq":M,`; `None`: catch up to `group_seq`.
    pub body: Option<String>,
}

impl Message for Relay {
    type Result = Result<(), DispatchError>;
}

impl Handler<Relay> for GroupActor {
    type Result = AtomicResponse<Self, Result<(), DispatchError>>;

    fn handle(&mut self, m: Relay, _: &mut Context<Self>) -> Self::Result {
        self.last_active = std::time::Instant::now();
        self.in_turn(move |act| act.relay(m))
    }
}

impl GroupActor {
    fn relay(&mut self, m: Relay) -> Reply<()> {
        let (Some(registry), Ok(st)) = (self.env.registry.upgrade(), self.state(m.app)) else {
            return done(Ok(()));
        };
        if !st.is_super {
            return done(Ok(()));
        }
        let (delivered, missing) = registry.relay_gap(self.key, m.group_seq, CATCH_UP_MAX);
        if delivered && m.body.is_some() {
            return done(Ok(()));
        }
        // A catch-up (no message) wants `group_seq` itself too.
        let mut missing = missing;
        if m.body.is_none() && !delivered {
            missing.push(m.group_seq);
        }
        for s in missing
            .iter()
            .copied()
            .chain(m.body.is_some().then_some(m.group_seq))
        {
            registry.note_relayed(self.key, s);
        }
        let current = m
            .body
            .map(|body| Frame::Spliced(Spliced::with_field(m.id, "group_seq", &body), m.group_seq));
        let (store, key) = (self.env.store.clone(), self.key);
        let read = async move {
            let mut frames = Vec::new();
            if let (Some(first), Some(last)) = (missing.first().copied(), missing.last().copied()) {
                metrics::counter!("imd_seq_gaps_filled_total").increment(1);
                let count = (last - first + 1) as usize;
                match store.timeline_after(key, first - 1, count).await {
                    Ok(records) => frames.extend(
                        records
                            .iter()
                            .filter(|r| stored_seq(r).is_some_and(|s| missing.contains(&s)))
                            .filter_map(|r| Spliced::from_stored(r, "group_seq"))
                            .map(|(parts, seq)| Frame::Spliced(parts, seq)),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "super-group gap not filled (sync_group will)")
                    }
                }
            }
            frames.extend(current);
            frames
        };
        Box::pin(read.into_actor(self).then(move |frames, act, _| {
            // The targets kept between messages serve relayed ones too (`targets.rs`).
            let fanouts: Vec<_> = frames
                .iter()
                .filter_map(|f| act.super_fanout(&registry, f, None))
                .collect();
            // The next command starts once these frames are queued: order holds.
            async move {
                for f in fanouts {
                    f.send(&registry).await;
                }
                Ok(())
            }
            .into_actor(act)
        }))
    }
}
