//! `ApiError`: every failure a request can meet, rendered as the SPEC §3 envelope
//! `{"meta":{"code","error","message"}}`. Internal causes are logged, never sent to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::store::StoreError;

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable snake_case identifier clients can match on.
    pub code: &'static str,
    /// Human-readable: which field and why.
    pub message: String,
    /// Seconds for `Retry-After` (429/503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 `invalid_field` for one named field.
    pub fn invalid_field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::bad_request("invalid_field", format!("field `{field}` {why}"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry after the number of seconds in Retry-After",
            )
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                message,
            )
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// `meta` of an error: the HTTP status, a stable snake_case code, and which field and why.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorMeta<'a> {
    code: u16,
    error: &'a str,
    message: &'a str,
}

/// The error envelope (SPEC §3).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    meta: ErrorMeta<'a>,
}

impl ApiError {
    /// The JSON body of this error.
    pub fn envelope(&self) -> Vec<u8> {
        let body = ErrorBody {
            meta: ErrorMeta {
                code: self.status.as_u16(),
                error: self.code,
                message: &self.message,
            },
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let Some(secs) = self.retry_after {
            res.insert_header((RETRY_AFTER, secs.to_string()));
        }
        res.body(self.envelope())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                metrics::counter!("imd_store_errors_total").increment(1);
                ApiError::unavailable("the message store is unavailable; retry shortly")
            }
            StoreError::Corrupt(cause) => {
                tracing::error!(%cause, "store returned data we cannot read");
                metrics::counter!("imd_store_errors_total").increment(1);
                ApiError::internal("stored data could not be read")
            }
        }
    }
}

/// The success envelope `{"meta":{"code":0,"message":"ok"},"data":…}`.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    #[derive(Serialize)]
    struct Meta {
        code: u16,
        message: &'static str,
    }
    #[derive(Serialize)]
    struct Body<T> {
        meta: Meta,
        data: T,
    }
    match serde_json::to_vec(&Body {
        meta: Meta {
            code: 0,
            message: "ok",
        },
        data,
    }) {
        Ok(bytes) => HttpResponse::Ok()
            .content_type("application/json")
            .body(bytes),
        Err(e) => ApiError::internal(format!("response encoding failed: {e}")).error_response(),
    }
}

/// Success with `"data": null`.
pub fn ok_empty() -> HttpResponse {
    ok(())
}
