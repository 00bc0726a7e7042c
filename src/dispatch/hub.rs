//! Per-thread delivery hubs. A connection's socket task lives on one connection thread
//! (`conn_threads.rs`); that thread's hub is a task beside it, with a thread-local table of the
//! thread's connections. A fan-out groups its targets by hub as (connection id, seq) pairs —
//! touching no connection's state from the fanning-out thread — and sends each hub one job; the
//! hub queues the frame on all its connections first, then wakes them in slices that yield
//! (`run_hub`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::frame::Spliced;
use super::outbox::{Frame, Outbox};
use super::pace;

/// What every target of one job gets.
#[derive(Clone)]
pub enum Delivery {
    /// A stored message: each target gets it with its own inbox seq.
    Seq(Arc<Spliced>),
    /// The same frame for everyone (super-group messages).
    Shared(Frame),
}

/// (connection id, seq) pairs of one hub, shared between jobs.
pub type HubTargets = Arc<[(u64, u64)]>;

/// Connections of one hub to queue a delivery on: (connection id, seq; unused for `Shared`),
/// except `exclude` (the sending connection). Shared, so that a super group's message reuses
/// the lists of the one before it (`group/targets.rs`).
pub struct Job {
    pub delivery: Delivery,
    pub targets: HubTargets,
    pub exclude: Option<u64>,
}

/// Jobs a hub may have waiting before fan-outs wait for it.
const HUB_QUEUE: usize = 4096;

/// Connections a hub wakes before it lets the thread's other tasks run.
const WAKE_SLICE: usize = 64;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// This thread's hub of one dispatcher.
struct LocalHub {
    index: usize,
    /// The connections whose socket tasks run on this thread.
    conns: FastMap<u64, Arc<Outbox>>,
}

thread_local! {
    /// Per dispatcher id (tests run several dispatchers in one process).
    static LOCAL: RefCell<FastMap<u64, LocalHub>> = RefCell::new(FastMap::default());
}

/// The hubs of one dispatcher, one per thread that has connections.
pub struct Hubs {
    id: u64,
    senders: std::sync::RwLock<Vec<mpsc::Sender<Job>>>,
    /// Connections attached over all threads (the tables themselves are thread-local).
    attached: AtomicUsize,
}

impl Default for Hubs {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Hubs {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            senders: Default::default(),
            attached: AtomicUsize::new(0),
        }
    }
}

impl Hubs {
    /// Registers a connection with the calling thread's hub (starting the hub, as a task on
    /// this thread, the first time); returns the hub's index. Call on the thread that will run
    /// the connection's socket task.
    pub fn attach(&self, conn: u64, outbox: Arc<Outbox>) -> usize {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let hub = local.entry(self.id).or_insert_with(|| LocalHub {
                index: self.start_hub(),
                conns: FastMap::default(),
            });
            if hub.conns.insert(conn, outbox).is_none() {
                self.attached.fetch_add(1, Ordering::Relaxed);
            }
            hub.index
        })
    }

    /// Unregisters a connection (on its thread).
    pub fn detach(&self, conn: u64) {
        LOCAL.with(|local| {
            if let Some(hub) = local.borrow_mut().get_mut(&self.id)
                && hub.conns.remove(&conn).is_some()
            {
                self.attached.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }

    fn start_hub(&self) -> usize {
        let (tx, rx) = mpsc::channel::<Job>(HUB_QUEUE);
        let id = self.id;
        actix_web::rt::spawn(run_hub(id, rx));
        let mut senders = self.senders.write().unwrap_or_else(|p| p.into_inner());
        senders.push(tx);
        senders.len() - 1
    }

    /// Connections attached to any hub of this dispatcher.
    pub fn attached(&self) -> usize {
        self.attached.load(Ordering::Relaxed)
    }

    pub fn count(&self) -> usize {
        self.senders.read().map_or(0, |s| s.len())
    }

    /// Hands a job to hub `i`, waiting while its queue is full (jobs of one hub stay in order).
    pub async fn send(&self, i: usize, job: Job) {
        let sender = self.senders.read().ok().and_then(|s| s.get(i).cloned());
        if let Some(tx) = sender {
            // A closed hub means its thread stopped: its connections are gone too.
            let _ = tx.send(job).await;
        }
    }
}

/// Jobs, and deliveries, a hub queues on its connections per round (before it has woken them
/// all). The messages of a round go out in one write per connection, so the more the cheaper
/// (a 10,000-member burst: 0.46 µs a delivery at 64 messages a round, 1.2 µs at 13); a bound
/// keeps a publisher that outruns delivery from piling frames up in every outbox instead (all
/// 1,000 messages of a serial publisher at once: 10,000 growing queues, a page fault and a
/// cache miss per frame, 4.6 µs a delivery). What waits beyond a round waits as jobs, one per
/// hub and message, in the channel; a full channel makes the fan-outs wait.
const ROUND_JOBS: usize = 64;
const ROUND_DELIVERIES: usize = 1 << 20;
/// A round of small jobs (normal groups, peers: tens of targets each) goes on past
/// `ROUND_JOBS`, up to `SMALL_ROUND_JOBS`, while it holds fewer than `SMALL_ROUND_DELIVERIES`:
/// when delivery has fallen behind, a connection then finds several of its messages in one
/// round and writes them at once, so the backlog costs less per delivery the longer it is.
/// 512, half the default `limits.outbound_queue`: a round of jobs all for one connection (a
/// flood to one user) cannot overflow a queue its client is reading.
const SMALL_ROUND_JOBS: usize = 512;
const SMALL_ROUND_DELIVERIES: usize = 16 * 1024;

/// A hub's loop: queue a round of jobs on its connections, then wake them in slices of
/// `WAKE_SLICE`, yielding after each, so the thread's other connections (and the hub's next
/// jobs) run between slices instead of behind a whole fan-out's writes.
async fn run_hub(hubs_id: u64, mut rx: mpsc::Receiver<Job>) {
    let (mut to_wake, mut round) = (VecDeque::new(), Vec::new());
    loop {
        if to_wake.is_empty() {
            pace::round_done();
            let Some(job) = rx.recv().await else { return };
            let deliveries = take_round(job, &mut rx, &mut round);
            pace::after_round(round.len(), deliveries);
            run_round(hubs_id, &mut round, &mut to_wake);
        }
        for outbox in to_wake.drain(..WAKE_SLICE.min(to_wake.len())) {
            outbox.wake_marked();
        }
        if to_wake.capacity() > 4 * WAKE_SLICE && to_wake.is_empty() {
            to_wake = VecDeque::new(); // an idle hub keeps no fan-out-sized buffer
        }
        tokio::task::yield_now().await;
    }
}

/// `first` and as many of the jobs queued after it as one round takes; returns their targets.
fn take_round(first: Job, rx: &mut mpsc::Receiver<Job>, round: &mut Vec<Job>) -> usize {
    let mut queued = first.targets.len();
    round.push(first);
    let more = |jobs: usize, queued: usize| {
        jobs < ROUND_JOBS && queued < ROUND_DELIVERIES
            || jobs < SMALL_ROUND_JOBS && queued < SMALL_ROUND_DELIVERIES
    };
    while more(round.len(), queued) {
        let Ok(job) = rx.try_recv() else { break };
        queued += job.targets.len();
        round.push(job);
    }
    queued
}

/// Queues a round's jobs on this thread's connections, in order, without waking them: those
/// not signalled yet are added to `to_wake`. Consecutive super-group messages to the same
/// targets reach each connection under one lock: a connection's outbox is a cache miss, paid
/// once for the run of messages instead of once per message (a serial publisher's round: 20 %
/// of the server's CPU was that miss, in `Outbox::put`).
fn run_round(hubs_id: u64, round: &mut Vec<Job>, to_wake: &mut VecDeque<Arc<Outbox>>) {
    LOCAL.with(|local| {
        let local = local.borrow();
        if let Some(hub) = local.get(&hubs_id) {
            let mut rest = &round[..];
            while let Some(first) = rest.first() {
                let n = rest.iter().take_while(|j| same_shared(first, j)).count();
                let (batch, after) = rest.split_at(n.max(1));
                queue_batch(hub, batch, to_wake);
                rest = after;
            }
        }
    });
    round.clear();
}

/// Both jobs deliver a shared frame to the same targets (the kept lists of one super group).
fn same_shared(a: &Job, b: &Job) -> bool {
    matches!(
        (&a.delivery, &b.delivery),
        (Delivery::Shared(_), Delivery::Shared(_))
    ) && Arc::ptr_eq(&a.targets, &b.targets)
        && a.exclude == b.exclude
}

/// Queues jobs with the same targets (one job, unless `same_shared`) on each target.
fn queue_batch(hub: &LocalHub, batch: &[Job], to_wake: &mut VecDeque<Arc<Outbox>>) {
    let Some(first) = batch.first() else { return };
    let shared = || {
        batch.iter().filter_map(|j| match &j.delivery {
            Delivery::Shared(frame) => Some(frame),
            Delivery::Seq(_) => None,
        })
    };
    for &(conn, seq) in first.targets.iter() {
        if Some(conn) == first.exclude {
            continue;
        }
        let Some(outbox) = hub.conns.get(&conn) else {
            continue;
        };
        let unsignalled = match &first.delivery {
            Delivery::Seq(parts) => {
                outbox.push_seq_deferred(seq, Frame::Spliced(parts.clone(), seq))
            }
            Delivery::Shared(_) => outbox.push_all_deferred(shared()),
        };
        if unsignalled {
            to_wake.push_back(outbox.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(targets: &HubTargets) -> Job {
        Job {
            delivery: Delivery::Shared(Frame::Ping),
            targets: targets.clone(),
            exclude: None,
        }
    }

    /// Takes one round from a channel holding `queued` jobs of `targets` each; its size.
    fn round_of(queued: usize, targets: usize) -> usize {
        let targets: HubTargets = (0..targets as u64).map(|c| (c, 0)).collect();
        let (tx, mut rx) = mpsc::channel(HUB_QUEUE);
        for _ in 0..queued {
            tx.try_send(job(&targets))
                .unwrap_or_else(|_| panic!("the channel holds {HUB_QUEUE}"));
        }
        let first = rx.try_recv().unwrap_or_else(|_| panic!("a first job"));
        let mut round = Vec::new();
        take_round(first, &mut rx, &mut round);
        round.len()
    }

    #[test]
    fn a_backlog_of_small_jobs_goes_out_in_a_large_round() {
        // Normal groups of 50 on two hubs: ~25 targets a job; 512 of them stay under the
        // delivery bound.
        assert_eq!(round_of(2000, 25), SMALL_ROUND_JOBS);
        // Groups of 100: the delivery bound ends the round first (16,384 / 50 → 328 jobs).
        assert_eq!(round_of(2000, 50), 328);
        // Peer messages (one target): the job bound.
        assert_eq!(round_of(2000, 1), SMALL_ROUND_JOBS);
        // Less queued than a round holds: all of it.
        assert_eq!(round_of(10, 25), 10);
    }

    #[test]
    fn a_backlog_of_large_jobs_keeps_rounds_of_64() {
        // A 10,000-member super group on two hubs: 5,000 targets a job.
        assert_eq!(round_of(500, 5000), ROUND_JOBS);
        // Huge jobs: the delivery bound of a round ends it before 64.
        assert_eq!(round_of(100, 100_000), 11);
    }
}
