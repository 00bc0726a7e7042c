//! POST /messages/rooms (S): a chat-room message from an app's server (README "Chat rooms").
//! Live only: it reaches the connections in the room now, nothing is stored or pushed.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ServerAuth;
use super::body::JsonBody;
use super::messages::{dispatch_error, draft, refused};
use super::openapi::answers::NotificationSent;
use super::openapi::schemas::Envelope;
use crate::dispatch::SendRequest;
use crate::domain::{MessageKind, RoomId, Uid};
use crate::error::{ApiResult, ok};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoomBody {
    sender: Uid,
    /// The room id.
    #[schema(value_type = u64)]
    receiver: RoomId,
    #[schema(value_type = super::openapi::schemas::Content)]
    content: Value,
}

/// POST /messages/rooms (S) → `{msg_id, devices}`: every connection in the room on this node.
/// 403 `speak_forbidden` when the sender's `forbidden` is set.
#[utoipa::path(
    post, path = "/messages/rooms", tag = "messages", security(("server" = [])),
    request_body = RoomBody,
    responses((status = 200, description = "success", body = Envelope<NotificationSent>)),
)]
pub async fn send(
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<RoomBody>,
) -> ApiResult<HttpResponse> {
    let draft = draft(
        MessageKind::Room,
        body.sender,
        body.receiver.0,
        &body.content,
    );
    let request =
        SendRequest::prepare(&auth.0, state.settings.limits.content, draft).map_err(refused)?;
    let (id, devices) = state
        .dispatcher
        .send_live(request)
        .await
        .map_err(dispatch_error)?;
    Ok(ok(json!({ "msg_id": id, "devices": devices })))
}
