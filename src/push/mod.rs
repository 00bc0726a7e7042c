//! Push jobs for recipients who are not online (SPEC §6), and the sinks that deliver them.
//!
//! Producers (`UserSession`, `GroupActor`) hand jobs to a `PushQueue` without waiting: a bounded
//! channel, full → the job is dropped and counted (`imd_push_jobs_dropped_total`). One worker
//! batches jobs (`push.batch_size`, `push.flush_interval_ms`), fills in the device tokens it
//! does not have yet with one store round-trip per batch, and writes the batch to the sink in
//! one round-trip: RPUSH to GoBelieve's queues (`redis`), one POST (`webhook`), or log lines.

mod sink;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::config::{PushSettings, PushSinkKind};
use crate::domain::{AppId, DeviceToken, GroupId, Uid, UserKey};
use crate::store::Store;

/// One push job. `tokens` are the receivers' bound device tokens, newest first; `None` means
/// the worker looks them up.
#[derive(Debug, Clone)]
pub enum PushJob {
    Peer {
        app: AppId,
        sender: Uid,
        receiver: Uid,
        content: Arc<str>,
        tokens: Option<Vec<DeviceToken>>,
    },
    Group {
        app: AppId,
        sender: Uid,
        group_id: GroupId,
        receivers: Vec<Uid>,
        content: Arc<str>,
        tokens: Option<Vec<Vec<DeviceToken>>>,
    },
    System {
        app: AppId,
        receiver: Uid,
        content: Arc<str>,
        tokens: Option<Vec<DeviceToken>>,
    },
    Customer {
        sender_app: AppId,
        sender: Uid,
        receiver_app: AppId,
        receiver: Uid,
        content: Arc<str>,
        tokens: Option<Vec<DeviceToken>>,
    },
}

impl PushJob {
    /// The GoBelieve queue this job belongs to.
    pub fn queue(&self) -> &'static str {
        match self {
            PushJob::Peer { .. } => "push_queue",
            PushJob::Group { .. } => "group_push_queue",
            PushJob::System { .. } => "system_push_queue",
            PushJob::Customer { .. } => "customer_push_queue_v2",
        }
    }

    /// Receivers whose tokens are still missing.
    fn missing_tokens(&self) -> Vec<UserKey> {
        match self {
            PushJob::Peer {
                app,
                receiver,
                tokens: None,
                ..
            }
            | PushJob::System {
                app,
                receiver,
                tokens: None,
                ..
            } => vec![UserKey::new(*app, *receiver)],
            PushJob::Customer {
                receiver_app,
                receiver,
                tokens: None,
                ..
            } => {
                vec![UserKey::new(*receiver_app, *receiver)]
            }
            PushJob::Group {
                app,
                receivers,
                tokens: None,
                ..
            } => receivers.iter().map(|r| UserKey::new(*app, *r)).collect(),
            _ => Vec::new(),
        }
    }

    fn fill_tokens(&mut self, found: &mut impl Iterator<Item = Vec<DeviceToken>>) {
        match self {
            PushJob::Peer {
                tokens: t @ None, ..
            }
            | PushJob::System {
                tokens: t @ None, ..
            }
            | PushJob::Customer {
                tokens: t @ None, ..
            } => *t = Some(found.next().unwrap_or_default()),
            PushJob::Group {
                receivers,
                tokens: t @ None,
                ..
            } => {
                *t = Some(
                    receivers
                        .iter()
                        .map(|_| found.next().unwrap_or_default())
                        .collect(),
                )
            }
            _ => {}
        }
    }

    /// The original payload of the job's queue plus `device_tokens` (newest first), which the
    /// original push daemon ignores and other consumers can use.
    pub fn payload(&self) -> Value {
        let toks = |t: &Option<Vec<DeviceToken>>| json!(t.as_deref().unwrap_or_default());
        match self {
            PushJob::Peer {
                app,
                sender,
                receiver,
                content,
                tokens,
            } => json!({
                "appid": app, "sender": sender, "receiver": receiver, "content": &**content,
                "device_tokens": toks(tokens),
            }),
            PushJob::Group {
                app,
                sender,
                group_id,
                receivers,
                content,
                tokens,
            } => {
                let by_uid: serde_json::Map<String, Value> = receivers
                    .iter()
                    .zip(tokens.iter().flatten())
                    .map(|(uid, t)| (uid.to_string(), json!(t)))
                    .collect();
                json!({
                    "appid": app, "sender": sender, "receivers": receivers, "content": &**content,
                    "group_id": group_id, "device_tokens": by_uid,
                })
            }
            PushJob::System {
                app,
                receiver,
                content,
                tokens,
            } => json!({
                "appid": app, "receiver": receiver, "content": &**content,
                "device_tokens": toks(tokens),
            }),
            PushJob::Customer {
                sender_app,
                sender,
                receiver_app,
                receiver,
                content,
                tokens,
            } => json!({
                "appid": receiver_app, "sender_appid": sender_app, "sender": sender,
                "receiver_appid": receiver_app, "receiver": receiver, "content": &**content,
                "device_tokens": toks(tokens),
            }),
        }
    }
}

enum Command {
    Job(PushJob),
    /// Write everything queued so far, then answer.
    Flush(oneshot::Sender<()>),
}

/// Where producers hand jobs; cheap to clone.
#[derive(Clone)]
pub struct PushQueue {
    tx: Option<mpsc::Sender<Command>>,
    sink: &'static str,
}

impl PushQueue {
    /// A queue that discards everything (sink `none`).
    pub fn disabled() -> PushQueue {
        PushQueue {
            tx: None,
            sink: "none",
        }
    }

    /// Starts the worker on its own arbiter and returns the queue feeding it.
    pub fn start(settings: &PushSettings, store: Store, store_redis_url: &str) -> PushQueue {
        let sink = match settings.sink {
            PushSinkKind::None => return PushQueue::disabled(),
            PushSinkKind::Log => "log",
            PushSinkKind::Redis => "redis",
            PushSinkKind::Webhook => "webhook",
        };
        let (tx, rx) = mpsc::channel(settings.queue_capacity);
        let settings = settings.clone();
        let redis_url = if settings.redis_url.is_empty() {
            store_redis_url.to_string()
        } else {
            settings.redis_url.clone()
        };
        // The worker owns an HTTP client (not Send), so it lives on its own arbiter thread.
        let arbiter = actix::Arbiter::new();
        arbiter.spawn_fn(move || {
            actix::spawn(async move {
                let sink = sink::Sink::new(&settings, &redis_url);
                worker(rx, settings, store, sink).await;
                actix::Arbiter::current().stop();
            });
        });
        PushQueue { tx: Some(tx), sink }
    }

    /// Hands a job to the worker without waiting; a full queue drops it (counted).
    pub fn submit(&self, job: PushJob) {
        let Some(tx) = &self.tx else { return };
        let queue = job.queue();
        match tx.try_send(Command::Job(job)) {
            Ok(()) => {
                metrics::counter!("imd_push_jobs_total", "sink" => self.sink, "queue" => queue).increment(1)
            }
            Err(_) => {
                metrics::counter!("imd_push_jobs_dropped_total", "sink" => self.sink, "reason" => "queue_full")
                    .increment(1)
            }
        }
    }

    /// Waits (bounded) until every job submitted so far has been handed to the sink.
    pub async fn flush(&self, within: Duration) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Command::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(within, wait).await;
        }
    }
}

async fn worker(
    mut rx: mpsc::Receiver<Command>,
    settings: PushSettings,
    store: Store,
    mut sink: sink::Sink,
) {
    let linger = Duration::from_millis(settings.flush_interval_ms);
    let mut batch: Vec<PushJob> = Vec::with_capacity(settings.batch_size);
    while let Some(first) = rx.recv().await {
        let mut flushes = Vec::new();
        let take = |cmd: Command,
                    batch: &mut Vec<PushJob>,
                    flushes: &mut Vec<oneshot::Sender<()>>| match cmd {
            Command::Job(job) => batch.push(job),
            Command::Flush(done) => flushes.push(done),
        };
        take(first, &mut batch, &mut flushes);
        // Let the batch fill while asleep: jobs queued meanwhile wake nobody (waiting on the
        // channel instead would mean one wake-up of this thread per job).
        if flushes.is_empty() {
            tokio::time::sleep(linger).await;
        }
        while batch.len() < settings.batch_size {
            match rx.try_recv() {
                Ok(cmd) => take(cmd, &mut batch, &mut flushes),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            resolve_tokens(&store, &mut batch).await;
            sink.write(&batch).await;
            batch.clear();
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Fills in missing device tokens for a whole batch with one store call.
async fn resolve_tokens(store: &Store, batch: &mut [PushJob]) {
    let wanted: Vec<UserKey> = batch.iter().flat_map(PushJob::missing_tokens).collect();
    if wanted.is_empty() {
        return;
    }
    let found = match store.device_tokens(&wanted).await {
        Ok(found) => found,
        Err(e) => {
            // Push without tokens rather than not at all; consumers can look them up.
            tracing::warn!(error = %e, "push: could not load device tokens");
            Vec::new()
        }
    };
    let mut found = found.into_iter();
    for job in batch {
        job.fill_tokens(&mut found);
    }
}
