//! A group's sends are stored together. A `Send` taken from the mailbox is queued, and the
//! first one queued asks the actor (`ctx.notify`) to store the queue; actix runs that once the
//! mailbox is drained, so every send that arrived meanwhile is in it. The queue is stored in
//! one round-trip (`Store::append_group_batch`, in order), then handed over message by
//! message, with the mailbox held; sends arriving meanwhile wait there and form the next batch.
//! Thirty-two senders to one group cost a few round-trips instead of thirty-two.
//!
//! Every other command that changes or delivers runs in turn (`in_turn`): after the sends
//! queued before it are stored and handed over, so the group still has one order.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::commands::Send;
use super::send::{Accepted, Answer, Stored};
use super::{GroupActor, Reply};
use crate::dispatch::{DispatchError, Sent};

/// At most this many messages, and this many inbox writes (a normal group writes one per
/// member), in one batch; the rest go in the next.
const BATCH_MESSAGES: usize = 64;
const BATCH_INBOX_WRITES: usize = 8_192;

/// A send taken from the mailbox, waiting for its batch.
pub(super) struct Queued {
    cmd: Send,
    answer: Answer,
}

/// Stores the queued sends; sent to itself by the first send queued.
pub(super) struct StoreQueued;

impl Message for StoreQueued {
    type Result = ();
}

impl Handler<StoreQueued> for GroupActor {
    type Result = ();
    fn handle(&mut self, _: StoreQueued, ctx: &mut Context<Self>) {
        if !self.queued.is_empty() {
            ctx.wait(self.store_queued());
        }
    }
}

impl GroupActor {
    /// Queues a send for the next batch; answered once it is handed over (or refused).
    pub(super) fn queue(
        &mut self,
        cmd: Send,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<Sent, DispatchError>> {
        let (answer, answered) = oneshot::channel();
        if self.queued.is_empty() {
            ctx.notify(StoreQueued);
        }
        self.queued.push_back(Queued { cmd, answer });
        // No answer: the actor stopped before storing it (a stale copy), so it is tried again.
        Box::pin(async move { answered.await.unwrap_or(Err(DispatchError::StaleGroup)) })
    }

    /// Runs a command after the sends queued before it are stored and handed over.
    pub(super) fn in_turn<T: 'static>(
        &mut self,
        run: impl FnOnce(&mut Self) -> Reply<T> + 'static,
    ) -> AtomicResponse<Self, Result<T, DispatchError>> {
        if self.queued.is_empty() {
            return AtomicResponse::new(run(self));
        }
        AtomicResponse::new(Box::pin(self.store_queued().then(move |(), act, ctx| {
            if ctx.state() != ActorState::Running {
                // A send before it found this copy stale, so it is stopping: the command is
                // left unanswered, its caller sees the mailbox close and asks a fresh copy.
                let left: Reply<T> = Box::pin(fut::wrap_future(std::future::pending()));
                return left;
            }
            run(act)
        })))
    }

    /// Stores and hands over every queued send, a batch at a time.
    fn store_queued(&mut self) -> ResponseActFuture<Self, ()> {
        let batch = self.take_batch();
        Box::pin(self.store_batch(batch).then(|(), act, _| {
            let next: ResponseActFuture<Self, ()> = match act.queued.is_empty() {
                true => Box::pin(fut::ready(())),
                false => act.store_queued(),
            };
            next
        }))
    }

    /// The next batch from the front of the queue, checked (`accept`).
    fn take_batch(&mut self) -> Vec<Accepted> {
        let writes_each = self
            .state
            .as_ref()
            .map_or(1, |st| if st.is_super { 1 } else { st.members.len() });
        let take = (BATCH_INBOX_WRITES / writes_each.max(1)).clamp(1, BATCH_MESSAGES);
        let n = take.min(self.queued.len());
        let taken: Vec<Queued> = self.queued.drain(..n).collect();
        taken
            .into_iter()
            .filter_map(|q| self.accept(q.cmd, q.answer))
            .collect()
    }

    /// One round-trip for the batch, then each message answered, fanned out and handed over
    /// in order. A copy found stale stops once the messages stored before it are handed over.
    fn store_batch(&mut self, batch: Vec<Accepted>) -> ResponseActFuture<Self, ()> {
        let Some(st) = self.state.as_ref().filter(|_| !batch.is_empty()) else {
            return Box::pin(fut::ready(()));
        };
        let (store, gid, is_super, ver) = (self.env.store.clone(), self.key, st.is_super, st.ver);
        metrics::histogram!("imd_group_batch_messages").record(batch.len() as f64);
        let stored = async move {
            let appends: Vec<_> = batch.iter().map(Accepted::append).collect();
            let results = store.append_group_batch(gid, is_super, ver, &appends).await;
            drop(appends);
            (batch, results)
        };
        Box::pin(stored.into_actor(self).then(|(batch, results), act, _| {
            let mut stale = false;
            let stored: Vec<Stored> = batch
                .into_iter()
                .zip(results)
                .filter_map(|(m, r)| act.stored(m, r, &mut stale))
                .collect();
            async move {
                for s in stored {
                    s.hand_over().await;
                }
            }
            .into_actor(act)
            .map(move |(), _, ctx| {
                if stale {
                    // Stopped, so the callers' retry loads the group as stored.
                    ctx.stop();
                }
            })
        }))
    }
}
