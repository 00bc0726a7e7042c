//! Redis backend: the node's subscriber. One dedicated pub/sub connection holds a constant
//! set of three subscriptions — this node's channel, the super-group channel and the control
//! channel — so a reconnect resubscribes three channels, never one per user or group.
//!
//! A stalled subscription raises no error (a frozen proxy, a wedged connection), so the
//! subscriber also probes: every node, this one included, publishes a heartbeat on the control
//! channel every 2 s, and a subscription that hears nothing for `PROBE` is dropped and made
//! again. Every (re)subscription is announced as `BusEvent::Resubscribed`, on which the node
//! repairs what it may have missed from the store (`dispatch/cluster.rs`): a lost announcement
//! delays a message, never loses it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::RedisStore;
use crate::store::cluster::{BusEvent, BusStatus};
use crate::store::keys;

/// Silence on the subscription (three heartbeats missed) after which it is made again.
const PROBE: Duration = Duration::from_secs(6);

/// First wait before a new attempt after a failed one; doubles up to `MAX_BACKOFF`.
const BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Why a subscription ended.
enum Ended {
    /// The connection closed (Redis restart, `CLIENT KILL`, output buffer limit).
    Closed,
    /// Nothing heard for `PROBE`.
    Silent,
    /// The node is shutting down (the receiver is gone).
    Stopped,
}

impl RedisStore {
    /// Subscribes, and subscribes again whenever the subscription ends, until `events` is
    /// dropped.
    pub(super) async fn subscribe(
        self: Arc<Self>,
        events: mpsc::Sender<BusEvent>,
        status: Arc<BusStatus>,
    ) {
        let mut backoff = BACKOFF;
        let mut first = true;
        loop {
            if events.is_closed() {
                return;
            }
            match self.subscription(&events, &status, first).await {
                Ok(Ended::Stopped) => return,
                Ok(Ended::Closed) => {
                    metrics::counter!("imd_pubsub_reconnects_total").increment(1);
                    tracing::warn!("pub/sub connection lost; subscribing again");
                    backoff = BACKOFF;
                }
                Ok(Ended::Silent) => {
                    metrics::counter!("imd_pubsub_probe_restarts_total").increment(1);
                    tracing::warn!("pub/sub subscription silent (probe failed); subscribing again");
                    backoff = BACKOFF;
                }
                Err(e) => {
                    metrics::counter!("imd_pubsub_reconnects_total").increment(1);
                    tracing::warn!(error = %e, "pub/sub subscription failed; retrying");
                }
            }
            status.set(false);
            first = false;
            // Jittered, so nodes that lost Redis together do not all come back at once.
            let jitter = Duration::from_millis(u64::from(crate::domain::now_millis() as u16 % 100));
            actix_web::rt::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One subscription, from connect to its end.
    async fn subscription(
        &self,
        events: &mpsc::Sender<BusEvent>,
        status: &BusStatus,
        first: bool,
    ) -> redis::RedisResult<Ended> {
        let connect = self.pubsub_client().get_async_pubsub();
        let mut pubsub = match tokio::time::timeout(self.timeout, connect).await {
            Ok(c) => c?,
            Err(_) => return Ok(Ended::Silent),
        };
        let node = self.node();
        let channels = [
            keys::node_channel(node),
            keys::SUPER_CHANNEL.to_string(),
            keys::CONTROL_CHANNEL.to_string(),
        ];
        match tokio::time::timeout(self.timeout, pubsub.subscribe(&channels)).await {
            Ok(r) => r?,
            Err(_) => return Ok(Ended::Silent),
        }
        status.set(true);
        if !first {
            metrics::counter!("imd_resyncs_total").increment(1);
        }
        if events.send(BusEvent::Resubscribed).await.is_err() {
            return Ok(Ended::Stopped);
        }
        let mut stream = pubsub.into_on_message();
        loop {
            let msg = match tokio::time::timeout(PROBE, stream.next()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => return Ok(Ended::Closed),
                Err(_) => return Ok(Ended::Silent),
            };
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            if let Some(event) = BusEvent::parse(&payload)
                && events.send(event).await.is_err()
            {
                return Ok(Ended::Stopped);
            }
        }
    }
}
