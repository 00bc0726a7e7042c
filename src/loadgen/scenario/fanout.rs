//! `fanout`: one group of N online members; M messages posted to `/messages/groups` by a few
//! concurrent senders as fast as HTTP accepts them. Every member, the sender included, gets
//! each message live; the report adds the latency to the last member of each message.

use std::sync::Arc;

use super::create_group;
use crate::loadgen::options::{FanoutArgs, secs};
use crate::loadgen::report::Outcome;
use crate::loadgen::run::Run;
use crate::loadgen::send::SendPlan;

pub async fn run(run: &mut Run, a: &FanoutArgs) -> anyhow::Result<Outcome> {
    let (base, n) = (run.opts.uid_base, a.members.max(1));
    let members: Vec<u64> = (base..base + n).collect();
    run.progress.phase("creating group", None);
    let name = format!("loadgen-fanout-{}", run.shared.run_id);
    let gid = create_group(run, name, members.clone(), a.super_group).await?;
    // Connected after the group is complete, so no member gets the set-up notifications.
    run.connect_everyone(members).await?;
    let probe = (a.probe_rate > 0.0).then(|| run.start_probe(a.probe_rate, base + n, base + n + 1));
    let outcome = run
        .deliveries(
            SendPlan {
                path: "/messages/groups",
                total: Some(a.messages),
                rate: a.rate,
                senders: a.senders,
                duration: Some(secs(a.duration)),
                pick: Arc::new(move |rng| (base + rng.below(n), gid)),
            },
            n,
        )
        .await;
    if let Some(p) = probe {
        p.stop().await;
    }
    outcome
}
