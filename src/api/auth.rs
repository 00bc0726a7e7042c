//! Authentication extractors (SPEC §3.1).
//!
//! - `ServerAuth`: `Authorization: Basic base64("<appid>:<md5hex(secret)>")`: the app's IP
//!   allow-list first, then the hex compared case-insensitively in constant time.
//! - `ClientAuth`: `Authorization: Bearer <token>`, resolved through the store.
//!
//! Every failure is a 401 (403 for the allow-list) in the standard envelope, never a 500.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use futures_util::future::{LocalBoxFuture, Ready, ready};
use subtle::ConstantTimeEq;

use crate::apps::App;
use crate::domain::{AppId, UserKey};
use crate::error::ApiError;
use crate::state::AppState;

/// An app server, authenticated by its secret.
pub struct ServerAuth(pub Arc<App>);

/// A client (end user), authenticated by its bearer token.
pub struct ClientAuth {
    pub app: Arc<App>,
    pub user: UserKey,
}

pub(crate) fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))
}

/// The `<credentials>` of `Authorization: <scheme> <credentials>`, scheme matched
/// case-insensitively.
pub(super) fn credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

impl FromRequest for ServerAuth {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(server_auth(req))
    }
}

/// `Authorization: Basic base64("<appid>:<password>")`: the app it names (if configured) and
/// the password; `None` if the header is not of that form.
fn basic_app(req: &HttpRequest, state: &AppState) -> Option<(Option<Arc<App>>, String)> {
    let encoded = credentials(req.headers(), "Basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (appid, password) = decoded.split_once(':')?;
    let app = crate::domain::parse_id(appid)
        .ok()
        .and_then(|id| state.apps.get(AppId(id)))
        .cloned();
    Some((app, password.to_string()))
}

/// A client app, named by its app key (`POST /customer/register`, as the original). The key is
/// not a secret: every copy of the client app carries it.
pub struct AppKeyAuth(pub Arc<App>);

impl FromRequest for AppKeyAuth {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let bad = || {
            ApiError::unauthorized(
                "app key required: Authorization: Basic base64(\"<appid>:<appkey>\")",
            )
        };
        ready(state(req).and_then(|state| match basic_app(req, state) {
            Some((Some(app), key)) if app.key_matches(key.trim()) => Ok(AppKeyAuth(app)),
            _ => Err(bad()),
        }))
    }
}

fn server_auth(req: &HttpRequest) -> Result<ServerAuth, ApiError> {
    let state = state(req)?;
    let bad = || {
        ApiError::unauthorized(
            "server credentials required: Authorization: Basic base64(\"<appid>:<md5hex(appsecret)>\")",
        )
    };
    let (app, digest) = basic_app(req, state).ok_or_else(bad)?;
    // The allow-list first: from outside it, a right and a wrong secret get the same answer,
    // so a secret cannot be tested from there.
    if let Some(app) = &app
        && !app.allowed_ips.is_empty()
    {
        let ip = client_ip(req, &state.settings.http.trusted_proxies);
        if !ip.is_some_and(|ip| app.allowed_ips.iter().any(|net| net.contains(&ip))) {
            return Err(ApiError::forbidden(
                "ip_not_allowed",
                "this app's credentials may not be used from this address",
            ));
        }
    }
    let given = digest.trim().to_ascii_lowercase();
    // Compare even for an unknown app so the timing does not reveal which app ids exist.
    const NO_APP: &str = "00000000000000000000000000000000";
    let expected = app.as_deref().map_or(NO_APP, |a| a.secret_md5_hex.as_str());
    let matches: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    match app {
        Some(app) if matches => Ok(ServerAuth(app)),
        _ => Err(bad()),
    }
}

/// The caller's address: the socket peer, or — only when the peer is a trusted proxy — the
/// `X-Real-IP` header, else the right-most `X-Forwarded-For` entry that is not a trusted proxy.
pub fn client_ip(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(ip) = header("x-real-ip").and_then(|v| v.trim().parse().ok()) {
        return Some(ip);
    }
    if let Some(chain) = header("x-forwarded-for") {
        let mut last = None;
        for hop in chain.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if is_trusted(&ip) => last = Some(ip),
                Ok(ip) => return Some(ip),
                Err(_) => break,
            }
        }
        if let Some(ip) = last {
            return Some(ip);
        }
    }
    Some(peer)
}

impl FromRequest for ClientAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = credentials(req.headers(), "Bearer").map(str::to_string);
        let state = state(req).cloned();
        Box::pin(async move {
            let state = state?;
            let token = token.ok_or_else(|| {
                ApiError::unauthorized("client token required: Authorization: Bearer <token>")
            })?;
            authenticate_token(&state, &token).await
        })
    }
}

/// Resolves a bearer token to its user (also used by the WebSocket upgrade).
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<ClientAuth, ApiError> {
    let invalid = || ApiError::unauthorized("invalid or revoked token");
    if token.is_empty() || token.len() > 256 {
        return Err(invalid());
    }
    let user = state
        .store
        .resolve_token(token)
        .await?
        .ok_or_else(invalid)?;
    let app = state.apps.get(user.app).cloned().ok_or_else(invalid)?;
    Ok(ClientAuth { app, user })
}
