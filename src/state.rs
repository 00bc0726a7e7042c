//! `AppState`: what every request handler can reach. Built once in `startup`, shared by all
//! HTTP workers through `web::Data` (an `Arc`).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use crate::apps::Apps;
use crate::config::Settings;
use crate::dispatch::Dispatcher;
use crate::ratelimit::RateLimiter;
use crate::store::Store;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub apps: Apps,
    pub store: Store,
    pub dispatcher: Dispatcher,
    /// Uploaded media: storage, upload limits, thumbnail and MP3 work.
    pub media: crate::media::Media,
    /// POST /auth/customer per client IP.
    pub register_limiter: RateLimiter<IpAddr>,
    /// Requests being handled now (bounded by `limits.inflight_requests`).
    pub inflight: AtomicUsize,
    /// Set when a graceful shutdown begins: responses then close their connection (so
    /// keep-alive clients reconnect elsewhere instead of being cut off at the deadline) and
    /// `/readyz` answers 503.
    pub shutting_down: AtomicBool,
}
