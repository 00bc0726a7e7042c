//! SPEC §4.4 customer service: supporters with live presence, assignment, customer messages.
//! (Customer tokens: `registration.rs`.)

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{ClientAuth, ServerAuth};
use super::body::{JsonBody, check_name, path_id};
use super::messages::{draft, send_stored};
use super::openapi::IdempotencyKey;
use super::openapi::answers::{MsgId, MySupporter, Removed, SupporterAdded, SupporterRow};
use super::openapi::schemas::Envelope;
use crate::apps::App;
use crate::dispatch::Draft;
use crate::domain::{AppId, MessageKind, Uid, UserKey, parse_id};
use crate::error::{ApiError, ApiResult, ok};
use crate::state::AppState;
use crate::store::Supporter;

/// A customer id: a non-empty string (or number) of at most 128 characters.
pub(super) fn customer_id(v: &Value, field: &str) -> ApiResult<String> {
    let id = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ApiError::invalid_field(
                field,
                "must be a string or a number",
            ));
        }
    };
    if id.is_empty() || id.len() > 128 {
        return Err(ApiError::invalid_field(
            field,
            "must be 1 to 128 characters",
        ));
    }
    Ok(id)
}

/// The store in the path, which must be the authenticated app's.
fn own_store(req: &HttpRequest, app: &App) -> ApiResult<u64> {
    let store_id = path_id(req, "store_id", parse_id)?;
    if app.store_id == 0 || app.store_id != store_id {
        return Err(ApiError::not_found(
            "store_not_found",
            format!("this app has no store {store_id}"),
        ));
    }
    Ok(store_id)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SupporterBody {
    uid: Uid,
    name: String,
    avatar: Option<String>,
}

/// POST /stores/{store_id}/supporters (S)
#[utoipa::path(
    post, path = "/stores/{store_id}/supporters", tag = "customers", security(("server" = [])),
    params(("store_id" = u64, Path)),
    request_body = SupporterBody,
    responses((status = 200, description = "success", body = Envelope<SupporterAdded>)),
)]
pub async fn add_supporter(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(b): JsonBody<SupporterBody>,
) -> ApiResult<HttpResponse> {
    let store_id = own_store(&req, &auth.0)?;
    check_name("name", b.name.as_str())?;
    check_name("avatar", b.avatar.as_deref())?;
    state
        .store
        .add_supporter(store_id, b.uid, &b.name, b.avatar.as_deref().unwrap_or(""))
        .await?;
    Ok(ok(json!({ "uid": b.uid })))
}

/// DELETE /stores/{store_id}/supporters/{uid} (S)
#[utoipa::path(
    delete, path = "/stores/{store_id}/supporters/{uid}", tag = "customers",
    security(("server" = [])),
    params(("store_id" = u64, Path), ("uid" = Uid, Path)),
    responses((status = 200, description = "success", body = Envelope<Removed>)),
)]
pub async fn remove_supporter(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let store_id = own_store(&req, &auth.0)?;
    let uid = path_id(&req, "uid", Uid::parse)?;
    let removed = state.store.remove_supporter(store_id, uid).await?;
    Ok(ok(json!({ "removed": removed })))
}

/// Per supporter: connected on any node.
async fn online(state: &AppState, app: AppId, all: &[Supporter]) -> Vec<bool> {
    let users: Vec<UserKey> = all.iter().map(|s| UserKey::new(app, s.uid)).collect();
    state.dispatcher.online_anywhere(&users).await
}

/// GET /stores/{store_id}/supporters (S): every supporter with live status.
#[utoipa::path(
    get, path = "/stores/{store_id}/supporters", tag = "customers", security(("server" = [])),
    params(("store_id" = u64, Path)),
    responses((status = 200, description = "success", body = Envelope<Vec<SupporterRow>>)),
)]
pub async fn list_supporters(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let store_id = own_store(&req, &auth.0)?;
    let all = state.store.supporters(store_id).await?;
    let online = online(&state, auth.0.id, &all).await;
    let list: Vec<Value> = all
        .into_iter()
        .zip(online)
        .map(|(s, on)| {
            json!({
                "uid": s.uid, "name": s.name, "avatar": s.avatar, "assigned": s.assigned,
                "status": if on { "online" } else { "offline" },
            })
        })
        .collect();
    Ok(ok(list))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SupporterQuery {
    store_id: Option<String>,
}

/// The supporter to assign: an online one with the fewest customers, else any with the fewest.
async fn choose(state: &AppState, app: AppId, all: &[Supporter]) -> Option<Uid> {
    let least = |it: &mut dyn Iterator<Item = &Supporter>| {
        it.min_by_key(|s| (s.assigned, s.uid)).map(|s| s.uid)
    };
    let online = online(state, app, all).await;
    least(&mut all.iter().zip(online).filter(|(_, on)| *on).map(|(s, _)| s))
        .or_else(|| least(&mut all.iter()))
}

/// GET /supporters?store_id= (C, a customer's token) → the customer's supporter.
#[utoipa::path(
    get, path = "/supporters", tag = "customers", security(("client" = [])),
    params(SupporterQuery),
    responses((status = 200, description = "success", body = Envelope<MySupporter>)),
)]
pub async fn my_supporter(
    auth: ClientAuth,
    state: web::Data<AppState>,
    q: web::Query<SupporterQuery>,
) -> ApiResult<HttpResponse> {
    if !state.settings.customers.is_customer(auth.user.uid) {
        return Err(ApiError::forbidden(
            "not_a_customer",
            "only a customer's token (POST /auth/customer) is assigned a supporter",
        ));
    }
    let raw = q
        .store_id
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("invalid_query", "`store_id` is required"))?;
    let store_id = parse_id(raw)
        .map_err(|why| ApiError::bad_request("invalid_query", format!("`store_id` {why}")))?;
    if auth.app.store_id != store_id {
        return Err(ApiError::not_found(
            "store_not_found",
            format!("this app has no store {store_id}"),
        ));
    }
    for _ in 0..3 {
        let all = state.store.supporters(store_id).await?;
        // `assign` keeps a customer's current supporter while it is registered; `chosen` is
        // for a customer without one.
        let Some(chosen) = choose(&state, auth.app.id, &all).await else {
            return Err(ApiError::not_found(
                "no_supporter",
                "this store has no supporters",
            ));
        };
        if let Some(uid) = state.store.assign(auth.user, store_id, chosen).await?
            && let Some(s) = all.iter().find(|s| s.uid == uid)
        {
            let on = online(&state, auth.app.id, std::slice::from_ref(s)).await;
            let status = if on.first() == Some(&true) {
                "online"
            } else {
                "offline"
            };
            return Ok(ok(json!({
                "seller_id": s.uid, "name": s.name, "avatar": s.avatar, "status": status,
            })));
        }
        // The chosen supporter was unregistered meanwhile: choose again.
    }
    Err(ApiError::unavailable(
        "supporters changed while assigning; retry",
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CustomerMessageBody {
    sender: Uid,
    receiver: Uid,
    /// The receiver's app, when it is not the calling app: customer messages to or from the
    /// help-desk app (`customers.help_desk_app`).
    receiver_app: Option<AppId>,
    #[schema(value_type = super::openapi::schemas::Content)]
    content: Value,
    client_msg_id: Option<Value>,
}

/// POST /messages/customers (S): between a customer and their assigned supporter, or between
/// a user of the calling app and one of the help-desk app.
#[utoipa::path(
    post, path = "/messages/customers", operation_id = "send_customer_message",
    tag = "messages",
    security(("server" = [])),
    params(IdempotencyKey),
    request_body = CustomerMessageBody,
    responses((status = 200, description = "success", body = Envelope<MsgId>)),
)]
pub async fn send(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(b): JsonBody<CustomerMessageBody>,
) -> ApiResult<HttpResponse> {
    let draft = Draft {
        to_app: b.receiver_app,
        ..draft(MessageKind::Customer, b.sender, b.receiver.0, &b.content)
    };
    let id = send_stored(&req, &state, &auth.0, "customers", draft, &b.client_msg_id).await?;
    Ok(ok(json!({ "msg_id": id })))
}
