//! One send preparation for every entry point — HTTP, the JSON WebSocket, the GoBelieve binary
//! protocol and the im server's HTTP API: the content as stored text, the target, the
//! idempotency key, one unit of the app's send budget, then `Dispatcher::send`. Refusals are
//! typed (`SendRefused`); each entry point renders them its own way (an HTTP status, an
//! `error` frame, a dropped binary frame).

use serde_json::Value;

use super::{DispatchError, Dispatcher, PeerSend, Sent};
use crate::apps::App;
use crate::domain::{AppId, GroupId, MAX_ID, MessageKind, Uid, UserKey};

/// A message's content as it arrived.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// JSON sends: a string as is, an object as its JSON text.
    Json(&'a Value),
    /// Binary sends: the frame's content bytes, which must be UTF-8.
    Raw(&'a [u8]),
}

/// Why a send was refused before it reached the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendRefused {
    #[error("`content` must be a string or a JSON object")]
    ContentNotText,
    #[error("`content` is not valid UTF-8")]
    ContentNotUtf8,
    #[error("`content` is {len} bytes; the limit is {limit}")]
    ContentTooLarge { len: usize, limit: usize },
    #[error("`to` must be a positive integer")]
    InvalidTarget,
    #[error("the idempotency key must be 1 to 128 characters")]
    InvalidIdempotencyKey,
    #[error(
        "a customer sends only `kind: \"customer\"` messages, to their assigned supporter; not {0:?}"
    )]
    CustomerOnly(String),
    #[error("this app's send rate is exceeded; retry in {0} s")]
    RateLimited(u64),
    #[error("only customer messages go to the users of another app (`to_app`)")]
    OtherAppNotCustomer,
}

impl SendRefused {
    /// The stable error code (JSON `error` frames, HTTP envelopes).
    pub fn code(&self) -> &'static str {
        match self {
            SendRefused::ContentNotText | SendRefused::ContentNotUtf8 => "invalid_content",
            SendRefused::ContentTooLarge { .. } => "content_too_large",
            SendRefused::InvalidTarget => "invalid_frame",
            SendRefused::InvalidIdempotencyKey => "invalid_idempotency_key",
            SendRefused::CustomerOnly(_) => "customer_only",
            SendRefused::RateLimited(_) => "rate_limited",
            SendRefused::OtherAppNotCustomer => "invalid_to_app",
        }
    }

    /// A malformed request (as opposed to one refused by policy): counts as a bad frame.
    pub fn is_malformed(&self) -> bool {
        !matches!(
            self,
            SendRefused::CustomerOnly(_) | SendRefused::RateLimited(_)
        )
    }
}

/// `content` as the text to store, at most `limit` bytes.
pub fn content_text(content: Content<'_>, limit: usize) -> Result<String, SendRefused> {
    let text = match content {
        Content::Json(Value::String(s)) => s.clone(),
        Content::Json(v @ Value::Object(_)) => v.to_string(),
        Content::Json(_) => return Err(SendRefused::ContentNotText),
        Content::Raw(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| SendRefused::ContentNotUtf8)?
            .to_string(),
    };
    if text.len() > limit {
        return Err(SendRefused::ContentTooLarge {
            len: text.len(),
            limit,
        });
    }
    Ok(text)
}

/// Whose idempotency key a send carries: keys are namespaced so that two entry points (or two
/// users) never share one.
#[derive(Debug, Clone, Copy)]
pub enum KeyScope<'a> {
    /// An HTTP endpoint of the app (header `Idempotency-Key` or body `client_msg_id`).
    Http { app: AppId, endpoint: &'a str },
    /// A JSON WebSocket frame's `ref`, per user.
    Socket(UserKey),
    /// A binary IM's msgid, per user and device (clients number their messages per device).
    Binary { user: UserKey, device: &'a str },
}

impl KeyScope<'_> {
    /// The namespaced key for the client's `key` (1 to 128 characters).
    pub fn key(&self, key: &str) -> Result<String, SendRefused> {
        if key.is_empty() || key.len() > 128 {
            return Err(SendRefused::InvalidIdempotencyKey);
        }
        Ok(match self {
            KeyScope::Http { app, endpoint } => format!("http:{app}:{endpoint}:{key}"),
            KeyScope::Socket(u) => format!("ws:{}:{}:{key}", u.app, u.uid),
            KeyScope::Binary { user, device } => {
                format!("bin:{}:{}:{device}:{key}", user.app, user.uid)
            }
        })
    }
}

/// A send as an entry point describes it, before preparation.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    pub kind: MessageKind,
    pub sender: Uid,
    /// A uid, or the group id for `Group`.
    pub to: u64,
    /// The receiver's app when it is not the sender's (customer messages to or from the
    /// help-desk app, `customers.help_desk_app`).
    pub to_app: Option<AppId>,
    pub content: Content<'a>,
    /// Already namespaced (`KeyScope::key`).
    pub idempotency: Option<String>,
    /// The sending connection, which gets an ack instead of the message.
    pub origin: Option<u64>,
    /// The sending device's tag (`App::device_tag`), stored with peer and customer messages.
    pub device_tag: Option<String>,
    /// A binary IM's msgid (the sender's local id), stored with peer messages and passed on.
    pub msgid: Option<i32>,
}

/// A prepared send: valid, within budget, ready for `Dispatcher::send`.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub kind: MessageKind,
    pub app: AppId,
    pub sender: Uid,
    pub to: u64,
    /// The receiver's app (the sender's unless a customer message crosses apps).
    pub to_app: AppId,
    pub content: String,
    pub idempotency: Option<String>,
    pub origin: Option<u64>,
    pub device_tag: Option<String>,
    pub msgid: Option<i32>,
}

impl SendRequest {
    /// Checks `draft` (content at most `limit` bytes, a valid target) and takes one unit of
    /// `app`'s send budget — last, so that a malformed send costs none.
    pub fn prepare(app: &App, limit: usize, draft: Draft<'_>) -> Result<SendRequest, SendRefused> {
        let content = content_text(draft.content, limit)?;
        if draft.to == 0 || draft.to > MAX_ID {
            return Err(SendRefused::InvalidTarget);
        }
        let to_app = draft.to_app.unwrap_or(app.id);
        if to_app != app.id && draft.kind != MessageKind::Customer {
            return Err(SendRefused::OtherAppNotCustomer);
        }
        app.take_send().map_err(SendRefused::RateLimited)?;
        Ok(SendRequest {
            kind: draft.kind,
            app: app.id,
            sender: draft.sender,
            to: draft.to,
            to_app,
            content,
            idempotency: draft.idempotency,
            origin: draft.origin,
            device_tag: draft.device_tag,
            msgid: draft.msgid,
        })
    }
}

impl Dispatcher {
    /// A prepared stored send, by kind: peer and customer messages to the receiver's and the
    /// sender's inboxes, group messages and notifications through the group, system messages to
    /// the receiver. (Notifications are not stored: `send_notification`.)
    pub async fn send(&self, req: SendRequest) -> Result<Sent, DispatchError> {
        match req.kind {
            MessageKind::Peer | MessageKind::Customer => {
                self.send_peer(PeerSend {
                    kind: req.kind,
                    app: req.app,
                    sender: req.sender,
                    receiver: Uid(req.to),
                    receiver_app: req.to_app,
                    content: &req.content,
                    idempotency: req.idempotency,
                    origin: req.origin,
                    device_tag: req.device_tag.as_deref(),
                    msgid: req.msgid,
                })
                .await
            }
            MessageKind::Group => {
                let gid = GroupId(req.to);
                self.send_group(
                    req.app,
                    req.sender,
                    gid,
                    &req.content,
                    req.idempotency,
                    req.origin,
                )
                .await
            }
            MessageKind::System => {
                self.send_system(req.app, Uid(req.to), &req.content, req.idempotency)
                    .await
            }
            MessageKind::GroupNotification => {
                let gid = GroupId(req.to);
                self.send_group_notification(req.app, gid, &req.content, req.idempotency)
                    .await
            }
            other => Err(DispatchError::Invalid(format!(
                "a {} message is not sent this way",
                other.as_str()
            ))),
        }
    }
}
