//! The report of a run: counts, rates, latency percentiles and server usage, built once from
//! the merged measurements, serializable as one JSON line and printable for people.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Serialize;

use super::procfs::Sample;
use super::run::Run;
use super::send::Sent;
use super::stats::{Counters, Percentiles, Stats, histogram};

/// What a scenario tells the report beyond the counters.
#[derive(Default)]
pub struct Outcome {
    /// Live deliveries each acknowledged message should produce.
    pub per_message: u64,
    /// The sending phase, if there was one.
    pub sent: Option<Sent>,
    /// Connection churn: (successful connects, seconds).
    pub churn: Option<(u64, f64)>,
    /// Idle connections held while the server was sampled.
    pub held: Option<u64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub elapsed_secs: f64,
    pub threads: usize,
    /// WebSocket connections that got their `hello` (every connect, for churn).
    pub clients_connected: u64,
    pub connect_failures: u64,
    /// Connections the server closed (or that broke) before the run ended.
    pub connections_dropped: u64,
    pub connects_per_sec: Option<f64>,
    /// Upgrade request → `hello`.
    pub connect_latency_us: Option<Percentiles>,
    /// Sends acknowledged with 200.
    pub messages_sent: u64,
    pub send_failures: u64,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    /// Received deliveries / (first send → last delivery).
    pub deliveries_per_sec: Option<f64>,
    pub lost: u64,
    pub duplicated: u64,
    /// Message frames that were not this run's (notifications, other runs, unacknowledged
    /// sends).
    pub foreign_frames: u64,
    /// Send → receive, every delivery.
    pub latency_us: Option<Percentiles>,
    /// Send → receive to the last receiver of each fully delivered message.
    pub last_member_latency_us: Option<Percentiles>,
    pub http: HttpReport,
    pub pings_answered: u64,
    pub server: Option<ServerReport>,
    /// First distinct errors seen.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpReport {
    /// Message sends (set-up requests are not counted).
    pub requests: u64,
    pub requests_per_sec: Option<f64>,
    pub latency_us: Option<Percentiles>,
    /// Failed sends by status; "transport" when there was no response.
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub pid: u32,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_delta_bytes: i64,
    /// User + system CPU time used during the measured phase.
    pub cpu_secs: f64,
    /// Of one core, over the measured phase.
    pub cpu_percent: f64,
    pub cpu_us_per_delivery: Option<f64>,
    pub cpu_us_per_request: Option<f64>,
    /// RSS delta / idle connections held.
    pub rss_per_connection_bytes: Option<f64>,
}

fn rate(n: u64, secs: f64) -> Option<f64> {
    (secs > 0.0 && n > 0).then(|| (n as f64 / secs * 10.0).round() / 10.0)
}

impl Report {
    pub fn build(scenario: &str, run: &Run, o: Outcome, stats: &Stats) -> anyhow::Result<Report> {
        let c = run.counters();
        let failed: HashSet<u64> = o
            .sent
            .as_ref()
            .map_or_else(HashSet::new, |s| s.failed.iter().copied().collect());
        let acked = stats.per_msg.iter().filter(|(n, _)| !failed.contains(n));
        let received: u64 = acked.clone().map(|(_, m)| m.count).sum();
        let mut last = histogram()?;
        for (_, m) in acked.filter(|(_, m)| o.per_message > 0 && m.count == o.per_message) {
            last.saturating_record(m.max_latency);
        }
        let from_failed: u64 = failed
            .iter()
            .filter_map(|n| stats.per_msg.get(n))
            .map(|m| m.count)
            .sum();
        let sent_ok = Counters::get(&c.sent_ok);
        let send_failed = Counters::get(&c.send_failed);
        let expected = sent_ok * o.per_message;
        let (first, last_delivery) = (
            Counters::get(&c.first_send_us),
            Counters::get(&c.last_delivery_us),
        );
        let delivery_secs = last_delivery.saturating_sub(first) as f64 / 1e6;
        let requests = sent_ok + send_failed;
        let server = match (run.opts.server_pid, run.server_before, run.server_after) {
            (Some(pid), Some(b), Some(a)) => Some(server(pid, b, a, received, requests, o.held)),
            _ => None,
        };
        Ok(Report {
            scenario: scenario.to_string(),
            elapsed_secs: (run.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            threads: run.pool.threads(),
            clients_connected: Counters::get(&c.connected),
            connect_failures: Counters::get(&c.connect_failed),
            connections_dropped: Counters::get(&c.dropped),
            connects_per_sec: o.churn.and_then(|(n, s)| rate(n, s)),
            connect_latency_us: Percentiles::of(&stats.connect),
            messages_sent: sent_ok,
            send_failures: send_failed,
            deliveries_expected: expected,
            deliveries_received: received,
            deliveries_per_sec: rate(received, delivery_secs),
            lost: expected.saturating_sub(received),
            duplicated: stats.duplicates,
            foreign_frames: stats.foreign + from_failed,
            latency_us: Percentiles::of(&stats.latency),
            last_member_latency_us: Percentiles::of(&last),
            http: HttpReport {
                requests,
                requests_per_sec: o.sent.as_ref().and_then(|s| rate(requests, s.secs)),
                latency_us: Percentiles::of(&stats.http),
                errors: stats.http_errors.clone(),
            },
            pings_answered: stats.pings,
            server,
            errors: run.shared.errors(),
        })
    }
}

fn server(
    pid: u32,
    b: Sample,
    a: Sample,
    received: u64,
    requests: u64,
    held: Option<u64>,
) -> ServerReport {
    let cpu = (a.cpu_secs - b.cpu_secs).max(0.0);
    let wall = a.at.duration_since(b.at).as_secs_f64();
    let delta = a.rss_bytes as i64 - b.rss_bytes as i64;
    let per = |n: u64| (n > 0).then(|| (cpu * 1e6 / n as f64 * 100.0).round() / 100.0);
    ServerReport {
        pid,
        rss_before_bytes: b.rss_bytes,
        rss_after_bytes: a.rss_bytes,
        rss_delta_bytes: delta,
        cpu_secs: (cpu * 100.0).round() / 100.0,
        cpu_percent: if wall > 0.0 {
            (cpu / wall * 1000.0).round() / 10.0
        } else {
            0.0
        },
        cpu_us_per_delivery: per(received),
        cpu_us_per_request: per(requests),
        rss_per_connection_bytes: held
            .filter(|n| *n > 0)
            .map(|n| (delta as f64 / n as f64).round()),
    }
}

fn pct(f: &mut fmt::Formatter<'_>, name: &str, p: &Option<Percentiles>) -> fmt::Result {
    match p {
        Some(p) => writeln!(
            f,
            "  {name:<22} p50 {} p90 {} p99 {} p99.9 {} max {} µs ({} samples)",
            p.p50, p.p90, p.p99, p.p999, p.max, p.count
        ),
        None => Ok(()),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "loadgen {} — {:.1} s on {} client threads",
            self.scenario, self.elapsed_secs, self.threads
        )?;
        writeln!(
            f,
            "  clients connected      {} (failed {}, dropped {})",
            self.clients_connected, self.connect_failures, self.connections_dropped
        )?;
        if let Some(r) = self.connects_per_sec {
            writeln!(f, "  connects/s             {r}")?;
        }
        pct(f, "connect → hello", &self.connect_latency_us)?;
        if self.http.requests > 0 {
            writeln!(
                f,
                "  messages sent          {} (failed {})",
                self.messages_sent, self.send_failures
            )?;
            writeln!(
                f,
                "  http requests/s        {}",
                self.http.requests_per_sec.unwrap_or(0.0)
            )?;
            pct(f, "http request", &self.http.latency_us)?;
            if !self.http.errors.is_empty() {
                writeln!(f, "  http errors            {:?}", self.http.errors)?;
            }
        }
        if self.deliveries_expected > 0 || self.deliveries_received > 0 {
            writeln!(
                f,
                "  deliveries             {} of {} expected; lost {}, duplicated {}",
                self.deliveries_received, self.deliveries_expected, self.lost, self.duplicated
            )?;
            writeln!(
                f,
                "  deliveries/s           {}",
                self.deliveries_per_sec.unwrap_or(0.0)
            )?;
        }
        pct(f, "send → receive", &self.latency_us)?;
        pct(f, "send → last member", &self.last_member_latency_us)?;
        if let Some(s) = &self.server {
            writeln!(
                f,
                "  server rss             {} → {} MiB (Δ {} KiB)",
                s.rss_before_bytes >> 20,
                s.rss_after_bytes >> 20,
                s.rss_delta_bytes / 1024
            )?;
            writeln!(
                f,
                "  server cpu             {} s ({} % of a core)",
                s.cpu_secs, s.cpu_percent
            )?;
            if let Some(v) = s.cpu_us_per_delivery {
                writeln!(f, "  cpu µs/delivery        {v}")?;
            } else if let Some(v) = s.cpu_us_per_request {
                writeln!(f, "  cpu µs/request         {v}")?;
            }
            if let Some(v) = s.rss_per_connection_bytes {
                writeln!(f, "  rss bytes/connection   {v}")?;
            }
        }
        for e in &self.errors {
            writeln!(f, "  error: {e}")?;
        }
        Ok(())
    }
}
