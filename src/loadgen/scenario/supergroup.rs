//! `supergroup`: one huge super group, built through the API in big requests (each timed), with
//! `--online` of its members connected — spread evenly over the membership, `--web-share` of
//! them on the web, the rest on iOS — and `--messages` messages sent by online iOS members at
//! `--rate`. Measured: build time, send → last online member latency, server CPU per message
//! and per delivery, push receivers the server's sink wrote per second (its
//! `imd_push_receivers_total`; run the server with `push.sink = redis`), and the server's RSS
//! and peak RSS over the sending phase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::metric;
use crate::loadgen::client::{data, delete, post};
use crate::loadgen::options::SuperGroupArgs;
use crate::loadgen::report::{Outcome, SuperGroupReport};
use crate::loadgen::run::Run;
use crate::loadgen::send::SendPlan;
use crate::loadgen::stats::Counters;

/// A web client (SPEC §5.1 `platform_id` 3).
const WEB: u8 = 3;

/// The push counter is taken as settled after this long without growth.
const PUSH_SETTLED: Duration = Duration::from_secs(3);

pub async fn run(run: &mut Run, a: &SuperGroupArgs) -> anyhow::Result<Outcome> {
    let (base, n) = (run.opts.uid_base, a.members.max(1));
    let online = a.online.clamp(1, n);
    let step = n / online;
    // Member i·step is online; every `1/web_share`-th of those on the web.
    let clients: Vec<(u64, u8)> = (0..online)
        .map(|i| {
            let web = ((i + 1) as f64 * a.web_share).floor() > (i as f64 * a.web_share).floor();
            (
                base + i * step,
                if web { WEB } else { crate::loadgen::ws::IOS },
            )
        })
        .collect();
    let senders: Vec<u64> = clients
        .iter()
        .filter(|(_, p)| *p != WEB)
        .map(|(u, _)| *u)
        .collect();
    let senders = if senders.is_empty() {
        vec![base]
    } else {
        senders
    };
    let started = Instant::now();
    let (gid, requests) = build(run, base, n, a.batch.max(1)).await?;
    let build_secs = started.elapsed().as_secs_f64();
    // Connected once the group is complete: nobody gets the set-up's notifications.
    let web = clients.iter().filter(|(_, p)| *p == WEB).count() as u64;
    run.connect_everyone_on(clients).await?;
    let receivers_before = metric(run, "imd_push_receivers_total").await?;
    let plan = SendPlan {
        path: "/messages/groups",
        total: Some(a.messages),
        rate: a.rate,
        senders: a.senders.max(1),
        duration: None,
        pick: Arc::new(move |rng| (senders[rng.below(senders.len() as u64) as usize], gid)),
    };
    run.mark_start()?;
    let sent = run.send(plan).await;
    run.drain(&sent, online).await;
    let (push_receivers, push_end) = wait_for_push(run, receivers_before, a.push_wait).await?;
    run.mark_end()?;
    let remove_request_secs = match a.remove.min(n) {
        0 => None,
        k => Some(round(remove(run, gid, base + n - k..base + n).await?)),
    };
    let first_send = Counters::get(&run.counters().first_send_us);
    let push_secs = push_end.map(|end| end.saturating_sub(first_send) as f64 / 1e6);
    let super_group = Some(SuperGroupReport {
        members: n,
        online,
        web,
        build_secs: round(build_secs),
        build_requests: requests.len() as u64,
        build_request_max_secs: round(requests.iter().copied().fold(0.0, f64::max)),
        build_request_secs: requests.iter().copied().map(round).collect(),
        remove_request_secs,
        push_receivers,
        push_secs: push_secs.map(round),
        push_receivers_per_sec: push_secs
            .filter(|s| *s > 0.0)
            .map(|s| (push_receivers as f64 / s).round()),
    });
    Ok(Outcome {
        per_message: online,
        sent: Some(sent),
        super_group,
        ..Outcome::default()
    })
}

fn round(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// Creates the group with the first `batch` members (the first is the master), then adds the
/// rest `batch` at a time, one request after the other; the group id and each request's
/// seconds.
async fn build(run: &mut Run, base: u64, n: u64, batch: u64) -> anyhow::Result<(u64, Vec<f64>)> {
    run.progress.phase("building group", Some(n));
    let name = format!("loadgen-supergroup-{}", run.shared.run_id);
    let mut times = Vec::new();
    let mut gid = 0;
    let mut from = base;
    while from < base + n {
        let to = (from + batch).min(base + n);
        let members: Vec<u64> = (from..to).collect();
        let (path, body) = match gid {
            0 => (
                "/groups".to_string(),
                serde_json::json!({"master": base, "name": name, "super": true, "members": members}),
            ),
            g => (
                format!("/groups/{g}/members"),
                serde_json::json!({ "members": members }),
            ),
        };
        let shared = run.shared.clone();
        let began = Instant::now();
        let answer = run
            .pool
            .spawn(move |w| async move {
                let client = w.clients.dedicated(w.index as u64);
                post(&client, &shared, &path, body.to_string())
                    .await
                    .map_err(|f| anyhow::anyhow!("building the group: {}", f.text))
            })
            .await
            .context("client thread gone while building the group")??;
        times.push(began.elapsed().as_secs_f64());
        if gid == 0 {
            #[derive(serde::Deserialize)]
            struct Created {
                group_id: u64,
            }
            gid = data::<Created>("/groups", &answer)
                .map_err(|f| anyhow::anyhow!(f.text))?
                .group_id;
        }
        from = to;
        run.progress.set(to - base);
    }
    run.progress.finish();
    Ok((gid, times))
}

/// Removes `uids` in one `DELETE /groups/{gid}/members`; its seconds.
async fn remove(run: &Run, gid: u64, uids: std::ops::Range<u64>) -> anyhow::Result<f64> {
    let shared = run.shared.clone();
    let body = serde_json::to_string(&uids.collect::<Vec<u64>>())?;
    let began = Instant::now();
    run.pool
        .spawn(move |w| async move {
            let client = w.clients.dedicated(w.index as u64);
            let path = format!("/groups/{gid}/members");
            delete(&client, &shared, &path, body)
                .await
                .map_err(|f| anyhow::anyhow!("removing members: {}", f.text))
        })
        .await
        .context("client thread gone while removing members")??;
    Ok(began.elapsed().as_secs_f64())
}

/// Waits until the server's push receivers counter stops growing; (receivers written since
/// `before`, when the last of them was seen, µs since the epoch).
async fn wait_for_push(
    run: &mut Run,
    before: f64,
    within: f64,
) -> anyhow::Result<(u64, Option<u64>)> {
    run.progress.phase("push", None);
    let deadline = Instant::now() + crate::loadgen::options::secs(within);
    let (mut last, mut last_change, mut seen_at) = (before, Instant::now(), None);
    while Instant::now() < deadline && last_change.elapsed() < PUSH_SETTLED {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = metric(run, "imd_push_receivers_total").await?;
        if now > last {
            (last, last_change) = (now, Instant::now());
            seen_at = Some(crate::loadgen::payload::unix_micros());
        }
    }
    run.progress.finish();
    Ok(((last - before).max(0.0) as u64, seen_at))
}
