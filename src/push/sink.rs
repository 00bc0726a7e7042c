//! The three sinks. Each writes a whole batch in one round-trip.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::PushJob;
use crate::config::{PushSettings, PushSinkKind};

pub(super) enum Sink {
    Log,
    Redis {
        conn: Option<ConnectionManager>,
        url: String,
    },
    Webhook {
        client: awc::Client,
        url: String,
        max_attempts: u32,
    },
}

impl Sink {
    pub(super) fn new(settings: &PushSettings, redis_url: &str) -> Sink {
        match settings.sink {
            PushSinkKind::Redis => Sink::Redis {
                conn: None,
                url: redis_url.to_string(),
            },
            PushSinkKind::Webhook => Sink::Webhook {
                client: awc::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .finish(),
                url: settings.webhook_url.clone(),
                max_attempts: settings.webhook_max_attempts.max(1),
            },
            PushSinkKind::Log | PushSinkKind::None => Sink::Log,
        }
    }

    pub(super) async fn write(&mut self, batch: &[PushJob]) {
        let name = match self {
            Sink::Log => "log",
            Sink::Redis { .. } => "redis",
            Sink::Webhook { .. } => "webhook",
        };
        let ok = match self {
            Sink::Log => {
                for job in batch {
                    tracing::info!(target: "push", queue = job.queue(), job = %loggable(job.payload()), "push job");
                }
                true
            }
            Sink::Redis { conn, url } => write_redis(conn, url, batch).await,
            Sink::Webhook {
                client,
                url,
                max_attempts,
            } => write_webhook(client, url, *max_attempts, batch).await,
        };
        let outcome = if ok { "delivered" } else { "dropped" };
        if ok {
            let receivers: usize = batch.iter().map(PushJob::receivers).sum();
            metrics::counter!("imd_push_receivers_total", "sink" => name)
                .increment(receivers as u64);
        }
        metrics::counter!("imd_push_batches_total", "sink" => name, "outcome" => outcome)
            .increment(1);
        if !ok {
            metrics::counter!("imd_push_jobs_dropped_total", "sink" => name, "reason" => "sink_failed")
                .increment(batch.len() as u64);
        }
    }
}

/// RPUSH every job to its queue in one MULTI/EXEC; a few retries while Redis is away.
async fn write_redis(conn: &mut Option<ConnectionManager>, url: &str, batch: &[PushJob]) -> bool {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for job in batch {
        pipe.rpush(job.queue(), job.payload().to_string()).ignore();
    }
    for attempt in 0..5u32 {
        if conn.is_none() {
            let client = match redis::Client::open(url) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "push: bad redis url");
                    return false;
                }
            };
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(5)));
            *conn = ConnectionManager::new_lazy_with_config(client, config).ok();
        }
        if let Some(c) = conn.as_mut() {
            match pipe.query_async::<()>(c).await {
                Ok(()) => return true,
                Err(e) => tracing::warn!(error = %e, attempt, "push: redis write failed"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    false
}

/// POSTs `[{"queue":…,"payload":…},…]`, retrying with exponential backoff.
async fn write_webhook(
    client: &awc::Client,
    url: &str,
    max_attempts: u32,
    batch: &[PushJob],
) -> bool {
    let body: Vec<serde_json::Value> = batch
        .iter()
        .map(|j| serde_json::json!({ "queue": j.queue(), "payload": j.payload() }))
        .collect();
    let body = serde_json::Value::Array(body).to_string();
    for attempt in 0..max_attempts {
        let res = client
            .post(url)
            .insert_header(("Content-Type", "application/json"))
            .send_body(body.clone())
            .await;
        match res {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => tracing::warn!(
                status = r.status().as_u16(),
                attempt,
                "push: webhook refused batch"
            ),
            Err(e) => tracing::warn!(error = %e, attempt, "push: webhook unreachable"),
        }
        if attempt + 1 < max_attempts {
            tokio::time::sleep(Duration::from_millis(200u64 << attempt.min(6))).await;
        }
    }
    false
}

/// A job as the log sink writes it: message content and device tokens replaced by their sizes,
/// since logs never hold either (SPEC §2).
fn loggable(mut payload: serde_json::Value) -> serde_json::Value {
    fn count(tokens: &serde_json::Value) -> usize {
        match tokens {
            serde_json::Value::Array(list) => list.len(),
            serde_json::Value::Object(by_user) => by_user.values().map(count).sum(),
            _ => 0,
        }
    }
    if let Some(fields) = payload.as_object_mut() {
        if let Some(content) = fields.remove("content") {
            let bytes = content.as_str().map_or(0, str::len);
            fields.insert("content_bytes".into(), bytes.into());
        }
        if let Some(tokens) = fields.remove("device_tokens") {
            fields.insert("device_tokens".into(), count(&tokens).into());
        }
    }
    payload
}
