//! `actors`: the memory of loaded group actors. G groups of S members are created (set-up,
//! not measured: creating sends notifications); once the server has evicted their actors as
//! idle (run the server with a short `limits.actor_idle_secs`), the server is sampled, every
//! group is read once (`GET /groups/{gid}`, which loads its actor) and the server is sampled
//! again: RSS delta / G is one loaded actor with S members. Nobody connects.

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::loadgen::client::get;
use crate::loadgen::options::ActorsArgs;
use crate::loadgen::report::Outcome;
use crate::loadgen::run::Run;

use super::create_group;

/// The longest wait for the server to evict the set-up's actors.
const EVICTION_WAIT: Duration = Duration::from_secs(120);

pub async fn run(run: &mut Run, a: &ActorsArgs) -> anyhow::Result<Outcome> {
    let base = run.opts.uid_base;
    let size = a.size.max(1);
    let mut created = Vec::with_capacity(a.groups as usize);
    for g in 0..a.groups {
        let members: Vec<u64> = (0..size).map(|i| base + g * size + i).collect();
        created.push(create_group(run, format!("actors-{g}"), members, false));
    }
    let mut gids = Vec::with_capacity(a.groups as usize);
    for c in futures_util::future::join_all(created).await {
        gids.push(c?);
    }
    let deadline = Instant::now() + EVICTION_WAIT;
    while loaded_actors(run).await? > 0 {
        if Instant::now() > deadline {
            bail!(
                "the server kept its group actors loaded; run it with a short limits.actor_idle_secs"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run.mark_start()?;
    let shared = run.shared.clone();
    let reads = gids.chunks(64).map(|chunk| {
        let (chunk, shared) = (chunk.to_vec(), shared.clone());
        run.pool.spawn(move |w| async move {
            let client = w.clients.setup(w.index as u64);
            for gid in chunk {
                if let Err(f) = get(client, &shared, &format!("/groups/{gid}")).await {
                    shared.error(f.text);
                }
            }
        })
    });
    for r in futures_util::future::join_all(reads.collect::<Vec<_>>()).await {
        let _ = r;
    }
    run.mark_end()?;
    Ok(Outcome {
        actors: Some((gids.len() as u64, size)),
        ..Outcome::default()
    })
}

/// The server's `imd_group_actors` gauge.
async fn loaded_actors(run: &Run) -> anyhow::Result<u64> {
    Ok(super::metric(run, "imd_group_actors").await?.max(0.0) as u64)
}
