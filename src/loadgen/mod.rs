//! The load generator behind `im-dispatcher loadgen <scenario>`: simulated users on WebSocket
//! and app servers on HTTP driving a running server, measuring what a user of the service would
//! feel — delivery rate, send→receive latency, loss, duplicates — and, given its pid, what the
//! server spent for it.
//!
//! A run is a coordinating task (`run::Run`, it only awaits, so it can share a thread with the
//! server in tests) and client threads (`pool`), each with its own actix runtime holding many
//! connections. Every run is bounded in count and time, stops by itself and closes its
//! connections.
//!
//! ```text
//! run() ─ Run::start ─ scenario::execute (connect_all, send, wait_for, hold) ─ stop
//!          │              └─ jobs ──► client threads: ws::connect/receive, send::sender
//!          └─ Pool::shutdown (merge Stats) ─ Report::build
//! ```

mod binary;
mod client;
pub mod options;
mod payload;
mod pool;
mod probe;
mod procfs;
mod progress;
pub mod report;
mod run;
mod scan;
mod scenario;
mod seen;
mod send;
mod shared;
mod stats;
mod text;
mod ws;

use std::io::IsTerminal;
use std::time::Duration;

pub use options::{
    ActorsArgs, ApiArgs, Common, ConnectArgs, FanoutArgs, GroupsArgs, IdleArgs, LoadOptions,
    PeerArgs, Scenario, SuperGroupArgs,
};
pub use report::{ClientReport, HttpReport, Report, ServerReport, SuperGroupReport};
pub use stats::Percentiles;

/// Runs one scenario to completion and reports on it.
///
/// Must be called inside an actix (or tokio `LocalSet`) runtime; the work itself happens on the
/// run's own client threads.
pub async fn run(opts: LoadOptions) -> anyhow::Result<Report> {
    let common = &opts.common;
    scenario::check_resources(
        scenario::sockets(&opts.scenario),
        usize::from(common.source_ips),
    )?;
    let progress = !common.json && std::io::stdout().is_terminal();
    let mut run = run::Run::start(common, progress)?;
    let result = scenario::execute(&mut run, &opts.scenario).await;
    run.progress.finish();
    run.stop();
    let stats = run
        .pool
        .shutdown(run.shared.timeout + Duration::from_secs(5))
        .await;
    let outcome = result?;
    report::Report::build(&opts.scenario, &run, outcome, &stats?)
}
