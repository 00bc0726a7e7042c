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
    /// `ws://host:port`.
    pub ws_base: String,
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
    /// Receivers speak the binary protocol (`--binary`).
    pub binary: Option<BinaryTarget>,
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

impl Shared {
    pub fn new(c: &Common, run_id: u64, stop: watch::Receiver<bool>) -> anyhow::Result<Shared> {
        let uri: awc::http::Uri = c
            .url
            .parse()
            .with_context(|| format!("--url {:?} is not a URL", c.url))?;
        if uri.scheme_str() != Some("http") {
            bail!("--url must be http://host:port (got {:?})", c.url);
        }
        let authority = uri
            .authority()
            .with_context(|| format!("--url {:?} has no host", c.url))?
            .as_str();
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
            base: format!("http://{authority}"),
            ws_base: format!("ws://{authority}"),
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
