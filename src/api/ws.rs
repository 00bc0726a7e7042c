//! GET /ws: authenticate (401 before the upgrade), upgrade, hand the socket to the dispatcher.

use actix_http::body::{BodyStream, MessageBody};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::auth::authenticate_token;
use crate::dispatch::ConnectionInfo;
use crate::domain::Platform;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    platform_id: Option<u8>,
    device_id: Option<String>,
}

pub async fn connect(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<WsQuery>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, t)| t.trim().to_string());
    let token = header.or_else(|| query.token.clone()).ok_or_else(|| {
        ApiError::unauthorized("token required: Authorization: Bearer <token> or ?token=")
    })?;
    let auth = authenticate_token(&state, &token).await?;
    let device_id = query.device_id.clone().unwrap_or_default();
    if device_id.len() > 128 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`device_id` is longer than 128 bytes",
        ));
    }
    let handshake = actix_http::ws::handshake(req.head()).map_err(|e| {
        ApiError::bad_request("not_websocket", format!("WebSocket upgrade required: {e}"))
    })?;
    let info = ConnectionInfo {
        user: auth.user,
        app: auth.app.clone(),
        platform: Platform(query.platform_id.unwrap_or(0)),
        device_id,
    };
    let body = state
        .dispatcher
        .open_connection(info, payload.into_inner())
        .await
        .map_err(super::messages::dispatch_error)?;
    let mut handshake = handshake;
    let response = handshake
        .message_body(BodyStream::new(body).boxed())
        .map_err(|e| ApiError::internal(format!("upgrade response: {e}")))?;
    Ok(response.into())
}
