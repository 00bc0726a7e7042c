//! One push job: what GoBelieve's push queues hold, plus the receivers' device tokens.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::domain::{AppId, DeviceToken, GroupId, Uid, UserKey};

/// Receivers per group job at most (the original push router's batch).
pub const GROUP_JOB_RECEIVERS: usize = 1000;

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
    /// At most `GROUP_JOB_RECEIVERS` receivers. `tokens`, parallel to `receivers`, is `None`
    /// for the redis sink: GoBelieve's push daemon reads every receiver's tokens itself, so the
    /// job then carries no `device_tokens` (reading them here would double the store work).
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
    /// How many users the job pushes to.
    pub fn receivers(&self) -> usize {
        match self {
            PushJob::Group { receivers, .. } => receivers.len(),
            _ => 1,
        }
    }

    /// True when the job names its receivers' tokens and none has any: nothing to push.
    pub(super) fn tokenless(&self) -> bool {
        match self {
            PushJob::Peer { tokens, .. }
            | PushJob::System { tokens, .. }
            | PushJob::Customer { tokens, .. } => tokens.as_ref().is_some_and(Vec::is_empty),
            PushJob::Group { receivers, .. } => receivers.is_empty(),
        }
    }

    /// The GoBelieve queue this job belongs to.
    pub fn queue(&self) -> &'static str {
        match self {
            PushJob::Peer { .. } => "push_queue",
            PushJob::Group { .. } => "group_push_queue",
            PushJob::System { .. } => "system_push_queue",
            PushJob::Customer { .. } => "customer_push_queue_v2",
        }
    }

    /// Receivers whose tokens the worker looks up (group jobs come with theirs, or go to the
    /// redis sink without: see `PushJob::Group`).
    pub(super) fn missing_tokens(&self) -> Vec<UserKey> {
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
            _ => Vec::new(),
        }
    }

    pub(super) fn fill_tokens(&mut self, found: &mut impl Iterator<Item = Vec<DeviceToken>>) {
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
                let mut job = json!({
                    "appid": app, "sender": sender, "receivers": receivers, "content": &**content,
                    "group_id": group_id,
                });
                if let Some(tokens) = tokens {
                    let by_uid: serde_json::Map<String, Value> = receivers
                        .iter()
                        .zip(tokens)
                        .map(|(uid, t)| (uid.to_string(), json!(t)))
                        .collect();
                    job["device_tokens"] = Value::Object(by_uid);
                }
                job
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
