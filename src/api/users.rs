//! SPEC §4.1: tokens, user settings, push device tokens.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::auth::{ClientAuth, ServerAuth};
use super::body::{JsonBody, check_name, path_id};
use super::openapi::answers::{Removed, Revoked, Token};
use super::openapi::schemas::{DeviceTokens, Envelope, Null};
use crate::domain::{Flag, PushProvider, Uid, UserKey, now_secs};
use crate::error::{ApiError, ApiResult, ok, ok_empty};
use crate::state::AppState;
use crate::store::UserPatch;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct GrantBody {
    uid: Uid,
    user_name: Option<String>,
}

/// A new token: 192 bits from the OS RNG, URL-safe base64 (32 characters).
pub(super) fn mint_token() -> ApiResult<String> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw)
        .map_err(|e| ApiError::internal(format!("OS random source failed: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// POST /auth/grant (S) → `{token}`; the same token for the same user every time.
#[utoipa::path(
    post, path = "/auth/grant", tag = "users", security(("server" = [])),
    request_body = GrantBody,
    responses((status = 200, description = "success", body = Envelope<Token>)),
)]
pub async fn grant(
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<GrantBody>,
) -> ApiResult<HttpResponse> {
    check_name("user_name", body.user_name.as_deref())?;
    let user = UserKey::new(auth.0.id, body.uid);
    let token = state
        .store
        .grant_token(user, body.user_name.as_deref(), &mint_token()?)
        .await?;
    Ok(ok(serde_json::json!({ "token": token })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct DndBody {
    peer_uid: Uid,
    on: Flag,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserBody {
    name: Option<String>,
    avatar: Option<String>,
    do_not_disturb: Option<DndBody>,
    mute: Option<Flag>,
    forbidden: Option<Flag>,
}

/// POST|PATCH /users/{uid} (S): every given setting is applied, atomically.
#[utoipa::path(
    method(post, patch), path = "/users/{uid}", tag = "users", security(("server" = [])),
    params(("uid" = Uid, Path)),
    request_body = UserBody,
    responses((status = 200, description = "success", body = Envelope<Null>)),
)]
pub async fn update(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<UserBody>,
) -> ApiResult<HttpResponse> {
    let uid = path_id(&req, "uid", Uid::parse)?;
    check_name("name", body.name.as_deref())?;
    check_name("avatar", body.avatar.as_deref())?;
    let patch = UserPatch {
        name: body.name,
        avatar: body.avatar,
        do_not_disturb: body.do_not_disturb.map(|d| (d.peer_uid, d.on.0)),
        mute: body.mute.map(|f| f.0),
        forbidden: body.forbidden.map(|f| f.0),
    };
    if patch.is_empty() {
        return Err(ApiError::bad_request(
            "no_action",
            "body must contain at least one of `name`, `avatar`, `do_not_disturb`, `mute`, `forbidden`",
        ));
    }
    let user = UserKey::new(auth.0.id, uid);
    state.store.update_user(user, &patch).await?;
    state.dispatcher.user_changed(user).await;
    Ok(ok_empty())
}

/// The provider tokens named in a bind/unbind body; at least one non-empty string.
fn device_tokens(body: &Map<String, Value>) -> ApiResult<Vec<(PushProvider, String)>> {
    let mut tokens = Vec::new();
    for provider in PushProvider::ALL {
        match body.get(provider.token_field()) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(Value::String(s)) if s.len() > 4096 => {
                return Err(ApiError::invalid_field(
                    provider.token_field(),
                    "is longer than 4096 bytes",
                ));
            }
            Some(Value::String(s)) => tokens.push((provider, s.trim().to_string())),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    provider.token_field(),
                    "must be a string",
                ));
            }
        }
    }
    if tokens.is_empty() {
        return Err(ApiError::bad_request(
            "no_device_token",
            "body must contain at least one of apns_device_token, pushkit_device_token, \
             xg_device_token, xm_device_token, hw_device_token, gcm_device_token, jp_device_token",
        ));
    }
    Ok(tokens)
}

async fn bind_for(
    state: &AppState,
    user: UserKey,
    body: &Map<String, Value>,
) -> ApiResult<HttpResponse> {
    let tokens = device_tokens(body)?;
    state
        .store
        .bind_device_tokens(user, &tokens, now_secs())
        .await?;
    state.dispatcher.user_changed(user).await;
    Ok(ok_empty())
}

async fn unbind_for(
    state: &AppState,
    user: UserKey,
    body: &Map<String, Value>,
) -> ApiResult<HttpResponse> {
    let tokens = device_tokens(body)?;
    let removed = state.store.unbind_device_tokens(user, &tokens).await?;
    state.dispatcher.user_changed(user).await;
    Ok(ok(serde_json::json!({ "removed": removed })))
}

/// POST /users/{uid}/bind (S)
#[utoipa::path(
    post, path = "/users/{uid}/bind", tag = "users", security(("server" = [])),
    params(("uid" = Uid, Path)),
    request_body = DeviceTokens,
    responses((status = 200, description = "success", body = Envelope<Null>)),
)]
pub async fn bind(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    let uid = path_id(&req, "uid", Uid::parse)?;
    bind_for(&state, UserKey::new(auth.0.id, uid), &body).await
}

/// POST /users/{uid}/unbind (S): removes a provider's token only if it is the stored one.
#[utoipa::path(
    post, path = "/users/{uid}/unbind", tag = "users", security(("server" = [])),
    params(("uid" = Uid, Path)),
    request_body = DeviceTokens,
    responses((status = 200, description = "success", body = Envelope<Removed>)),
)]
pub async fn unbind(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    let uid = path_id(&req, "uid", Uid::parse)?;
    unbind_for(&state, UserKey::new(auth.0.id, uid), &body).await
}

/// POST /device/bind (C): the token's own user.
#[utoipa::path(
    post, path = "/device/bind", tag = "users", security(("client" = [])),
    request_body = DeviceTokens,
    responses((status = 200, description = "success", body = Envelope<Null>)),
)]
pub async fn device_bind(
    auth: ClientAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    bind_for(&state, auth.user, &body).await
}

/// POST /device/unbind (C)
#[utoipa::path(
    post, path = "/device/unbind", tag = "users", security(("client" = [])),
    request_body = DeviceTokens,
    responses((status = 200, description = "success", body = Envelope<Removed>)),
)]
pub async fn device_unbind(
    auth: ClientAuth,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<HttpResponse> {
    unbind_for(&state, auth.user, &body).await
}

/// DELETE /auth/tokens/{uid} (S): the user's token stops working at once, their connections
/// are closed, and the next grant issues a new token.
#[utoipa::path(
    delete, path = "/auth/tokens/{uid}", tag = "users", security(("server" = [])),
    params(("uid" = Uid, Path)),
    responses((status = 200, description = "success", body = Envelope<Revoked>)),
)]
pub async fn revoke(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let user = UserKey::new(auth.0.id, path_id(&req, "uid", Uid::parse)?);
    let revoked = state.store.revoke_token(user).await?;
    state.dispatcher.disconnect_user(user).await;
    Ok(ok(serde_json::json!({ "revoked": revoked })))
}
