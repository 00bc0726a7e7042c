//! The report of a run: counts, rates, latency percentiles and server usage, built once from
//! the merged measurements, serializable as one JSON line and printable for people.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::options::Scenario;
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
    /// (groups, members each) whose actors were loaded while the server was sampled.
    pub actors: Option<(u64, u64)>,
    /// What the `supergroup` scenario measured beyond deliveries.
    pub super_group: Option<SuperGroupReport>,
}

/// The `supergroup` scenario: building the group, and the push its messages caused.
#[derive(Debug, Clone, Serialize)]
pub struct SuperGroupReport {
    pub members: u64,
    /// Members connected (each message's live recipients).
    pub online: u64,
    /// Of those, on the web (platform 3, `mute` off: online, yet push receivers by SPEC §6).
    pub web: u64,
    /// Building the group through the API: `POST /groups`, then `POST /groups/{gid}/members`.
    pub build_secs: f64,
    pub build_requests: u64,
    /// The slowest of those requests.
    pub build_request_max_secs: f64,
    /// Each of them, in order (the first is the create).
    pub build_request_secs: Vec<f64>,
    /// `--remove`: the one `DELETE /groups/{gid}/members` request, after the measured phase.
    pub remove_request_secs: Option<f64>,
    /// Push receivers the server's sink wrote during the measured phase
    /// (`imd_push_receivers_total`).
    pub push_receivers: u64,
    /// First send → the last of those written.
    pub push_secs: Option<f64>,
    pub push_receivers_per_sec: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `peer`, `api`, `fanout`, `fanout_super`, `groups`, `connect` or `idle`.
    pub scenario: String,
    /// The scenario's parameters as run.
    pub params: Scenario,
    /// The whole run, set-up included.
    pub elapsed_secs: f64,
    /// Client threads used.
    pub threads: usize,
    /// WebSocket connections that got their `hello` (every connect, for churn).
    pub clients_connected: u64,
    /// Clients that got no token, no upgrade or no `hello`.
    pub connect_failures: u64,
    /// Connections the server closed (or that broke) before the run ended.
    pub connections_dropped: u64,
    /// Churn rate (`connect` only).
    pub connects_per_sec: Option<f64>,
    /// Upgrade request → `hello`.
    pub connect_latency_us: Option<Percentiles>,
    /// Sends acknowledged with 200.
    pub messages_sent: u64,
    /// Sends answered otherwise (see `http.errors`).
    pub send_failures: u64,
    /// Acknowledged messages × receivers each (peer 1, group: its members).
    pub deliveries_expected: u64,
    /// First arrivals of acknowledged messages.
    pub deliveries_received: u64,
    /// Received deliveries / (first send → last delivery).
    pub deliveries_per_sec: Option<f64>,
    /// Expected deliveries that did not arrive within the drain time.
    pub lost: u64,
    /// Arrivals of a message a receiver already had.
    pub duplicated: u64,
    /// Message frames that were not this run's (notifications, other runs, unacknowledged
    /// sends).
    pub foreign_frames: u64,
    /// Send → receive, every delivery.
    pub latency_us: Option<Percentiles>,
    /// Send → receive to the last receiver of each fully delivered message.
    pub last_member_latency_us: Option<Percentiles>,
    /// The sending phase's HTTP requests.
    pub http: HttpReport,
    /// Unrelated peer sends during the scenario (`fanout --probe-rate`): HTTP latency.
    pub probe_latency_us: Option<Percentiles>,
    /// Of those, sends that failed.
    pub probe_failures: u64,
    /// WebSocket pings from the server answered with a pong.
    pub pings_answered: u64,
    /// Server usage over the measured phase (with `--server-pid`).
    pub server: Option<ServerReport>,
    /// `supergroup` only.
    pub super_group: Option<SuperGroupReport>,
    /// The load generator's own usage over the measured phase (it shares the machine).
    pub client: Option<ClientReport>,
    /// First distinct errors seen.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpReport {
    /// Message sends (set-up requests are not counted).
    pub requests: u64,
    /// Requests / duration of the sending phase.
    pub requests_per_sec: Option<f64>,
    /// Request → response, µs.
    pub latency_us: Option<Percentiles>,
    /// Failed sends by status; "transport" when there was no response.
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub pid: u32,
    /// RSS as the measured phase began (before connecting, for `idle`).
    pub rss_before_bytes: u64,
    /// RSS as it ended (connections still open).
    pub rss_after_bytes: u64,
    pub rss_delta_bytes: i64,
    /// Highest RSS during the measured phase (when the peak could be reset at its start).
    pub rss_peak_bytes: Option<u64>,
    /// User + system CPU time used during the measured phase.
    pub cpu_secs: f64,
    /// Of one core, over the measured phase.
    pub cpu_percent: f64,
    /// Server CPU per first delivery.
    pub cpu_us_per_delivery: Option<f64>,
    /// Server CPU per send request.
    pub cpu_us_per_request: Option<f64>,
    /// Server CPU per connect + disconnect (`connect` only).
    pub cpu_us_per_connect: Option<f64>,
    /// RSS delta / idle connections held.
    pub rss_per_connection_bytes: Option<f64>,
    /// RSS delta / groups loaded (`actors`).
    pub rss_per_group_bytes: Option<f64>,
    /// The target for that: 1 KiB + 16 bytes a member.
    pub rss_per_group_target_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    /// User + system CPU time of this process during the measured phase.
    pub cpu_secs: f64,
    /// Of one core; near 100 × threads means the client, not the server, was the limit.
    pub cpu_percent: f64,
    /// Its CPU per first delivery received: on a machine shared with the server, what each
    /// receipt took from the server's cores.
    pub cpu_us_per_delivery: Option<f64>,
    /// RSS at the end of the measured phase.
    pub rss_bytes: u64,
}

fn rate(n: u64, secs: f64) -> Option<f64> {
    (secs > 0.0 && n > 0).then(|| (n as f64 / secs * 10.0).round() / 10.0)
}

impl Report {
    pub fn build(
        scenario: &Scenario,
        run: &Run,
        o: Outcome,
        stats: &Stats,
    ) -> anyhow::Result<Report> {
        let c = run.counters();
        let failed: HashSet<u64> = o
            .sent
            .as_ref()
            .map_or_else(HashSet::new, |s| s.failed.iter().copied().collect());
        let acked = stats.per_msg.iter().filter(|(n, _)| !failed.contains(n));
        let received: u64 = acked.clone().map(|(_, m)| m.count).sum();
        let mut last = histogram()?;
        // Only meaningful when a message has several receivers (groups).
        for (_, m) in acked.filter(|(_, m)| o.per_message > 1 && m.count == o.per_message) {
            last.saturating_record(m.max_latency);
        }
        let from_failed: u64 = failed
            .iter()
            .filter_map(|&n| stats.per_msg.get(n))
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
        let server = server_report(run, &o, received, requests);
        Ok(Report {
            scenario: scenario.name().to_string(),
            params: scenario.clone(),
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
            probe_latency_us: Percentiles::of(&stats.probe),
            probe_failures: stats.probe_errors,
            pings_answered: stats.pings,
            server,
            super_group: o.super_group,
            client: match (run.client_before, run.client_after) {
                (Some(b), Some(a)) => Some(client(b, a, received)),
                _ => None,
            },
            errors: run.shared.errors(),
        })
    }
}

/// The server's usage over the measured phase, when it was sampled (`--server-pid`).
fn server_report(run: &Run, o: &Outcome, received: u64, requests: u64) -> Option<ServerReport> {
    let (Some(pid), Some(b), Some(a)) = (run.opts.server_pid, run.server_before, run.server_after)
    else {
        return None;
    };
    let connects = o.churn.map_or(0, |(n, _)| n);
    let mut s = server(pid, (b, a), [received, requests, connects], o.held);
    s.rss_peak_bytes = run.peak_reset.then_some(a.peak_rss_bytes.max(a.rss_bytes));
    if let Some((groups, size)) = o.actors.filter(|(g, _)| *g > 0) {
        s.rss_per_group_bytes = Some((s.rss_delta_bytes as f64 / groups as f64).round());
        s.rss_per_group_target_bytes = Some(1024 + 16 * size);
    }
    Some(s)
}

/// Usage between samples `b` and `a`, per delivery, request and connect.
fn server(
    pid: u32,
    (b, a): (Sample, Sample),
    per_unit: [u64; 3],
    held: Option<u64>,
) -> ServerReport {
    let [received, requests, connects] = per_unit;
    let cpu = (a.cpu_secs - b.cpu_secs).max(0.0);
    let wall = a.at.duration_since(b.at).as_secs_f64();
    let delta = a.rss_bytes as i64 - b.rss_bytes as i64;
    let per = |n| cpu_us_per(cpu, n);
    ServerReport {
        pid,
        rss_before_bytes: b.rss_bytes,
        rss_after_bytes: a.rss_bytes,
        rss_delta_bytes: delta,
        rss_peak_bytes: None,
        cpu_secs: (cpu * 100.0).round() / 100.0,
        cpu_percent: cpu_percent(cpu, wall),
        cpu_us_per_delivery: per(received),
        cpu_us_per_request: per(requests),
        cpu_us_per_connect: per(connects),
        rss_per_connection_bytes: held
            .filter(|n| *n > 0)
            .map(|n| (delta as f64 / n as f64).round()),
        rss_per_group_bytes: None,
        rss_per_group_target_bytes: None,
    }
}

fn client(b: Sample, a: Sample, received: u64) -> ClientReport {
    let cpu = (a.cpu_secs - b.cpu_secs).max(0.0);
    ClientReport {
        cpu_secs: (cpu * 100.0).round() / 100.0,
        cpu_percent: cpu_percent(cpu, a.at.duration_since(b.at).as_secs_f64()),
        cpu_us_per_delivery: cpu_us_per(cpu, received),
        rss_bytes: a.rss_bytes,
    }
}

/// CPU µs per unit (2 decimals), none for no units.
fn cpu_us_per(cpu_secs: f64, n: u64) -> Option<f64> {
    (n > 0).then(|| (cpu_secs * 1e6 / n as f64 * 100.0).round() / 100.0)
}

fn cpu_percent(cpu: f64, wall: f64) -> f64 {
    if wall > 0.0 {
        (cpu / wall * 1000.0).round() / 10.0
    } else {
        0.0
    }
}
