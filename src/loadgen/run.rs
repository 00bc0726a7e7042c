//! The coordinating side of a run: it starts the client threads, hands them connections and
//! senders, watches the live counters (progress, completion, stalls), signals stop, and samples
//! the server around the measured phase.
//!
//! It only awaits channels and timers, so it may share its thread with the server under test
//! (as the in-process tests do).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::watch;

use super::options::Common;
use super::payload::unix_micros;
use super::pool::Pool;
use super::procfs::{self, Sample};
use super::progress::Progress;
use super::shared::Shared;
use super::stats::Counters;
use super::{binary, ws};

/// How often the coordinator looks at the counters.
const POLL: Duration = Duration::from_millis(20);

/// One run in progress.
pub struct Run {
    /// The common options the run was started with.
    pub opts: Common,
    /// What the client threads share (counters included).
    pub shared: Arc<Shared>,
    /// The client threads.
    pub pool: Pool,
    /// Set to `true` once: every task closes its connection and ends.
    stop: watch::Sender<bool>,
    /// The bar of the current phase (hidden for JSON or non-terminal output).
    pub progress: Progress,
    /// Server samples at the start and the end of the measured phase.
    pub server_before: Option<Sample>,
    pub server_after: Option<Sample>,
    /// This process at the same two moments: tells whether the client was the bottleneck.
    pub client_before: Option<Sample>,
    pub client_after: Option<Sample>,
    /// The server's peak RSS was reset as the measured phase began (its peak is the phase's).
    pub peak_reset: bool,
    /// Start of the whole run (for `elapsed_secs`).
    pub started: Instant,
}

impl Run {
    pub fn start(opts: &Common, progress: bool) -> anyhow::Result<Run> {
        let (stop, stop_rx) = watch::channel(false);
        let run_id = unix_micros() ^ (u64::from(std::process::id()) << 40);
        let shared = Arc::new(Shared::new(opts, run_id, stop_rx)?);
        let threads = opts.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        });
        let pool = Pool::start(threads, shared.clone())?;
        Ok(Run {
            opts: opts.clone(),
            shared,
            pool,
            stop,
            progress: Progress::new(progress),
            server_before: None,
            server_after: None,
            client_before: None,
            client_after: None,
            peak_reset: false,
            started: Instant::now(),
        })
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Samples the server (if `--server-pid`) and this process as the measured phase begins;
    /// the server's peak RSS is reset, so the report's peak is the phase's.
    pub fn mark_start(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.opts.server_pid {
            self.peak_reset = procfs::reset_peak(pid);
            self.server_before = Some(self.sample_servers(pid)?);
        }
        self.client_before = procfs::sample(std::process::id()).ok();
        Ok(())
    }

    /// Samples both as the measured phase ends.
    pub fn mark_end(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.opts.server_pid {
            self.server_after = Some(self.sample_servers(pid)?);
        }
        self.client_after = procfs::sample(std::process::id()).ok();
        Ok(())
    }

    /// The server's sample, with the CPU time of `--also-pids` added.
    fn sample_servers(&self, pid: u32) -> anyhow::Result<procfs::Sample> {
        let mut s = procfs::sample(pid)?;
        for other in &self.opts.also_pids {
            s.cpu_secs += procfs::sample(*other)?.cpu_secs;
        }
        Ok(s)
    }

    /// Tells every task to close its connection and stop.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Connects one WebSocket client per uid (token, upgrade, hello), each then receiving until
    /// stop, and waits until every one has connected or failed. Returns how many connected.
    pub async fn connect_all(&mut self, uids: Vec<u64>) -> anyhow::Result<u64> {
        self.connect_all_on(uids.into_iter().map(|u| (u, ws::IOS)).collect())
            .await
    }

    /// `connect_all` with each client's platform (`platform_id`).
    pub async fn connect_all_on(&mut self, clients: Vec<(u64, u8)>) -> anyhow::Result<u64> {
        let total = clients.len() as u64;
        let c = &self.shared.counters;
        let (ok_before, failed_before) = (
            Counters::get(&c.connected),
            Counters::get(&c.connect_failed),
        );
        for (uid, platform) in clients {
            drop(self.pool.spawn(move |w| async move {
                if w.shared.binary_for(uid) {
                    if let Some(conn) = binary::connect(&w, uid, platform).await {
                        binary::receive(&w, conn).await;
                    }
                } else if let Some(conn) = ws::connect(&w, uid, platform).await {
                    ws::receive(&w, conn).await;
                }
            }));
        }
        self.progress.phase("connecting", Some(total));
        let c = &self.shared.counters;
        let ok = || Counters::get(&c.connected) - ok_before;
        let done = || ok() + Counters::get(&c.connect_failed) - failed_before;
        // A handshake is bounded by three timeouts (grant, upgrade, hello); no progress for
        // longer than that means something is stuck.
        let stall = self.shared.timeout * 3 + Duration::from_secs(5);
        let mut last = (0, Instant::now());
        while done() < total {
            tokio::time::sleep(POLL).await;
            let now = done();
            self.progress.set(now);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > stall {
                bail!("connecting stalled at {now} of {total} clients for {stall:?}");
            }
        }
        self.progress.finish();
        Ok(ok())
    }

    /// `connect_all`, failing with the first error samples unless every client connected.
    pub async fn connect_everyone(&mut self, uids: Vec<u64>) -> anyhow::Result<()> {
        self.connect_everyone_on(uids.into_iter().map(|u| (u, ws::IOS)).collect())
            .await
    }

    /// `connect_all_on`, failing unless every client connected.
    pub async fn connect_everyone_on(&mut self, clients: Vec<(u64, u8)>) -> anyhow::Result<()> {
        let wanted = clients.len() as u64;
        let connected = self.connect_all_on(clients).await?;
        if connected < wanted {
            bail!(
                "only {connected} of {wanted} clients connected; first errors: {}",
                self.shared.errors().join(" | ")
            );
        }
        Ok(())
    }

    /// Waits until `counter` reaches `target`, giving up once `within` passes without it
    /// moving, and moves the bar; returns whether it got there.
    pub async fn wait_for(
        &mut self,
        what: &str,
        counter: &AtomicU64,
        target: u64,
        within: Duration,
    ) -> bool {
        self.progress.phase(what, Some(target));
        let (mut last, mut until) = (Counters::get(counter), Instant::now() + within);
        loop {
            let now = Counters::get(counter);
            self.progress.set(now);
            if now >= target {
                self.progress.finish();
                return true;
            }
            if now > last {
                (last, until) = (now, Instant::now() + within); // still arriving: keep waiting
            } else if Instant::now() >= until {
                self.progress.finish();
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sleeps for `d` with a bar showing elapsed seconds (`what`: the phase name).
    pub async fn hold(&mut self, what: &str, d: Duration) {
        self.progress.phase(what, Some(d.as_secs().max(1)));
        let until = Instant::now() + d;
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(200))).await;
            self.progress.set(d.saturating_sub(left).as_secs());
        }
        self.progress.finish();
    }
}
