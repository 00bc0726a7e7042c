//! A super-group message another node stored (`BusEvent::Timeline`): this node's group actor
//! delivers it to the members online here, as the storing node did to its own. Push was
//! decided by the storing node (with every node's presence, `push_stream.rs`).

use actix::prelude::*;

use super::{GroupActor, Reply, done};
use crate::dispatch::DispatchError;
use crate::dispatch::fanout::deliver_shared;
use crate::dispatch::frame::Spliced;
use crate::dispatch::outbox::Frame;
use crate::domain::{AppId, UserKey};

/// Deliver a stored super-group message to the members online on this node.
pub struct Relay {
    pub app: AppId,
    pub id: u64,
    pub group_seq: u64,
    /// The stored JSON after `{"id":N,"group_seq":M,`.
    pub body: String,
}

impl Message for Relay {
    type Result = Result<(), DispatchError>;
}

impl Handler<Relay> for GroupActor {
    type Result = Reply<()>;

    fn handle(&mut self, m: Relay, _: &mut Context<Self>) -> Reply<()> {
        self.last_active = std::time::Instant::now();
        let (Some(registry), Ok(st)) = (self.env.registry.upgrade(), self.state(m.app)) else {
            return done(Ok(()));
        };
        if !st.is_super {
            return done(Ok(()));
        }
        let frame =
            Frame::Text(Spliced::with_field(m.id, "group_seq", &m.body).render(m.group_seq));
        let online = registry.online.snapshot(self.key);
        let recipients = st.members.present(&online).map(|u| UserKey::new(st.app, u));
        let fanout = deliver_shared(&registry, recipients, &frame, None);
        // The next command starts once these frames are queued: order holds.
        AtomicResponse::new(Box::pin(
            async move {
                fanout.send(&registry).await;
                Ok(())
            }
            .into_actor(self),
        ))
    }
}
