//! The connection scenarios. `connect`: connection churn — K clients each take a token once,
//! then connect (upgrade + `hello`) and close again in a loop until the duration is over.
//! `idle`: N WebSocket connections held open and idle (pings answered) for a hold time, with the
//! server sampled before connecting and at the end of the hold, so RSS delta / N is the server's
//! memory per idle connection.

use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};

use crate::loadgen::options::{ConnectArgs, IdleArgs, secs};
use crate::loadgen::pool::Worker;
use crate::loadgen::report::Outcome;
use crate::loadgen::run::Run;
use crate::loadgen::stats::Counters;
use crate::loadgen::ws;

/// Pause after a failed attempt, so a refusing server is not hammered in a tight loop.
const BACKOFF: Duration = Duration::from_millis(50);

pub async fn churn(run: &mut Run, a: &ConnectArgs) -> anyhow::Result<Outcome> {
    let base = run.opts.uid_base;
    let duration = secs(a.duration);
    run.mark_start()?;
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..a.clients.max(1))
        .map(|i| run.pool.spawn(move |w| churner(w, base + i, deadline)))
        .collect();
    run.hold("churning", duration).await;
    for h in handles {
        let _ = h.await;
    }
    let secs = started.elapsed().as_secs_f64();
    run.mark_end()?;
    let connects = Counters::get(&run.counters().connected);
    Ok(Outcome {
        churn: Some((connects, secs)),
        ..Outcome::default()
    })
}

async fn churner(w: std::rc::Rc<Worker>, uid: u64, deadline: Instant) {
    let c = &w.shared.counters;
    let token = match ws::token(&w, uid).await {
        Ok(t) => t,
        Err(e) => {
            Counters::bump(&c.connect_failed);
            return w.shared.error(e);
        }
    };
    while Instant::now() < deadline && !w.shared.stopping() {
        match ws::open(&w, uid, &token, ws::IOS).await {
            Ok(mut conn) => {
                Counters::bump(&c.connected);
                // A clean close: send ours, wait (briefly) for the server's.
                let _ = conn.send(Message::Close(None)).await;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while let Some(Ok(f)) = conn.next().await {
                        if matches!(f, Frame::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
            }
            Err(e) => {
                Counters::bump(&c.connect_failed);
                w.shared.error(e);
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
}

pub async fn idle(run: &mut Run, a: &IdleArgs) -> anyhow::Result<Outcome> {
    let base = run.opts.uid_base;
    run.mark_start()?;
    let connected = run
        .connect_all((0..a.connections).map(|i| base + i).collect())
        .await?;
    if connected > 0 {
        run.hold("holding", secs(a.hold)).await;
    }
    run.mark_end()?;
    Ok(Outcome {
        held: Some(connected),
        ..Outcome::default()
    })
}
