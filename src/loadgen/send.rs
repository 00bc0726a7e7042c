//! The sending side shared by every message scenario: a few HTTP senders, each owning one
//! keep-alive connection, draw sequence numbers from one counter and post messages on a common
//! schedule (message n is due at start + n / rate) or back to back.
//!
//! Each message carries its `Payload`; a sender remembers which sequence numbers were not
//! acknowledged, so their deliveries (if any) are not counted as expected ones.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::client::post;
use super::options::secs;
use super::payload::{Payload, Rng, unix_micros};
use super::pool::Worker;
use super::report::Outcome;
use super::run::Run;
use super::stats::Counters;

/// Chooses `(sender, receiver)` for a message; the receiver is a uid or a group id.
pub type Pick = dyn Fn(&mut Rng) -> (u64, u64) + Send + Sync;

/// What to send, how fast and for how long.
pub struct SendPlan {
    /// `/messages/peers` or `/messages/groups`.
    pub path: &'static str,
    /// Message budget (`None`: until the duration is over).
    pub total: Option<u64>,
    /// Messages per second over all senders (0: as fast as responses come back).
    pub rate: f64,
    /// Concurrent senders.
    pub senders: usize,
    /// No message is started this long after the first (`None`: no time limit).
    pub duration: Option<Duration>,
    pub pick: Arc<Pick>,
}

/// What the sending phase did.
pub struct Sent {
    /// Sequence numbers whose send failed.
    pub failed: Vec<u64>,
    /// Of those, sends that got no answer at all (they may have been stored anyway).
    pub unanswered: u64,
    /// From the first send to the last response.
    pub secs: f64,
}

impl Run {
    /// Runs the plan to completion (budget spent or deadline passed), with a progress bar.
    pub async fn send(&mut self, plan: SendPlan) -> Sent {
        let plan = Arc::new(plan);
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        // Far enough to never matter, near enough not to overflow `Instant`.
        let deadline = start + plan.duration.unwrap_or(Duration::from_secs(365 * 86_400));
        let mut handles = Vec::new();
        for slot in 0..plan.senders.max(1) as u64 {
            let (plan, next) = (plan.clone(), next.clone());
            handles.push(
                self.pool
                    .spawn_sender(move |w| sender(w, plan, next, (start, deadline), slot)),
            );
        }
        self.progress.phase("sending", plan.total);
        let shared = self.shared.clone();
        let c = move || {
            Counters::get(&shared.counters.sent_ok) + Counters::get(&shared.counters.send_failed)
        };
        let (mut failed, mut unanswered) = (Vec::new(), 0);
        for mut h in handles {
            loop {
                tokio::select! {
                    r = &mut h => {
                        let (f, u) = r.unwrap_or_default();
                        failed.extend(f);
                        unanswered += u;
                        break;
                    }
                    _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {
                        self.progress.set(c());
                    }
                }
            }
        }
        self.progress.finish();
        Sent {
            failed,
            unanswered,
            secs: start.elapsed().as_secs_f64(),
        }
    }
}

impl Run {
    /// Waits (until `--drain` passes without one) for the deliveries of what was sent: every
    /// receiver of every acknowledged message — and of the unanswered sends too: one that
    /// timed out may still have been stored, and its deliveries must not end the wait before
    /// ours arrived.
    pub async fn drain(&mut self, sent: &Sent, per_message: u64) {
        let shared = self.shared.clone();
        let c = &shared.counters;
        let target = (Counters::get(&c.sent_ok) + sent.unanswered) * per_message;
        let within = self.opts.drain();
        self.wait_for("delivering", &c.delivered, target, within)
            .await;
    }

    /// The measured phase of a delivery scenario (`peer`, `groups`, `fanout`): samples both
    /// processes, sends by `plan`, waits for the `per_message` deliveries of every message
    /// (`drain`), samples again.
    pub async fn deliveries(
        &mut self,
        plan: SendPlan,
        per_message: u64,
    ) -> anyhow::Result<Outcome> {
        self.mark_start()?;
        let sent = self.send(plan).await;
        self.drain(&sent, per_message).await;
        self.mark_end()?;
        Ok(Outcome {
            per_message,
            sent: Some(sent),
            ..Outcome::default()
        })
    }
}

async fn sender(
    w: Rc<Worker>,
    plan: Arc<SendPlan>,
    next: Arc<AtomicU64>,
    (start, deadline): (Instant, Instant),
    slot: u64,
) -> (Vec<u64>, u64) {
    let shared = &w.shared;
    let c = &shared.counters;
    let client = w.clients.dedicated(slot + w.index as u64);
    let mut rng = Rng::new(shared.run_id ^ (slot + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let (mut failed, mut unanswered) = (Vec::new(), 0);
    while !shared.stopping() {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if plan.total.is_some_and(|t| n >= t) {
            break;
        }
        if plan.rate > 0.0 {
            // Paced: a message is in if it is due before the deadline (the timer may wake a
            // little after the due time; that must not drop the last one).
            let due = start + secs(n as f64 / plan.rate);
            if due >= deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        } else if Instant::now() >= deadline {
            break;
        }
        let (sender, receiver) = (plan.pick)(&mut rng);
        let t = unix_micros();
        let content = Payload {
            t,
            n,
            s: sender,
            r: shared.run_id,
        }
        .encode();
        // The payload has no characters that need escaping beyond its quotes.
        let body = format!(
            r#"{{"sender":{sender},"receiver":{receiver},"content":"{}"}}"#,
            content.replace('"', "\\\"")
        );
        c.first_send_us.fetch_min(t, Ordering::Relaxed);
        let began = Instant::now();
        let result = post(&client, shared, plan.path, body).await;
        let micros = began.elapsed().as_micros() as u64;
        let mut stats = w.stats.borrow_mut();
        stats.http.saturating_record(micros);
        match result {
            Ok(_) => Counters::bump(&c.sent_ok),
            Err(f) => {
                Counters::bump(&c.send_failed);
                unanswered += u64::from(f.status.is_none());
                *stats.http_errors.entry(f.key()).or_default() += 1;
                shared.error(f.text);
                failed.push(n);
            }
        }
    }
    (failed, unanswered)
}
