//! `idle`: N WebSocket connections held open and idle (pings answered) for a hold time, with
//! the server sampled before connecting and at the end of the hold: RSS delta / N is the
//! server's memory per idle connection.

use crate::loadgen::options::{IdleArgs, secs};
use crate::loadgen::report::Outcome;
use crate::loadgen::run::Run;

pub async fn run(run: &mut Run, a: &IdleArgs) -> anyhow::Result<Outcome> {
    let base = run.opts.uid_base;
    run.mark_start()?;
    let connected = run
        .connect_all((0..a.connections).map(|i| base + i).collect())
        .await?;
    run.hold("holding", secs(a.hold)).await;
    run.mark_end()?;
    Ok(Outcome {
        held: Some(connected),
        ..Outcome::default()
    })
}
