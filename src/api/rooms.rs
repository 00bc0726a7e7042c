//! POST /messages/rooms (S): a chat-room message from an app's server (README "Chat rooms").
//! Live only: it reaches the connections in the room now, nothing is stored or pushed.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ServerAuth;
use super::body::JsonBody;
use super::messages::{content, dispatch_error, take_send};
use super::openapi::answers::NotificationSent;
use super::openapi::schemas::Envelope;
use crate::dispatch::RoomSend;
use crate::domain::{RoomId, Uid};
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
    take_send(&auth.0)?;
    let content = content(&state, &body.content)?;
    let (id, devices) = state
        .dispatcher
        .send_room(RoomSend {
            app: auth.0.id,
            sender: body.sender,
            room: body.receiver,
            content: &content,
            origin: None,
        })
        .await
        .map_err(dispatch_error)?;
    Ok(ok(json!({ "msg_id": id, "devices": devices })))
}
