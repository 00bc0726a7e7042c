//! Push jobs for recipients who are not online (SPEC §6), and the sinks that deliver them.
//!
//! Producers hand jobs to a `PushQueue`, a bounded channel read by one worker:
//! - one-receiver jobs (`UserSession`: peer, system, customer) without waiting; a full queue
//!   drops the job, counted (`imd_push_jobs_dropped_total`) and logged once per burst;
//! - group jobs as a stream (`submit_streamed`, from `dispatch/push_stream.rs`): the producer
//!   waits while `STREAM_WINDOW` of its jobs are queued or being written (backpressure), so a
//!   million-member group's ~1,000 jobs never sit in memory at once.
//!
//! The worker batches jobs (`push.batch_size`, `push.flush_interval_ms`), looks up the device
//! tokens a one-receiver job does not have yet with one store round-trip per batch, skips jobs
//! whose receivers have no token, and writes the batch to the sink in one round-trip: RPUSH to
//! GoBelieve's queues (`redis`), one POST (`webhook`), or log lines.

mod job;
mod sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

pub use self::job::{GROUP_JOB_RECEIVERS, PushJob};
use crate::config::{PushSettings, PushSinkKind};
use crate::domain::UserKey;
use crate::ratelimit::Throttle;
use crate::store::Store;

/// Streamed (group) jobs queued or being written at once, over all producers: with 1,000
/// receivers a job, at most 64,000 receivers wait in memory.
const STREAM_WINDOW: usize = 64;

enum Command {
    /// A job; a streamed one holds its share of `STREAM_WINDOW` until it is written.
    Job(PushJob, Option<OwnedSemaphorePermit>),
    /// Write everything queued so far, then answer.
    Flush(oneshot::Sender<()>),
}

/// Where producers hand jobs; cheap to clone.
#[derive(Clone)]
pub struct PushQueue {
    tx: Option<mpsc::Sender<Command>>,
    sink: &'static str,
    /// Permits for streamed jobs in flight.
    window: Arc<Semaphore>,
    /// Counts and logs (once per burst) jobs a limit made us drop.
    drops: Arc<Drops>,
}

impl PushQueue {
    /// A queue that discards everything (sink `none`).
    pub fn disabled() -> PushQueue {
        PushQueue {
            tx: None,
            sink: "none",
            window: Arc::new(Semaphore::new(STREAM_WINDOW)),
            drops: Arc::new(Drops::new()),
        }
    }

    /// Starts the worker on its own arbiter and returns the queue feeding it.
    pub fn start(settings: &PushSettings, store: Store, store_redis_url: &str) -> PushQueue {
        let sink = match settings.sink {
            PushSinkKind::None => return PushQueue::disabled(),
            PushSinkKind::Log => "log",
            PushSinkKind::Redis => "redis",
            PushSinkKind::Webhook => "webhook",
        };
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let settings = settings.clone();
        let redis_url = if settings.redis_url.is_empty() {
            store_redis_url.to_string()
        } else {
            settings.redis_url.clone()
        };
        // The worker owns an HTTP client (not Send), so it lives on its own arbiter thread.
        let arbiter = actix::Arbiter::new();
        arbiter.spawn_fn(move || {
            actix::spawn(async move {
                let sink = sink::Sink::new(&settings, &redis_url);
                worker(rx, settings, store, sink).await;
                actix::Arbiter::current().stop();
            });
        });
        PushQueue {
            tx: Some(tx),
            sink,
            window: Arc::new(Semaphore::new(STREAM_WINDOW)),
            drops: Arc::new(Drops::new()),
        }
    }

    /// False for sink `none`: producers need not work out receivers at all.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether group jobs must carry their receivers' device tokens. Not for the redis sink:
    /// GoBelieve's push daemon reads the tokens of every receiver of `group_push_queue`
    /// itself.
    pub fn needs_tokens(&self) -> bool {
        self.sink != "redis"
    }

    /// Hands a job to the worker without waiting; a full queue drops it (counted, logged).
    pub fn submit(&self, job: PushJob) {
        let Some(tx) = &self.tx else { return };
        let queue = job.queue();
        match tx.try_send(Command::Job(job, None)) {
            Ok(()) => self.queued(queue),
            Err(_) => self.drops.record(self.sink, "queue_full", 1),
        }
    }

    /// Hands a job to the worker, waiting while `STREAM_WINDOW` streamed jobs are in flight
    /// (backpressure for producers of many jobs). False once the worker is gone.
    pub async fn submit_streamed(&self, job: PushJob) -> bool {
        let Some(tx) = &self.tx else { return false };
        let Ok(permit) = self.window.clone().acquire_owned().await else {
            return false;
        };
        let queue = job.queue();
        let sent = tx.send(Command::Job(job, Some(permit))).await.is_ok();
        if sent {
            self.queued(queue);
        }
        sent
    }

    fn queued(&self, queue: &'static str) {
        metrics::counter!("imd_push_jobs_total", "sink" => self.sink, "queue" => queue)
            .increment(1);
    }

    /// Counts (and logs, once per burst) `n` jobs a producer had to drop for `reason`.
    pub fn dropped(&self, reason: &'static str, n: u64) {
        self.drops.record(self.sink, reason, n);
    }

    /// Waits (bounded) until every job submitted so far has been handed to the sink.
    pub async fn flush(&self, within: Duration) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Command::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(within, wait).await;
        }
    }
}

/// Dropped jobs: every one counted in `imd_push_jobs_dropped_total{sink,reason}`, and one
/// warning per second at most, with how many went since the last one.
struct Drops {
    since_log: AtomicU64,
    log: Throttle,
}

impl Drops {
    fn new() -> Drops {
        Drops {
            since_log: AtomicU64::new(0),
            log: Throttle::new(Duration::from_secs(1)),
        }
    }

    fn record(&self, sink: &'static str, reason: &'static str, n: u64) {
        metrics::counter!("imd_push_jobs_dropped_total", "sink" => sink, "reason" => reason)
            .increment(n);
        let pending = self.since_log.fetch_add(n, Ordering::Relaxed) + n;
        if self.log.due() {
            self.since_log.fetch_sub(pending, Ordering::Relaxed);
            tracing::warn!(sink, reason, dropped = pending, "push jobs dropped");
        }
    }
}

/// What the worker is gathering for its next write.
#[derive(Default)]
struct Gathered {
    batch: Vec<PushJob>,
    /// Permits of the streamed jobs in `batch`, released once it is written.
    permits: Vec<OwnedSemaphorePermit>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Gathered {
    fn take(&mut self, cmd: Command) {
        match cmd {
            Command::Job(job, permit) => {
                self.batch.push(job);
                self.permits.extend(permit);
            }
            Command::Flush(done) => self.flushes.push(done),
        }
    }
}

async fn worker(
    mut rx: mpsc::Receiver<Command>,
    settings: PushSettings,
    store: Store,
    mut sink: sink::Sink,
) {
    let linger = Duration::from_millis(settings.flush_interval_ms);
    let mut g = Gathered::default();
    while let Some(first) = rx.recv().await {
        g.take(first);
        // Let the batch fill while asleep: jobs queued meanwhile wake nobody (waiting on the
        // channel instead would mean one wake-up of this thread per job).
        if g.flushes.is_empty() {
            tokio::time::sleep(linger).await;
        }
        while g.batch.len() < settings.batch_size {
            match rx.try_recv() {
                Ok(cmd) => g.take(cmd),
                Err(_) => break,
            }
        }
        if !g.batch.is_empty() {
            resolve_tokens(&store, &mut g.batch).await;
            g.batch.retain(|job| !job.tokenless());
            if !g.batch.is_empty() {
                sink.write(&g.batch).await;
            }
            g.batch.clear();
        }
        g.permits.clear();
        for done in g.flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Fills in missing device tokens for a whole batch with one store call.
async fn resolve_tokens(store: &Store, batch: &mut [PushJob]) {
    let wanted: Vec<UserKey> = batch.iter().flat_map(PushJob::missing_tokens).collect();
    if wanted.is_empty() {
        return;
    }
    let found = match store.device_tokens(&wanted).await {
        Ok(found) => found,
        Err(e) => {
            // Push without tokens rather than not at all; consumers can look them up.
            tracing::warn!(error = %e, "push: could not load device tokens");
            return;
        }
    };
    let mut found = found.into_iter();
    for job in batch {
        job.fill_tokens(&mut found);
    }
}
