//! Request-body and path helpers that turn every malformed input into a 4xx naming the field.
//!
//! actix-web's own `Json` extractor answers with its own error shape; `JsonBody` reads the body
//! under the configured limit (413 past it) and reports serde errors with the field path
//! (`serde_path_to_error`), so `{"uid":"abc"}` becomes `field `uid` must be a positive integer`.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{FromRequest, HttpRequest, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON object request body of type `T`, read under `limits.request_body`. (serde would
/// happily fill a struct from an array; a body that is not an object is refused first.)
pub struct JsonBody<T>(pub T);

/// A JSON request body of any shape (object, array, …), read under `limits.members_body`:
/// group creation and member lists, which may name a million members.
pub struct MembersDoc<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first.is_some_and(|b| *b != b'{')
                && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
            {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    "request body must be a JSON object",
                ));
            }
            parse_json(&bytes).map(JsonBody)
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for MembersDoc<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_limited(req, payload, |l| l.members_body);
        Box::pin(async move { parse_json(&body.await?).map(MembersDoc) })
    }
}

/// A request body as it is (the im server's HTTP API takes raw content), read under
/// `limits.request_body`.
pub struct RawBody(pub bytes::Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move { Ok(RawBody(body.await?.freeze())) })
    }
}

/// Reads the whole body under `limits.request_body` (see `read_limited`).
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<'static, Result<BytesMut, ApiError>> {
    read_limited(req, payload, |l| l.request_body)
}

/// Reads the whole body, refusing (413) anything over the limit `limit` picks and (408, the
/// connection closed) a body that has not all arrived within `limits.body_timeout_secs`: a
/// client trickling its body must not hold a request slot for long.
fn read_limited(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: fn(&crate::config::Limits) -> usize,
) -> LocalBoxFuture<'static, Result<BytesMut, ApiError>> {
    let limits = req.app_data::<web::Data<AppState>>().map(|s| {
        (
            limit(&s.settings.limits),
            s.settings.limits.body_timeout_secs,
        )
    });
    let (limit, timeout_secs) = limits.unwrap_or((1 << 20, 10));
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    Box::pin(async move {
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let read = async {
            let payload = &mut payload;
            let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request("invalid_body", format!("could not read the body: {e}"))
                })?;
                if buf.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(buf)
        };
        let outcome = tokio::time::timeout(Duration::from_secs(timeout_secs), read).await;
        let Ok(read) = outcome else {
            // actix-http closes the connection after the answer only while the unread body is
            // still held; a dropped chunked body would be drained first, for as long as the
            // client trickles it. So it is held a moment longer than the 408 takes.
            actix_web::rt::spawn(async move {
                actix_web::rt::time::sleep(Duration::from_secs(1)).await;
                drop(payload);
            });
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {timeout_secs} s"),
            ));
        };
        read
    })
}

fn too_large(limit: usize) -> ApiError {
    ApiError::too_large(
        "body_too_large",
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// Parses a JSON document into `T`, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "request body is empty; expected a JSON document",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(describe)?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("body is not valid JSON: {}", strip_pos(&e)),
        )
    })?;
    Ok(value)
}

fn describe(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::bad_request(
            "invalid_json",
            format!("body is not valid JSON: {}", strip_pos(inner)),
        );
    }
    let msg = strip_pos(inner);
    let msg = match msg.find("expected struct ") {
        Some(i) => format!("{}expected a JSON object", &msg[..i]),
        None => msg,
    };
    if path == "." {
        if msg.starts_with("missing field") {
            return ApiError::bad_request("missing_field", msg);
        }
        if msg.contains("expected a JSON object") {
            return ApiError::bad_request("invalid_body", "request body must be a JSON object");
        }
        return ApiError::bad_request("invalid_body", format!("request body: {msg}"));
    }
    if msg.starts_with("missing field") {
        return ApiError::bad_request("missing_field", format!("`{path}`: {msg}"));
    }
    ApiError::invalid_field(&path, msg)
}

/// serde_json appends " at line L column C"; the field path already says where.
fn strip_pos(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A positive id from the URL path, e.g. `path_id::<Uid>(&req, "uid")`.
pub fn path_id<T>(
    req: &HttpRequest,
    name: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, ApiError> {
    let raw = req.match_info().get(name).unwrap_or("");
    parse(raw).map_err(|why| {
        ApiError::bad_request("invalid_path", format!("path segment `{name}` {why}"))
    })
}

/// Longest name, nickname or avatar accepted, bytes.
pub const MAX_NAME: usize = 1024;

/// 400 `invalid_field` when `value` (if given) is longer than `MAX_NAME` bytes.
pub fn check_name<'a>(field: &str, value: impl Into<Option<&'a str>>) -> Result<(), ApiError> {
    match value.into() {
        Some(v) if v.len() > MAX_NAME => Err(ApiError::invalid_field(
            field,
            format!("is longer than {MAX_NAME} bytes"),
        )),
        _ => Ok(()),
    }
}
