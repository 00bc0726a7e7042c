//! Per-worker delivery hubs. A connection's socket task lives on one HTTP worker thread; its
//! hub is a task on the same thread. A fan-out groups its targets by hub and sends each hub one
//! job, so the thread that fans out wakes each worker once per message instead of once per
//! member, and the hub wakes its connections with cheap same-thread wake-ups.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::frame::Spliced;
use super::outbox::{Frame, Outbox};

/// What every target of one job gets.
#[derive(Clone)]
pub enum Delivery {
    /// A stored message: each target gets it with its own inbox seq.
    Seq(Arc<Spliced>),
    /// The same frame for everyone (super-group messages).
    Shared(Frame),
}

/// Connections of one hub to queue a delivery on: (outbox, seq; unused for `Shared`).
pub struct Job {
    pub delivery: Delivery,
    pub targets: Vec<(Arc<Outbox>, u64)>,
}

impl Job {
    /// Queues the delivery on every target, here and now.
    pub fn run(self) {
        for (outbox, seq) in self.targets {
            match &self.delivery {
                Delivery::Seq(parts) => outbox.push_seq(seq, Frame::Spliced(parts.clone(), seq)),
                Delivery::Shared(frame) => outbox.push(frame.clone()),
            };
        }
    }
}

/// Jobs a hub may have waiting before fan-outs deliver to its connections themselves.
const HUB_QUEUE: usize = 4096;

/// The hubs of one dispatcher, one per thread that has connections.
#[derive(Default)]
pub struct Hubs {
    /// Unique per dispatcher (tests run several in one process).
    id: u64,
    senders: std::sync::RwLock<Vec<mpsc::Sender<Job>>>,
}

thread_local! {
    /// This thread's hub index, per dispatcher id.
    static LOCAL: RefCell<HashMap<u64, usize>> = RefCell::new(HashMap::new());
}

impl Hubs {
    pub fn new() -> Hubs {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Hubs {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            senders: Default::default(),
        }
    }

    /// The hub of the calling thread, started (as a task on this thread) the first time.
    pub fn local(&self) -> usize {
        LOCAL.with(|local| {
            *local.borrow_mut().entry(self.id).or_insert_with(|| {
                let (tx, mut rx) = mpsc::channel::<Job>(HUB_QUEUE);
                actix_web::rt::spawn(async move {
                    while let Some(job) = rx.recv().await {
                        job.run();
                    }
                });
                let mut senders = self.senders.write().unwrap_or_else(|p| p.into_inner());
                senders.push(tx);
                senders.len() - 1
            })
        })
    }

    pub fn count(&self) -> usize {
        self.senders.read().map_or(0, |s| s.len())
    }

    /// Hands a job to hub `i`, waiting while its queue is full (jobs of one hub stay in order).
    /// A hub that is gone (its worker stopped) is bypassed: the job runs here.
    pub async fn send(&self, i: usize, job: Job) {
        let sender = self.senders.read().ok().and_then(|s| s.get(i).cloned());
        match sender {
            Some(tx) => {
                if let Err(mpsc::error::SendError(job)) = tx.send(job).await {
                    job.run();
                }
            }
            None => job.run(),
        }
    }
}
