//! Client threads: each runs its own actix runtime (awc clients are single-threaded) and takes
//! jobs — one per simulated client or sender — from the coordinating task, which spreads them
//! round-robin so both cores carry load. HTTP senders (the app servers of a scenario) get as
//! many threads of their own, round-robin too: an app server is another process, and a sender
//! sharing a thread with thousands of clients waits behind their reads before it sees each
//! answer, so a serial publisher measured the load generator instead of the server (issue 13).
//!
//! A job is a closure sent to the thread that builds a local future there; its result comes back
//! through a oneshot channel. When the pool shuts down each thread finishes its tasks and hands
//! its `Stats` back.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::client::Clients;
use super::shared::Shared;
use super::stats::Stats;

/// The state one client thread gives its tasks.
pub struct Worker {
    /// Which thread (0-based).
    pub index: usize,
    /// Run-wide configuration, counters and the stop signal.
    pub shared: Arc<Shared>,
    /// This thread's measurements; tasks borrow it briefly, never across an await.
    pub stats: RefCell<Stats>,
    /// awc clients of this thread, one per source address.
    pub clients: Clients,
}

type LocalJob = Pin<Box<dyn Future<Output = ()>>>;
type Job = Box<dyn FnOnce(Rc<Worker>) -> LocalJob + Send>;

/// The client threads of a run.
pub struct Pool {
    /// Client threads started (fixed for the run); as many senders' threads come on top.
    threads: usize,
    /// Job queues, one per thread, the senders' after the clients'; emptied (closed) at
    /// shutdown.
    queues: Vec<mpsc::UnboundedSender<Job>>,
    /// Where each thread hands back its `Stats` when it ends.
    finished: Vec<oneshot::Receiver<Stats>>,
    /// Round-robin positions for the next client job and the next sender.
    next: AtomicUsize,
    next_sender: AtomicUsize,
}

impl Pool {
    pub fn start(threads: usize, shared: Arc<Shared>) -> anyhow::Result<Pool> {
        let mut queues = Vec::new();
        let mut finished = Vec::new();
        let threads = threads.max(1);
        for index in 0..2 * threads {
            let (tx, rx) = mpsc::unbounded_channel::<Job>();
            let (done_tx, done_rx) = oneshot::channel();
            let stats = Stats::new()?;
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("loadgen-{index}"))
                .spawn(move || worker_main(index, shared, stats, rx, done_tx))
                .context("starting a client thread")?;
            queues.push(tx);
            finished.push(done_rx);
        }
        Ok(Pool {
            threads,
            queues,
            finished,
            next: AtomicUsize::new(0),
            next_sender: AtomicUsize::new(0),
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on the next thread (round-robin); its result arrives on the receiver (which
    /// errors if the thread is gone).
    pub fn spawn<F, Fut, T>(&self, f: F) -> oneshot::Receiver<T>
    where
        F: FnOnce(Rc<Worker>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.threads;
        self.spawn_on(i, f)
    }

    /// Runs `f` on the next senders' thread (round-robin), apart from the clients.
    pub fn spawn_sender<F, Fut, T>(&self, f: F) -> oneshot::Receiver<T>
    where
        F: FnOnce(Rc<Worker>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let i = self.next_sender.fetch_add(1, Ordering::Relaxed) % self.threads;
        self.spawn_on(self.threads + i, f)
    }

    fn spawn_on<F, Fut, T>(&self, i: usize, f: F) -> oneshot::Receiver<T>
    where
        F: FnOnce(Rc<Worker>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |w| {
            Box::pin(async move {
                let _ = tx.send(f(w).await);
            })
        });
        // A closed (or, after shutdown, missing) queue drops the job: the caller sees the
        // result channel close.
        if let Some(q) = self.queues.get(i) {
            let _ = q.send(job);
        }
        rx
    }

    /// Lets every thread finish its tasks (the caller has signalled stop) and merges their
    /// measurements; a thread that does not finish within `within` is reported as an error.
    pub async fn shutdown(&mut self, within: Duration) -> anyhow::Result<Stats> {
        self.queues.clear();
        let mut total = Stats::new()?;
        for (i, rx) in std::mem::take(&mut self.finished).into_iter().enumerate() {
            let stats = tokio::time::timeout(within, rx)
                .await
                .map_err(|_| anyhow!("client thread {i} did not stop within {within:?}"))?
                .map_err(|_| {
                    anyhow!("client thread {i} ended without its measurements (panicked?)")
                })?;
            total.merge(stats)?;
        }
        Ok(total)
    }
}

fn worker_main(
    index: usize,
    shared: Arc<Shared>,
    stats: Stats,
    mut queue: mpsc::UnboundedReceiver<Job>,
    done: oneshot::Sender<Stats>,
) {
    let system = actix_web::rt::System::new();
    let worker = system.block_on(async move {
        let worker = Rc::new(Worker {
            index,
            clients: Clients::new(&shared),
            shared,
            stats: RefCell::new(stats),
        });
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                job = queue.recv() => match job {
                    Some(job) => {
                        tasks.spawn_local(job(worker.clone()));
                    }
                    None => break,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
        worker
    });
    if let Ok(worker) = Rc::try_unwrap(worker) {
        let _ = done.send(worker.stats.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::options::Common;

    fn thread_name() -> String {
        std::thread::current()
            .name()
            .unwrap_or_default()
            .to_string()
    }

    /// A sender never shares a thread with the clients, whose reads it would wait behind.
    #[actix_web::test]
    async fn senders_run_on_threads_apart_from_the_clients() -> anyhow::Result<()> {
        let (_stop, rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared::new(&Common::new("http://127.0.0.1:1"), 1, rx)?);
        let mut pool = Pool::start(2, shared)?;
        let (mut clients, mut senders) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            clients.push(pool.spawn(|_| async { thread_name() }).await?);
            senders.push(pool.spawn_sender(|_| async { thread_name() }).await?);
        }
        pool.shutdown(Duration::from_secs(5)).await?;
        clients.sort();
        clients.dedup();
        senders.sort();
        senders.dedup();
        assert_eq!(clients, ["loadgen-0", "loadgen-1"], "clients round-robin");
        assert_eq!(
            senders,
            ["loadgen-2", "loadgen-3"],
            "senders round-robin, apart"
        );
        Ok(())
    }
}
