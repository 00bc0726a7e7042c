//! Measurements: live counters every thread bumps (atomics, read by the progress bar and the
//! completion check) and per-thread histograms merged once at the end.
//!
//! Histograms are recorded on the worker thread that observes the event and never shared while
//! the run is going, so recording is a plain `&mut` update with no contention.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Live counters shared by all threads of a run.
#[derive(Debug)]
pub struct Counters {
    /// Clients whose WebSocket got its `hello`.
    pub connected: AtomicU64,
    /// Clients that failed to get a token, upgrade or hello.
    pub connect_failed: AtomicU64,
    /// Sends answered 200.
    pub sent_ok: AtomicU64,
    /// Sends answered otherwise or not at all.
    pub send_failed: AtomicU64,
    /// First arrivals of (receiver, message): the completion check compares it to expected.
    pub delivered: AtomicU64,
    /// Live connections the server closed (or that broke) before the run ended.
    pub dropped: AtomicU64,
    /// Earliest send time of the run, unix µs (`u64::MAX` until the first send).
    pub first_send_us: AtomicU64,
    /// Latest delivery time of the run, unix µs.
    pub last_delivery_us: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            connected: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            sent_ok: AtomicU64::new(0),
            send_failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            first_send_us: AtomicU64::new(u64::MAX),
            last_delivery_us: AtomicU64::new(0),
        }
    }
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Deliveries of one message, across all receivers a thread served.
#[derive(Debug, Default, Clone, Copy)]
pub struct MsgStat {
    /// Receivers that got it (first deliveries only).
    pub count: u64,
    /// Latency to the slowest receiver, µs.
    pub max_latency: u64,
}

impl MsgStat {
    fn add(&mut self, count: u64, latency: u64) {
        self.count += count;
        self.max_latency = self.max_latency.max(latency);
    }
}

/// Messages numbered beyond this are kept in a map (a run sends far fewer).
const DENSE_MESSAGES: u64 = 1 << 20;

/// `MsgStat` by sequence number: a run numbers its messages 0, 1, 2, … so a vector indexed by
/// the number (a count of 0: none yet) costs an index per delivery instead of a hash lookup.
#[derive(Debug, Default)]
pub struct PerMsg {
    dense: Vec<MsgStat>,
    beyond: HashMap<u64, MsgStat>,
}

impl PerMsg {
    fn entry(&mut self, n: u64) -> &mut MsgStat {
        match usize::try_from(n) {
            Ok(i) if n < DENSE_MESSAGES => {
                if i >= self.dense.len() {
                    self.dense
                        .resize((i + 1).next_power_of_two(), MsgStat::default());
                }
                &mut self.dense[i]
            }
            _ => self.beyond.entry(n).or_default(),
        }
    }

    pub fn get(&self, n: u64) -> Option<&MsgStat> {
        let dense = usize::try_from(n).ok().and_then(|i| self.dense.get(i));
        dense
            .or_else(|| self.beyond.get(&n))
            .filter(|m| m.count > 0)
    }

    /// The messages delivered at least once, with their numbers.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &MsgStat)> + Clone {
        let dense = (0u64..).zip(&self.dense);
        dense
            .chain(self.beyond.iter().map(|(&n, m)| (n, m)))
            .filter(|(_, m)| m.count > 0)
    }
}

/// What one worker thread measured.
#[derive(Debug)]
pub struct Stats {
    /// Send → receive latency of every first delivery, µs.
    pub latency: Histogram<u64>,
    /// HTTP request latency of sends, µs.
    pub http: Histogram<u64>,
    /// WebSocket connect → `hello`, µs.
    pub connect: Histogram<u64>,
    /// HTTP latency of the unrelated peer sends (`--probe-rate`), µs.
    pub probe: Histogram<u64>,
    /// Unrelated peer sends that failed.
    pub probe_errors: u64,
    /// Failed HTTP sends by status ("transport" when there was no response).
    pub http_errors: BTreeMap<String, u64>,
    /// First deliveries per message sequence number.
    pub per_msg: PerMsg,
    /// Deliveries of a message a receiver already had.
    pub duplicates: u64,
    /// Message frames that were not this run's payload (notifications, other runs).
    pub foreign: u64,
    /// WebSocket pings answered with a pong.
    pub pings: u64,
}

impl Stats {
    pub fn new() -> anyhow::Result<Stats> {
        let hist = histogram;
        Ok(Stats {
            latency: hist()?,
            http: hist()?,
            connect: hist()?,
            probe: hist()?,
            probe_errors: 0,
            http_errors: BTreeMap::new(),
            per_msg: PerMsg::default(),
            duplicates: 0,
            foreign: 0,
            pings: 0,
        })
    }

    pub fn delivered(&mut self, n: u64, latency: u64) {
        self.latency.saturating_record(latency);
        self.per_msg.entry(n).add(1, latency);
    }

    /// Folds another thread's measurements into this one.
    pub fn merge(&mut self, o: Stats) -> anyhow::Result<()> {
        self.latency.add(&o.latency).context("merging histograms")?;
        self.http.add(&o.http).context("merging histograms")?;
        self.connect.add(&o.connect).context("merging histograms")?;
        self.probe.add(&o.probe).context("merging histograms")?;
        self.probe_errors += o.probe_errors;
        for (k, v) in o.http_errors {
            *self.http_errors.entry(k).or_default() += v;
        }
        for (n, m) in o.per_msg.iter() {
            self.per_msg.entry(n).add(m.count, m.max_latency);
        }
        self.duplicates += o.duplicates;
        self.foreign += o.foreign;
        self.pings += o.pings;
        Ok(())
    }
}

/// Largest latency tracked (one hour in µs); anything slower is recorded as this.
const MAX_MICROS: u64 = 3_600_000_000;

/// A histogram of microseconds with 3 significant digits and fixed bounds (so recording never
/// allocates and merging never fails).
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).context("creating a histogram")
}

/// Percentiles of a histogram, µs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    /// `None` for an empty histogram.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        (!h.is_empty()).then(|| Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        })
    }
}
