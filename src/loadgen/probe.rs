//! An unrelated app server beside a delivery scenario (issue 13): peer messages between two
//! users outside the scenario, posted on a sender thread of their own at a fixed rate while the
//! scenario runs. Their HTTP latency shows whether accepting a message waits behind delivering
//! the scenario's ones.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::oneshot;

use super::client::post;
use super::options::secs;
use super::pool::Worker;
use super::run::Run;

/// A running probe; `stop` ends it once its current request is answered.
pub struct Probe {
    done: Arc<AtomicBool>,
    finished: oneshot::Receiver<()>,
}

impl Run {
    /// Starts posting `rate` peer messages per second from `sender` to `receiver`.
    pub fn start_probe(&self, rate: f64, sender: u64, receiver: u64) -> Probe {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let finished = self
            .pool
            .spawn_sender(move |w| probe(w, flag, rate, (sender, receiver)));
        Probe { done, finished }
    }
}

impl Probe {
    pub async fn stop(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.finished.await;
    }
}

async fn probe(w: Rc<Worker>, done: Arc<AtomicBool>, rate: f64, (from, to): (u64, u64)) {
    let shared = &w.shared;
    let client = w.clients.dedicated(u64::MAX - w.index as u64);
    let start = Instant::now();
    let mut n = 0u64;
    while !done.load(Ordering::Relaxed) && !shared.stopping() {
        tokio::time::sleep_until((start + secs(n as f64 / rate)).into()).await;
        n += 1;
        let body = format!(r#"{{"sender":{from},"receiver":{to},"content":"probe {n}"}}"#);
        let began = Instant::now();
        let result = post(&client, shared, "/messages/peers", body).await;
        let micros = began.elapsed().as_micros() as u64;
        let mut stats = w.stats.borrow_mut();
        match result {
            Ok(_) => stats.probe.saturating_record(micros),
            Err(f) => {
                stats.probe_errors += 1;
                shared.error(f.text);
            }
        }
    }
}
