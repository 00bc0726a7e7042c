//! `groups`: G groups of S distinct members, all online; random members send to their group at
//! a target rate or as fast as possible. Measures delivery rate, latency, loss and duplicates.

use std::sync::Arc;

use anyhow::Context;

use super::create_group;
use crate::loadgen::options::{GroupsArgs, secs};
use crate::loadgen::report::Outcome;
use crate::loadgen::run::Run;
use crate::loadgen::send::SendPlan;

pub async fn run(run: &mut Run, a: &GroupsArgs) -> anyhow::Result<Outcome> {
    let (base, count, size) = (run.opts.uid_base, a.groups.max(1), a.size.max(1));
    // Member j of group g is base + g*S + j; the first member is the master.
    let member = move |g: u64, j: u64| base + g * size + j;
    run.progress.phase("creating groups", Some(count));
    let mut pending = Vec::new();
    for g in 0..count {
        let name = format!("loadgen-{}-{g}", run.shared.run_id);
        let members = (0..size).map(|j| member(g, j)).collect();
        let run_ref: &Run = run;
        pending.push(create_group(run_ref, name, members, a.super_group));
    }
    let mut gids = Vec::with_capacity(count as usize);
    for (g, p) in futures_util::future::join_all(pending)
        .await
        .into_iter()
        .enumerate()
    {
        gids.push(p.with_context(|| format!("group {g} of {count}"))?);
    }
    run.connect_everyone((0..count * size).map(|i| base + i).collect())
        .await?;
    let gids = Arc::new(gids);
    run.deliveries(
        SendPlan {
            path: "/messages/groups",
            total: Some(a.messages),
            rate: a.rate,
            senders: a.senders,
            duration: Some(secs(a.duration)),
            pick: Arc::new(move |rng| {
                let g = rng.below(count);
                (member(g, rng.below(size)), gids[g as usize])
            }),
        },
        size,
    )
    .await
}
