//! The report for people: a short aligned summary, one line per measurement, printed when
//! `--json` is not given.

use std::fmt;

use super::report::{Report, ServerReport, SuperGroupReport};
use super::stats::Percentiles;

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
        self.sends(f)?;
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
            server(f, s, self.super_group.is_some())?;
        }
        if let Some(g) = &self.super_group {
            super_group(f, g)?;
        }
        if let Some(c) = &self.client {
            writeln!(
                f,
                "  loadgen cpu            {} s ({} % of a core), rss {} MiB",
                c.cpu_secs,
                c.cpu_percent,
                c.rss_bytes >> 20
            )?;
            if let Some(v) = c.cpu_us_per_delivery {
                writeln!(f, "  loadgen cpu µs/receipt {v}")?;
            }
        }
        for e in &self.errors {
            writeln!(f, "  error: {e}")?;
        }
        Ok(())
    }
}

/// The `supergroup` scenario's lines.
fn super_group(f: &mut fmt::Formatter<'_>, g: &SuperGroupReport) -> fmt::Result {
    writeln!(
        f,
        "  group                  {} members, {} online ({} web)",
        g.members, g.online, g.web
    )?;
    writeln!(
        f,
        "  build                  {:.1} s in {} requests (slowest {:.2} s): {:?}",
        g.build_secs, g.build_requests, g.build_request_max_secs, g.build_request_secs
    )?;
    if let Some(r) = g.remove_request_secs {
        writeln!(f, "  remove                 {r:.2} s in one request")?;
    }
    writeln!(
        f,
        "  push receivers         {} in {:.2} s ({}/s)",
        g.push_receivers,
        g.push_secs.unwrap_or(0.0),
        g.push_receivers_per_sec.unwrap_or(0.0)
    )
}

impl Report {
    /// The sending phase's HTTP requests, and the unrelated peer sends beside them.
    fn sends(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        pct(f, "unrelated peer send", &self.probe_latency_us)?;
        if self.probe_failures > 0 {
            writeln!(f, "  unrelated peer failed  {}", self.probe_failures)?;
        }
        Ok(())
    }
}

/// The server's usage (`super_group`: a `supergroup` run, whose requests are messages).
fn server(f: &mut fmt::Formatter<'_>, s: &ServerReport, super_group: bool) -> fmt::Result {
    writeln!(
        f,
        "  server rss             {} → {} MiB (Δ {} KiB)",
        s.rss_before_bytes >> 20,
        s.rss_after_bytes >> 20,
        s.rss_delta_bytes / 1024
    )?;
    if let Some(peak) = s.rss_peak_bytes {
        writeln!(f, "  server rss peak        {} MiB", peak >> 20)?;
    }
    writeln!(
        f,
        "  server cpu             {} s ({} % of a core)",
        s.cpu_secs, s.cpu_percent
    )?;
    if let Some(v) = s.cpu_us_per_delivery {
        writeln!(f, "  cpu µs/delivery        {v}")?;
    }
    if let Some(v) = s.cpu_us_per_request.filter(|_| super_group) {
        writeln!(f, "  cpu µs/message         {v}")?;
    } else if let Some(v) = s
        .cpu_us_per_request
        .filter(|_| s.cpu_us_per_delivery.is_none())
    {
        writeln!(f, "  cpu µs/request         {v}")?;
    }
    if let Some(v) = s.cpu_us_per_connect {
        writeln!(f, "  cpu µs/connect         {v}")?;
    }
    if let Some(v) = s.rss_per_connection_bytes {
        writeln!(f, "  rss bytes/connection   {v}")?;
    }
    if let (Some(v), Some(t)) = (s.rss_per_group_bytes, s.rss_per_group_target_bytes) {
        writeln!(f, "  rss bytes/group actor  {v} (target {t})")?;
    }
    Ok(())
}
