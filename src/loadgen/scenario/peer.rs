//! `peer`: P sender→receiver pairs; senders post `/messages/peers` at a target total rate,
//! receivers are connected over WebSocket and measure latency, loss and duplicates.

use std::sync::Arc;

use crate::loadgen::options::{PeerArgs, secs};
use crate::loadgen::report::Outcome;
use crate::loadgen::run::Run;
use crate::loadgen::send::SendPlan;

pub async fn run(run: &mut Run, a: &PeerArgs) -> anyhow::Result<Outcome> {
    let (base, pairs) = (run.opts.uid_base, a.pairs.max(1));
    // Senders are base..base+P (never connected), receivers base+P..base+2P.
    let receivers: Vec<u64> = (0..pairs).map(|i| base + pairs + i).collect();
    run.connect_everyone(receivers).await?;
    let duration = a.duration.or(if a.messages.is_none() {
        Some(10.0)
    } else {
        None
    });
    run.deliveries(
        SendPlan {
            path: "/messages/peers",
            total: a.messages,
            rate: a.rate,
            senders: a.senders,
            duration: duration.map(secs),
            pick: Arc::new(move |rng| {
                let i = rng.below(pairs);
                (base + i, base + pairs + i)
            }),
        },
        1,
    )
    .await
}
