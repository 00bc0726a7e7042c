//! What every client thread of a run sees: where the server is, how to authenticate, the run's
//! identity, the live counters, the stop signal and the gate that bounds handshakes in flight.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use tokio::sync::{Semaphore, watch};

use super::options::Common;
use super::stats::Counters;

/// Run-wide state, shared by reference count across threads.
#[derive(Debug)]
pub struct Shared {
    /// `http://host:port` without a trailing slash.
    pub base: String,
    /// `ws://host:port` of each server the WebSocket clients connect to, chosen by uid.
    ws_bases: Vec<String>,
    /// `Authorization` value for server-authenticated endpoints.
    pub auth: String,
    /// Marks this run's payloads.
    pub run_id: u64,
    /// Source addresses to bind client sockets to, round-robin (empty: let the OS choose).
    pub sources: Vec<IpAddr>,
    /// Bound on one request, handshake or hello.
    pub timeout: Duration,
    /// Live counters.
    pub counters: Counters,
    /// Becomes `true` when tasks must wrap up and close their connections.
    pub stop: watch::Receiver<bool>,
    /// Permits for token grants + WebSocket handshakes in flight.
    pub connect_gate: Semaphore,
    /// Receivers speak the binary protocol (`--binary`)…
    pub binary: Option<BinaryTarget>,
    /// … those whose uid % 100 is below this (`--binary-share` × 100).
    pub binary_percent: u64,
    /// The first few distinct error texts, for the report (errors are rare: a lock is fine).
    errors: Mutex<Vec<String>>,
}

/// Where binary-protocol receivers connect.
#[derive(Debug, Clone, Copy)]
pub enum BinaryTarget {
    Tcp(std::net::SocketAddr),
    /// `/ws` without a token.
    WebSocket,
}

/// Most distinct error texts kept.
const MAX_ERRORS: usize = 8;

/// An `http://host:port` option, parsed: the URI and its `host:port`.
fn http_base(option: &str, url: &str) -> anyhow::Result<(awc::http::Uri, String)> {
    let uri: awc::http::Uri = url
        .parse()
        .with_context(|| format!("{option} {url:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("{option} must be http://host:port (got {url:?})");
    }
    let authority = uri
        .authority()
        .with_context(|| format!("{option} {url:?} has no host"))?
        .as_str()
        .to_string();
    Ok((uri, authority))
}

impl Shared {
    pub fn new(c: &Common, run_id: u64, stop: watch::Receiver<bool>) -> anyhow::Result<Shared> {
        let (uri, authority) = http_base("--url", &c.url)?;
        let mut ws_bases = Vec::new();
        for url in &c.ws_url {
            ws_bases.push(format!("ws://{}", http_base("--ws-url", url)?.1));
        }
        if ws_bases.is_empty() {
            ws_bases.push(format!("ws://{authority}"));
        }
        let loopback = uri
            .host()
            .and_then(|h| h.parse::<IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback());
        let sources = if loopback {
            (1..=c.source_ips.max(1))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect()
        } else {
            Vec::new()
        };
        let digest = crate::apps::md5_hex(&c.secret);
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{digest}", c.app))
        );
        let binary = match c.binary.as_deref() {
            None => None,
            Some("ws") => Some(BinaryTarget::WebSocket),
            Some(addr) => Some(BinaryTarget::Tcp(addr.parse().with_context(|| {
                format!("--binary {addr:?} is neither `ws` nor a host:port address")
            })?)),
        };
        Ok(Shared {
            binary,
            binary_percent: (c.binary_share.clamp(0.0, 1.0) * 100.0).round() as u64,
            base: format!("http://{authority}"),
            ws_bases,
            auth,
            run_id,
            sources,
            timeout: c.request_timeout(),
            counters: Counters::default(),
            stop,
            connect_gate: Semaphore::new(c.connect_concurrency.max(1)),
            errors: Mutex::new(Vec::new()),
        })
    }

    /// `ws://host:port` for `uid`'s connections.
    pub fn ws_base(&self, uid: u64) -> &str {
        let i = (uid % self.ws_bases.len().max(1) as u64) as usize;
        self.ws_bases.get(i).map_or("", String::as_str)
    }

    /// Whether `uid` receives on the binary protocol.
    pub fn binary_for(&self, uid: u64) -> bool {
        self.binary.is_some() && uid % 100 < self.binary_percent
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Keeps `text` as an error sample unless enough (or the same) are kept already.
    pub fn error(&self, text: String) {
        if let Ok(mut errors) = self.errors.lock()
            && errors.len() < MAX_ERRORS
            && !errors.contains(&text)
        {
            errors.push(text);
        }
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}
