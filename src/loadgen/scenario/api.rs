//! `api`: HTTP send throughput. C keep-alive connections post `/messages/peers` back to back
//! to receivers that are not connected (stored and turned into push jobs, no live delivery).

use std::sync::Arc;

use crate::loadgen::options::{ApiArgs, secs};
use crate::loadgen::report::Outcome;
use crate::loadgen::run::Run;
use crate::loadgen::send::SendPlan;

pub async fn run(run: &mut Run, a: &ApiArgs) -> anyhow::Result<Outcome> {
    let (base, users) = (run.opts.uid_base, a.receivers.max(1));
    run.mark_start()?;
    let sent = run
        .send(SendPlan {
            path: "/messages/peers",
            total: None,
            rate: 0.0,
            senders: a.connections,
            duration: Some(secs(a.duration)),
            // Receivers base..base+R, senders base+R..base+2R.
            pick: Arc::new(move |rng| (base + users + rng.below(users), base + rng.below(users))),
        })
        .await;
    run.mark_end()?;
    Ok(Outcome {
        sent: Some(sent),
        ..Outcome::default()
    })
}
