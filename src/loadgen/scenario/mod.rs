//! The scenarios, one file each, and what they share: resource checks before a run and group
//! creation through the HTTP API.

mod actors;
mod api;
mod connections;
mod fanout;
mod groups;
mod peer;
mod supergroup;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::client::{data, post};
use super::options::Scenario;
use super::pool::Worker;
use super::report::Outcome;
use super::run::Run;

/// Runs `scenario`; the caller stops the run and builds the report.
pub async fn execute(run: &mut Run, scenario: &Scenario) -> anyhow::Result<Outcome> {
    match scenario {
        Scenario::Peer(a) => peer::run(run, a).await,
        Scenario::Api(a) => api::run(run, a).await,
        Scenario::Fanout(a) => fanout::run(run, a).await,
        Scenario::Groups(a) => groups::run(run, a).await,
        Scenario::Connect(a) => connections::churn(run, a).await,
        Scenario::Idle(a) => connections::idle(run, a).await,
        Scenario::Actors(a) => actors::run(run, a).await,
        Scenario::Supergroup(a) => supergroup::run(run, a).await,
    }
}

/// Sockets the scenario holds open at once.
pub fn sockets(scenario: &Scenario) -> u64 {
    match scenario {
        Scenario::Peer(a) => a.pairs + a.senders as u64,
        Scenario::Api(a) => a.connections as u64,
        Scenario::Fanout(a) => a.members + a.senders as u64,
        Scenario::Groups(a) => a.groups * a.size + a.senders as u64,
        Scenario::Connect(a) => a.clients,
        Scenario::Idle(a) => a.connections,
        Scenario::Actors(_) => 64,
        Scenario::Supergroup(a) => a.online.min(a.members) + a.senders as u64 + 4,
    }
}

/// Raises the open-file soft limit to the hard limit and checks that `sockets` (plus set-up
/// connections and the runtime's own descriptors) fit, and fit in the ephemeral port range of
/// `sources` source addresses.
pub fn check_resources(sockets: u64, sources: usize) -> anyhow::Result<()> {
    let needed = sockets + 256;
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising the open-file limit")?;
    if needed > limit {
        bail!(
            "{sockets} connections need about {needed} open files, but the limit is {limit}; \
             raise the hard limit (ulimit -Hn, systemd LimitNOFILE) or use fewer connections"
        );
    }
    if let Ok(range) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") {
        let mut ends = range
            .split_whitespace()
            .filter_map(|p| p.parse::<u64>().ok());
        if let (Some(lo), Some(hi)) = (ends.next(), ends.next()) {
            let ports = (hi.saturating_sub(lo) + 1) * sources.max(1) as u64;
            if sockets > ports {
                bail!(
                    "{sockets} connections exceed the {ports} ephemeral ports of {} source \
                     address(es); use more --source-ips",
                    sources.max(1)
                );
            }
        }
    }
    Ok(())
}

/// Members per request when a group is built: well inside `limits.members_body`, and more
/// than `limits.member_notification_threshold`, so each request is announced by one summary.
const CHUNK: usize = 50_000;

#[derive(Deserialize)]
struct Created {
    group_id: u64,
}

/// Creates a group of `members` (the first is the master) on a client thread and returns its
/// id; big groups are filled in chunks with `POST /groups/{gid}/members`.
pub async fn create_group(
    run: &Run,
    name: String,
    members: Vec<u64>,
    super_group: bool,
) -> anyhow::Result<u64> {
    let rx = run.pool.spawn(move |w| async move {
        let _permit = w.shared.connect_gate.acquire().await?;
        create_on(&w, &name, &members, super_group).await
    });
    rx.await
        .context("client thread gone while creating a group")?
}

async fn create_on(
    w: &Worker,
    name: &str,
    members: &[u64],
    super_group: bool,
) -> anyhow::Result<u64> {
    let (shared, client) = (&w.shared, w.clients.setup(w.index as u64));
    let master = members.first().copied().context("a group needs members")?;
    let mut chunks = members.chunks(CHUNK);
    let first = chunks.next().unwrap_or_default();
    let body = serde_json::json!({
        "master": master, "name": name, "super": super_group, "members": first,
    });
    let created = post(client, shared, "/groups", body.to_string())
        .await
        .map_err(|f| {
            let hint = match f.status {
                Some(404 | 405) => " (does this server have the group API?)",
                Some(400) if !super_group && members.len() > 2000 => {
                    " (normal groups hold at most 2,000 members: use --super)"
                }
                _ => "",
            };
            anyhow::anyhow!("creating group {name:?}: {}{hint}", f.text)
        })?;
    let gid = data::<Created>("/groups", &created)
        .map_err(|f| anyhow::anyhow!(f.text))?
        .group_id;
    for chunk in chunks {
        let path = format!("/groups/{gid}/members");
        let body = serde_json::json!({ "members": chunk }).to_string();
        post(client, shared, &path, body)
            .await
            .map_err(|f| anyhow::anyhow!("filling group {gid}: {}", f.text))?;
    }
    Ok(gid)
}

/// The sum of a server metric over its labels, from `GET /metrics` (0 if absent).
pub async fn metric(run: &Run, name: &'static str) -> anyhow::Result<f64> {
    let shared = run.shared.clone();
    let body = run
        .pool
        .spawn(move |w| async move {
            let client = w.clients.setup(w.index as u64);
            super::client::get(client, &shared, "/metrics")
                .await
                .map_err(|f| anyhow::anyhow!(f.text))
        })
        .await??;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .sum())
}
