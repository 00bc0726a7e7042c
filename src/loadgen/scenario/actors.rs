//! `actors`: G groups of S members are created (each create loads the group's actor on the
//! server) while the server is sampled, so RSS delta / G is the memory of a loaded group actor
//! with S members. Nobody connects: members have no sessions, so the delta is the groups'.

use crate::loadgen::options::ActorsArgs;
use crate::loadgen::report::Outcome;
use crate::loadgen::run::Run;

use super::create_group;

pub async fn run(run: &mut Run, a: &ActorsArgs) -> anyhow::Result<Outcome> {
    let base = run.opts.uid_base;
    let size = a.size.max(1);
    run.mark_start()?;
    let mut created = Vec::with_capacity(a.groups as usize);
    for g in 0..a.groups {
        let members: Vec<u64> = (0..size).map(|i| base + g * size + i).collect();
        created.push(create_group(run, format!("actors-{g}"), members, false));
    }
    let mut groups = 0;
    for c in futures_util::future::join_all(created).await {
        c?;
        groups += 1;
    }
    run.mark_end()?;
    Ok(Outcome {
        actors: Some((groups, size)),
        ..Outcome::default()
    })
}
