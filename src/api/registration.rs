//! Customer identity (SPEC §4.4): `POST /auth/customer` (no credentials) and the original's
//! `POST /customer/register` and `/v2/customer/register` (the app key), under one set of rules.
//!
//! By default an app's server vouches for each customer: it signs the customer id with the app
//! secret and an expiry, and a registration without a valid signature is refused. An app set to
//! `customer_registration = "unsigned"` keeps the original's behaviour, where the customer id
//! alone is the credential. The app key of `/customer/register` proves nothing about the
//! customer (every client app carries it): it only names the app. A revoked customer stays
//! blocked until the app server lifts the block.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AppKeyAuth, ServerAuth, client_ip};
use super::body::{JsonBody, check_name, path_id};
use super::customers::customer_id;
use super::openapi::answers::{CustomerToken, Lifted};
use super::openapi::schemas::Envelope;
use crate::apps::App;
use crate::config::CustomerRegistration;
use crate::domain::{AppId, Uid, UserKey, now_secs};
use crate::error::{ApiError, ApiResult, ok};
use crate::state::AppState;
use crate::store::UserPatch;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterBody {
    /// Required on `/auth/customer`; on `/customer/register` the app of the key (optional).
    appid: Option<AppId>,
    /// The app's own id for the customer: a string or a number, 1 to 128 characters.
    #[schema(value_type = Option<String>)]
    customer_id: Option<Value>,
    /// The original's other name for `customer_id`.
    #[schema(value_type = Option<String>)]
    uid: Option<Value>,
    name: Option<String>,
    avatar: Option<String>,
    /// Signed registrations: when the signature stops being accepted (Unix seconds).
    expires: Option<u64>,
    /// Signed registrations: hex HMAC-SHA256 of `customer:<appid>:<customer_id>:<expires>`.
    signature: Option<String>,
}

/// POST /auth/customer (no credentials) → `{token, store_id, client_id}`.
#[utoipa::path(
    post, path = "/auth/customer", tag = "customers", security(()), request_body = RegisterBody,
    responses((status = 200, description = "success", body = Envelope<CustomerToken>)),
)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(b): JsonBody<RegisterBody>,
) -> ApiResult<HttpResponse> {
    let appid = b
        .appid
        .ok_or_else(|| ApiError::bad_request("missing_field", "`appid`: missing field `appid`"))?;
    let app = state.apps.get(appid).cloned().ok_or_else(|| {
        ApiError::bad_request("unknown_app", format!("no app with appid {appid}"))
    })?;
    register_customer(&req, &state, &app, b).await
}

/// POST /customer/register and /v2/customer/register (`Basic base64(appid:appkey)`, as the
/// original) → `{token, store_id, client_id}`.
#[utoipa::path(
    post, path = "/customer/register", tag = "customers", security(("app_key" = [])),
    request_body = RegisterBody,
    responses((status = 200, description = "success", body = Envelope<CustomerToken>)),
)]
pub async fn register_with_key(
    req: HttpRequest,
    auth: AppKeyAuth,
    state: web::Data<AppState>,
    JsonBody(b): JsonBody<RegisterBody>,
) -> ApiResult<HttpResponse> {
    if b.appid.is_some_and(|id| id != auth.0.id) {
        return Err(ApiError::invalid_field(
            "appid",
            "is not the app of the Authorization credentials",
        ));
    }
    register_customer(&req, &state, &auth.0, b).await
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Checks the app server's signature of a registration, as the app's setting requires.
fn check_signature(state: &AppState, app: &App, cid: &str, b: &RegisterBody) -> ApiResult<()> {
    if app.customer_registration == CustomerRegistration::Unsigned && b.signature.is_none() {
        return Ok(());
    }
    let (Some(expires), Some(signature)) = (b.expires, b.signature.as_deref()) else {
        return Err(unauthorized(
            "signature_required",
            "this app registers customers only with its server's signature: `expires` (Unix \
             seconds) and `signature` (hex HMAC-SHA256 of \"customer:<appid>:<customer_id>:<expires>\" \
             keyed with the app secret)",
        ));
    };
    let now = now_secs();
    if expires <= now {
        return Err(unauthorized(
            "signature_expired",
            format!("the signature expired at {expires}; it is now {now}"),
        ));
    }
    let max = state.settings.customers.max_signature_ttl_secs;
    if expires > now.saturating_add(max) {
        return Err(ApiError::invalid_field(
            "expires",
            format!("is more than {max} s in the future (customers.max_signature_ttl_secs)"),
        ));
    }
    if !app.customer_signature_matches(cid, expires, signature) {
        return Err(unauthorized(
            "bad_signature",
            "`signature` is not this app's signature of this customer id and expiry",
        ));
    }
    Ok(())
}

/// The rules both registration endpoints share.
async fn register_customer(
    req: &HttpRequest,
    state: &AppState,
    app: &App,
    b: RegisterBody,
) -> ApiResult<HttpResponse> {
    if let Some(ip) = client_ip(req, &state.settings.http.trusted_proxies) {
        state
            .register_limiter
            .check(&ip)
            .map_err(ApiError::rate_limited)?;
    }
    if app.store_id == 0 {
        return Err(ApiError::bad_request(
            "no_customer_service",
            "this app has no customer-service store (store_id)",
        ));
    }
    let (field, raw) = match (&b.customer_id, &b.uid) {
        (Some(v), _) => ("customer_id", v),
        (None, Some(v)) => ("uid", v),
        (None, None) => {
            return Err(ApiError::bad_request(
                "missing_field",
                "`customer_id`: missing field `customer_id` (or `uid`)",
            ));
        }
    };
    let cid = customer_id(raw, field)?;
    check_name("name", b.name.as_deref())?;
    check_name("avatar", b.avatar.as_deref())?;
    check_signature(state, app, &cid, &b)?;
    let uid = state
        .store
        .customer_uid(app.id, &cid, state.settings.customers.uid_base)
        .await?;
    let user = UserKey::new(app.id, uid);
    let token = state
        .store
        .grant_token(user, b.name.as_deref(), &super::users::mint_token()?)
        .await?
        .ok_or_else(|| blocked(uid))?;
    if b.avatar.is_some() {
        let patch = UserPatch {
            avatar: b.avatar,
            ..UserPatch::default()
        };
        state.store.update_user(user, &patch).await?;
    }
    Ok(ok(
        json!({ "token": token, "store_id": app.store_id, "client_id": uid }),
    ))
}

/// 403 for a user whose token was revoked and who stays blocked.
pub(super) fn blocked(uid: Uid) -> ApiError {
    ApiError::forbidden(
        "customer_blocked",
        format!(
            "customer {uid} was revoked; the app server lifts that with DELETE /auth/customers/{uid}/block"
        ),
    )
}

/// DELETE /auth/customers/{uid}/block (S): a revoked customer may register again (and gets a
/// new token) → `{lifted}`.
#[utoipa::path(
    delete, path = "/auth/customers/{uid}/block", tag = "customers", security(("server" = [])),
    params(("uid" = Uid, Path)),
    responses((status = 200, description = "success", body = Envelope<Lifted>)),
)]
pub async fn lift_block(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let user = UserKey::new(auth.0.id, path_id(&req, "uid", Uid::parse)?);
    let lifted = state.store.set_blocked(user, false).await?;
    Ok(ok(json!({ "lifted": lifted })))
}
