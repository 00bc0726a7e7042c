//! GET /ws. Upgrade requests arrive through actix-http's upgrade hook (`upgrade`), not the
//! router: the handler authenticates (401 before the upgrade), registers the connection, answers
//! 101 on the raw socket and hands the socket to the dispatcher's lean connection loop — no
//! HTTP-layer buffers stay behind a WebSocket. A plain GET /ws (no upgrade) is routed normally
//! and answered 400. An upgrade without a token is the GoBelieve binary protocol (the JS SDK
//! sends none): accepted unauthenticated, its first frame is AUTH_TOKEN (`dispatch::gob`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_codec::Framed;
use actix_http::{HttpMessage, Request, h1};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::auth::authenticate_token;
use super::gobelieve::resolver;
use super::messages::dispatch_error;
use crate::dispatch::{Accepted, BinaryConnection, ConnectionInfo, Transport};
use crate::domain::Platform;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    token: Option<String>,
    platform_id: Option<u8>,
    device_id: Option<String>,
}

/// The bearer token of `Authorization: Bearer …`, else `?token=`.
fn token(headers: &actix_web::http::header::HeaderMap, query: &WsQuery) -> ApiResult<String> {
    super::auth::credentials(headers, "Bearer")
        .map(str::to_string)
        .or_else(|| query.token.clone())
        .ok_or_else(|| {
            ApiError::unauthorized("token required: Authorization: Bearer <token> or ?token=")
        })
}

fn query(q: Option<&str>) -> ApiResult<WsQuery> {
    web::Query::<WsQuery>::from_query(q.unwrap_or(""))
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("query string: {e}")))
}

/// GET /ws without upgrade headers: authenticate, then explain.
#[utoipa::path(
    get, path = "/ws", tag = "websocket", security(("client" = []), ("token_query" = [])),
    params(WsQuery),
    responses(
        (status = 101, description = "switched to the WebSocket protocol: with a token, the JSON protocol (README \"WebSocket protocol\"); without one, the GoBelieve binary protocol, authenticated by its first frame (README \"GoBelieve binary protocol\")"),
    ),
)]
pub async fn connect(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let q = query(Some(req.query_string()))?;
    authenticate_token(&state, &token(req.headers(), &q)?).await?;
    Err(ApiError::bad_request(
        "not_websocket",
        "WebSocket upgrade required (Connection: Upgrade, Upgrade: websocket)",
    ))
}

/// The upgrade hook: every HTTP/1.1 request that asks to switch protocols. The request is
/// checked here; the socket then moves to a connection thread (`Dispatcher::adopt`), which
/// authenticates, registers and answers it, so the connection never runs on an HTTP worker.
pub async fn upgrade(
    state: web::Data<AppState>,
    req: Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), actix_web::Error> {
    let started = Instant::now();
    let parts = framed.into_parts();
    let (io, read) = (parts.io, parts.read_buf);
    let checked = check(&state, &req);
    let route = match req.path() {
        "/ws" => "/ws",
        _ => "unmatched",
    };
    let line = (req.method().clone(), req.path().to_string(), route);
    let adopted = state.clone();
    state.dispatcher.adopt(io, move |io| {
        actix_web::rt::spawn(answer(adopted, checked, io, read, line, started));
    });
    Ok(())
}

/// On the connection thread: registers a checked upgrade and answers 101 (then runs the
/// connection), or answers the refusal; counts and logs the request.
async fn answer(
    state: web::Data<AppState>,
    checked: ApiResult<Handshake>,
    mut io: TcpStream,
    read: bytes::BytesMut,
    (method, path, route): (actix_web::http::Method, String, &'static str),
    started: Instant,
) {
    // Boxed: inline, the registration steps made this future (which is allocated per
    // upgrade) 4.1 KB instead of 2.6 KB, and glibc's arenas kept ~1.3 KB a connection more
    // free memory between the long-lived allocations (malloc_stats): idle RSS rose from 4.7 to
    // 6.2 KB a connection (`scripts/bench idle`, README "Performance").
    let accepted = match checked {
        Ok(handshake) => Box::pin(accept(&state, handshake)).await,
        Err(e) => Err(e),
    };
    let status = match accepted {
        Ok((accepted, key)) => {
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {key}\r\n\r\n"
            );
            match (io.write_all(head.as_bytes()).await, accepted) {
                (Ok(()), Upgraded::Json(a)) => a.run(io, read),
                (Ok(()), Upgraded::Binary(c)) => c.run(io, read),
                (Err(_), Upgraded::Json(a)) => a.abandon().await,
                (Err(_), Upgraded::Binary(_)) => {}
            }
            101
        }
        Err(e) => refuse(&mut io, &e).await,
    };
    // The router's request line and metrics, for the requests that bypass it.
    metrics::counter!("imd_http_requests_total", "route" => route, "status" => status.to_string())
        .increment(1);
    let micros = started.elapsed().as_micros() as u64;
    tracing::info!(%method, path, status, micros, "request");
}

/// Answers a refused upgrade with its error and closes; the status.
async fn refuse(io: &mut TcpStream, e: &ApiError) -> u16 {
    let body = e.envelope();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        e.status.as_u16(),
        e.status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(secs) = e.retry_after {
        head.push_str(&format!("retry-after: {secs}\r\n"));
    }
    head.push_str("\r\n");
    let _ = io.write_all(head.as_bytes()).await;
    let _ = io.write_all(&body).await;
    let _ = io.shutdown().await;
    e.status.as_u16()
}

/// An upgraded connection's protocol.
enum Upgraded {
    /// Our JSON protocol: authenticated by the upgrade request's token.
    Json(Accepted),
    /// No token on the upgrade (the GoBelieve JS SDK sends none): the binary protocol, whose
    /// first frame is AUTH_TOKEN. A text frame on it closes the connection.
    Binary(BinaryConnection),
}

/// What a valid upgrade request says, taken from it on the HTTP worker.
struct Handshake {
    /// The `Sec-WebSocket-Accept` value.
    key: String,
    query: WsQuery,
    /// None: the binary protocol.
    token: Option<String>,
}

fn shutting_down(state: &AppState) -> bool {
    state.shutting_down.load(Ordering::SeqCst)
}

fn refusal() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "this instance is shutting down; connect to another",
    )
}

/// The checks an upgrade request needs no store for: path, method, query, handshake.
fn check(state: &AppState, req: &Request) -> ApiResult<Handshake> {
    if req.path() != "/ws" {
        return Err(ApiError::not_found(
            "not_found",
            format!("no WebSocket endpoint at {}", req.path()),
        ));
    }
    if req.method() != actix_web::http::Method::GET {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET /ws",
        ));
    }
    if shutting_down(state) {
        return Err(refusal());
    }
    let query = query(req.uri().query())?;
    let key = handshake_key(req)?;
    let token = token(req.headers(), &query).ok();
    Ok(Handshake { key, query, token })
}

/// Authenticates a checked upgrade and registers the connection (on this thread); the
/// `Sec-WebSocket-Accept` value.
async fn accept(state: &web::Data<AppState>, hs: Handshake) -> ApiResult<(Upgraded, String)> {
    let Some(token) = hs.token else {
        let conn = state
            .dispatcher
            .accept_binary(Transport::WebSocket, resolver(state.clone()))
            .map_err(dispatch_error)?;
        return Ok((Upgraded::Binary(conn), hs.key));
    };
    let auth = authenticate_token(state, &token).await?;
    let q = hs.query;
    let device_id = q.device_id.unwrap_or_default();
    if device_id.len() > 128 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`device_id` is longer than 128 bytes",
        ));
    }
    let info = ConnectionInfo::new(
        auth.user,
        auth.app,
        Platform(q.platform_id.unwrap_or(0)),
        device_id,
        state.settings.customers.is_customer(auth.user.uid),
    );
    let accepted = state
        .dispatcher
        .accept(info)
        .await
        .map_err(dispatch_error)?;
    // Registered after the shutdown began: the 1001 sweep may have missed it.
    if shutting_down(state) {
        accepted.abandon().await;
        return Err(refusal());
    }
    Ok((Upgraded::Json(accepted), hs.key))
}

/// The `Sec-WebSocket-Accept` value of a valid handshake.
fn handshake_key(req: &Request) -> ApiResult<String> {
    actix_http::ws::verify_handshake(req.head()).map_err(|e| {
        ApiError::bad_request("not_websocket", format!("bad WebSocket handshake: {e}"))
    })?;
    let key = req
        .headers()
        .get(actix_web::http::header::SEC_WEBSOCKET_KEY)
        .map(|k| actix_http::ws::hash_key(k.as_bytes()))
        .ok_or_else(|| ApiError::bad_request("not_websocket", "Sec-WebSocket-Key is missing"))?;
    Ok(String::from_utf8_lossy(&key).into_owned())
}
