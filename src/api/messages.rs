//! SPEC §4.3/§4.4: sending messages, history, offline counts.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{ClientAuth, ServerAuth};
use super::body::JsonBody;
use super::openapi::IdempotencyKey;
use super::openapi::answers::{Dequeued, MsgId, NotificationSent, Offline};
use super::openapi::schemas::{Envelope, StoredMessage};
use crate::dispatch::{
    Content, DispatchError, Draft, KeyScope, SendRefused, SendRequest, content_text,
};
use crate::domain::{AppId, MessageKind, Uid, UserKey};
use crate::error::{ApiError, ApiResult, ok};
use crate::state::AppState;
use crate::store::device_key;

/// Maps a dispatcher refusal to the HTTP error.
pub fn dispatch_error(e: DispatchError) -> ApiError {
    match e {
        DispatchError::Store(e) => e.into(),
        other => {
            let (status, code) = other.status_and_code();
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
            // Too many connections (429/503): try again shortly.
            let retry_after = matches!(status.as_u16(), 429 | 503).then_some(1);
            ApiError {
                retry_after,
                ..ApiError::new(status, code, other.to_string())
            }
        }
    }
}

/// Maps a refused send to the HTTP error.
pub fn refused(e: SendRefused) -> ApiError {
    match e {
        SendRefused::RateLimited(wait) => ApiError::rate_limited(wait),
        SendRefused::ContentTooLarge { .. } => ApiError::too_large(e.code(), e.to_string()),
        SendRefused::ContentNotText | SendRefused::ContentNotUtf8 => {
            ApiError::invalid_field("content", "must be a string or a JSON object")
        }
        SendRefused::InvalidTarget => ApiError::invalid_field("receiver", "must be a positive id"),
        SendRefused::InvalidIdempotencyKey => ApiError::bad_request(
            "invalid_idempotency_key",
            "the idempotency key must be 1 to 128 characters",
        ),
        SendRefused::CustomerOnly(_) => ApiError::forbidden(e.code(), e.to_string()),
        SendRefused::OtherAppNotCustomer => {
            ApiError::invalid_field("receiver_app", "only customer messages go to another app")
        }
    }
}

/// One send from the app's per-second budget (429 with `Retry-After` when spent).
pub(super) fn take_send(app: &crate::apps::App) -> ApiResult<()> {
    app.take_send().map_err(ApiError::rate_limited)
}

/// `content` as stored text: a string, or an object's JSON text; 413 past the limit.
pub(super) fn content(state: &AppState, v: &Value) -> ApiResult<String> {
    content_text(Content::Json(v), state.settings.limits.content).map_err(refused)
}

/// A stored send through the one send preparation: the idempotency key of `endpoint` (header
/// or `client_msg_id`), the content, the budget; then the dispatcher. The message's id.
pub(crate) async fn send_stored(
    req: &HttpRequest,
    state: &AppState,
    app: &crate::apps::App,
    endpoint: &str,
    draft: Draft<'_>,
    client_msg_id: &Option<Value>,
) -> ApiResult<u64> {
    let idempotency = idempotency(req, app.id, endpoint, client_msg_id)?;
    let draft = Draft {
        idempotency,
        ..draft
    };
    let request =
        SendRequest::prepare(app, state.settings.limits.content, draft).map_err(refused)?;
    let sent = state
        .dispatcher
        .send(request)
        .await
        .map_err(dispatch_error)?;
    Ok(sent.id)
}

/// A draft of a stored send from `sender` to `to`, its idempotency key still to be added.
pub(crate) fn draft(kind: MessageKind, sender: Uid, to: u64, content: &Value) -> Draft<'_> {
    Draft {
        msgid: None,
        device_tag: None,
        to_app: None,
        kind,
        sender,
        to,
        content: Content::Json(content),
        idempotency: None,
        origin: None,
    }
}

/// The idempotency key of a send: the `Idempotency-Key` header or the body's `client_msg_id`,
/// namespaced by app and endpoint.
pub(crate) fn idempotency(
    req: &HttpRequest,
    app: AppId,
    endpoint: &str,
    client_msg_id: &Option<Value>,
) -> ApiResult<Option<String>> {
    let header = req.headers().get("idempotency-key").map(|v| {
        v.to_str().map(str::to_string).map_err(|_| {
            ApiError::bad_request("invalid_header", "Idempotency-Key must be visible ASCII")
        })
    });
    let key = match (header.transpose()?, client_msg_id) {
        (Some(h), _) => Some(h),
        (None, None | Some(Value::Null)) => None,
        (None, Some(Value::String(s))) => Some(s.clone()),
        (None, Some(Value::Number(n))) => Some(n.to_string()),
        (None, Some(_)) => {
            return Err(ApiError::invalid_field(
                "client_msg_id",
                "must be a string or a number",
            ));
        }
    };
    key.map(|k| KeyScope::Http { app, endpoint }.key(&k))
        .transpose()
        .map_err(refused)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PeerBody {
    sender: Uid,
    receiver: Uid,
    #[schema(value_type = super::openapi::schemas::Content)]
    content: Value,
    client_msg_id: Option<Value>,
}

/// POST /messages/peers (S) → `{msg_id}` once stored in both inboxes.
#[utoipa::path(
    post, path = "/messages/peers", tag = "messages", security(("server" = [])),
    params(IdempotencyKey),
    request_body = PeerBody,
    responses((status = 200, description = "success", body = Envelope<MsgId>)),
)]
pub async fn peers(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<PeerBody>,
) -> ApiResult<HttpResponse> {
    let draft = draft(
        MessageKind::Peer,
        body.sender,
        body.receiver.0,
        &body.content,
    );
    let id = send_stored(&req, &state, &auth.0, "peers", draft, &body.client_msg_id).await?;
    Ok(ok(json!({ "msg_id": id })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ToUserBody {
    receiver: Uid,
    #[schema(value_type = super::openapi::schemas::Content)]
    content: Value,
    client_msg_id: Option<Value>,
}

/// POST /messages/systems (S)
#[utoipa::path(
    post, path = "/messages/systems", tag = "messages", security(("server" = [])),
    params(IdempotencyKey),
    request_body = ToUserBody,
    responses((status = 200, description = "success", body = Envelope<MsgId>)),
)]
pub async fn systems(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<ToUserBody>,
) -> ApiResult<HttpResponse> {
    // A system message has no sender; the receiver stands in (never shown: no `sender`).
    let draft = draft(
        MessageKind::System,
        body.receiver,
        body.receiver.0,
        &body.content,
    );
    let id = send_stored(&req, &state, &auth.0, "systems", draft, &body.client_msg_id).await?;
    Ok(ok(json!({ "msg_id": id })))
}

/// POST /messages/notifications (S): online devices only, not stored.
#[utoipa::path(
    post, path = "/messages/notifications", tag = "messages", security(("server" = [])),
    request_body = ToUserBody,
    responses((status = 200, description = "success", body = Envelope<NotificationSent>)),
)]
pub async fn notifications(
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<ToUserBody>,
) -> ApiResult<HttpResponse> {
    take_send(&auth.0)?;
    let content = content(&state, &body.content)?;
    let (id, devices) = state
        .dispatcher
        .send_notification(auth.0.id, body.receiver, &content)
        .await
        .map_err(dispatch_error)?;
    Ok(ok(json!({ "msg_id": id, "devices": devices })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    limit: Option<usize>,
    before: Option<u64>,
    /// The original's `?store=`: only the customer messages of that help desk.
    store: Option<u64>,
}

/// Most messages one history request returns.
const HISTORY_MAX: usize = 1000;

/// GET /messages (C): the caller's newest inbox messages, oldest first.
#[utoipa::path(
    get, path = "/messages", tag = "messages", security(("client" = [])), params(HistoryQuery),
    responses((status = 200, description = "success", body = Envelope<Vec<StoredMessage>>)),
)]
pub async fn history(
    auth: ClientAuth,
    state: web::Data<AppState>,
    query: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > HISTORY_MAX {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` must be 1..={HISTORY_MAX}"),
        ));
    }
    if query.before == Some(0) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`before` must be a positive seq",
        ));
    }
    let mut items = state
        .store
        .inbox_latest(auth.user, query.before, limit)
        .await?;
    if let Some(store) = query.store {
        let ours = store != 0 && store == auth.app.store_id;
        items.retain(|m| ours && is_customer_message(m));
    }
    // Stored records are already the wire JSON of each message.
    let body = format!(
        r#"{{"meta":{{"code":0,"message":"ok"}},"data":[{}]}}"#,
        items.join(",")
    );
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// A stored record of kind `customer`.
fn is_customer_message(record: &str) -> bool {
    serde_json::from_str::<Value>(record).is_ok_and(|v| v["kind"] == "customer")
}

/// POST /messages/dequeue (C): the original's acknowledgement of old clients, a no-op since
/// 2017 there too (acks travel on the WebSocket); answers success so those clients go on.
#[utoipa::path(
    post, path = "/messages/dequeue", tag = "messages", security(("client" = [])),
    responses((status = 200, description = "success", body = Envelope<Dequeued>)),
)]
pub async fn dequeue(_auth: ClientAuth) -> HttpResponse {
    ok(json!({ "success": true }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OfflineQuery {
    uid: Option<String>,
    customer_id: Option<String>,
    platform_id: Option<u8>,
    device_id: Option<String>,
}

/// GET /messages/offline (S): `{count, new}` after the device's acknowledged position.
#[utoipa::path(
    get, path = "/messages/offline", tag = "messages", security(("server" = [])),
    params(OfflineQuery),
    responses((status = 200, description = "success", body = Envelope<Offline>)),
)]
pub async fn offline(
    auth: ServerAuth,
    state: web::Data<AppState>,
    query: web::Query<OfflineQuery>,
) -> ApiResult<HttpResponse> {
    let uid = match (&query.uid, &query.customer_id) {
        (Some(u), _) => Uid::parse(u)
            .map_err(|why| ApiError::bad_request("invalid_query", format!("`uid` {why}")))?,
        (None, Some(c)) => {
            let cid = super::customers::customer_id(&Value::String(c.clone()), "customer_id")?;
            state
                .store
                .find_customer(auth.0.id, &cid)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(
                        "unknown_customer",
                        format!("no customer {cid:?} registered"),
                    )
                })?
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`uid` or `customer_id` is required",
            ));
        }
    };
    let device = device_key(
        query.platform_id.unwrap_or(0),
        query.device_id.as_deref().unwrap_or(""),
    );
    let count = state
        .store
        .unread_count(UserKey::new(auth.0.id, uid), &device)
        .await?;
    Ok(ok(json!({ "count": count, "new": u8::from(count > 0) })))
}
