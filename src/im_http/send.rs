//! The im HTTP API's sends whose content is the raw request body and whose ids are query
//! parameters: peer, group, notification, room and RT messages (reference §6). Each goes
//! through the same preparation and send path as the REST API — membership, mute, the app's
//! send budget, an `Idempotency-Key` header, push.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::data;
use super::params::Params;
use crate::api::body::RawBody;
use crate::api::messages::{dispatch_error, idempotency, refused, send_stored};
use crate::apps::App;
use crate::dispatch::{Content, Draft, SendRequest};
use crate::domain::{MessageKind, Uid};
use crate::error::ApiResult;
use crate::state::AppState;

/// A send prepared as the REST API prepares it; `endpoint` scopes its idempotency key.
pub(super) fn prepare(
    req: &HttpRequest,
    state: &AppState,
    app: &App,
    endpoint: &str,
    (kind, sender, to): (MessageKind, Uid, u64),
    content: Content<'_>,
) -> ApiResult<SendRequest> {
    let draft = Draft {
        msgid: None,
        device_tag: None,
        to_app: None,
        kind,
        sender,
        to,
        content,
        idempotency: idempotency(req, app.id, endpoint, &None)?,
        origin: None,
    };
    SendRequest::prepare(app, state.settings.limits.content, draft).map_err(refused)
}

/// A stored send from the query's `sender` to its `receiver`: `{"data":{"msg_id"}}`.
async fn stored(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
    kind: MessageKind,
    endpoint: &str,
) -> ApiResult<HttpResponse> {
    let p = Params::of(&req)?;
    let app = p.app(&state)?;
    let draft = Draft {
        msgid: None,
        device_tag: None,
        to_app: None,
        kind,
        sender: Uid(p.id("sender")?),
        to: p.id("receiver")?,
        content: Content::Raw(&body.0),
        idempotency: None,
        origin: None,
    };
    let id = send_stored(&req, &state, app, endpoint, draft, &None).await?;
    Ok(data(json!({ "msg_id": id })))
}

/// `/post_peer_message?appid&sender&receiver`, body = content.
pub async fn peer(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    stored(req, state, body, MessageKind::Peer, "im_peer").await
}

/// `/post_group_message?appid&sender&receiver=<gid>`, body = content: the sender must be a
/// member and not muted (the original skipped both checks for this endpoint).
pub async fn group(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    stored(req, state, body, MessageKind::Group, "im_group").await
}

/// A live-only send (`/post_room_message`, `/post_realtime_message`):
/// `{"data":{"msg_id","devices"}}`.
async fn live(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
    kind: MessageKind,
    (sender, to): (&str, &str),
) -> ApiResult<HttpResponse> {
    let p = Params::of(&req)?;
    let app = p.app(&state)?;
    let target = (kind, Uid(p.id(sender)?), p.id(to)?);
    let request = prepare(&req, &state, app, "im_live", target, Content::Raw(&body.0))?;
    let (id, devices) = state
        .dispatcher
        .send_live(request)
        .await
        .map_err(dispatch_error)?;
    Ok(data(json!({ "msg_id": id, "devices": devices })))
}

/// `/post_room_message?appid&uid&room`, body = content: every connection in the room.
pub async fn room(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    live(req, state, body, MessageKind::Room, ("uid", "room")).await
}

/// `/post_realtime_message?appid&sender&receiver`, body = content: the receiver's open
/// connections.
pub async fn realtime(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    live(req, state, body, MessageKind::Rt, ("sender", "receiver")).await
}

/// `/post_notification?appid&uid`, body = content: the user's open connections, not stored.
pub async fn notification(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    let p = Params::of(&req)?;
    let app = p.app(&state)?;
    let uid = p.id("uid")?;
    let target = (MessageKind::Notification, Uid(uid), uid);
    let request = prepare(
        &req,
        &state,
        app,
        "im_notification",
        target,
        Content::Raw(&body.0),
    )?;
    let (id, devices) = state
        .dispatcher
        .send_notification(app.id, Uid(uid), &request.content)
        .await
        .map_err(dispatch_error)?;
    Ok(data(json!({ "msg_id": id, "devices": devices })))
}
