//! The download endpoints (no auth, as the original): the object streamed from the storage
//! with its content type, a strong `ETag` (the object's name: names are content addresses, so
//! a name's bytes never change), `Cache-Control: immutable`, `If-None-Match` (304) and single
//! byte ranges (`Range`, `If-Range`: 206, or 416 past the end).

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    self, ByteRangeSpec, CacheControl, CacheDirective, ContentRange, ContentRangeSpec, EntityTag,
    Header, HeaderValue, IfNoneMatch, IfRange, Range,
};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use super::error;
use crate::api::body::path_id;
use crate::api::openapi::Conditional;
use crate::api::openapi::schemas::Binary;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::media::Object;
use crate::state::AppState;

fn name(req: &HttpRequest) -> ApiResult<String> {
    path_id(req, "name", |s| Ok(s.to_string()))
}

/// GET /images/{name}: an image, or a thumbnail `{name}@128w_128h_{0|1}c` / `@256w_256h…`.
#[utoipa::path(
    get, path = "/images/{name}", tag = "media", security(()),
    params(("name" = String, Path), Conditional),
    responses(
        (status = 200, description = "the object", content((Binary = "image/png"), (Binary = "image/jpeg"))),
        (status = 206, description = "the requested range (Content-Range)", body = Binary),
        (status = 304, description = "If-None-Match matched the ETag"),
        (status = 416, description = "the range starts past the end", body = ErrorBody),
    ),
)]
pub async fn image(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let object = state.media.image(&name(&req)?).await.map_err(error)?;
    serve(&req, &state, object).await
}

/// GET /audios/{name}: an audio as uploaded.
#[utoipa::path(
    get, path = "/audios/{name}", tag = "media", security(()),
    params(("name" = String, Path), Conditional),
    responses(
        (status = 200, description = "the object", content((Binary = "audio/amr"), (Binary = "audio/amr-wb"), (Binary = "audio/mpeg"), (Binary = "application/octet-stream"))),
        (status = 206, description = "the requested range (Content-Range)", body = Binary),
        (status = 304, description = "If-None-Match matched the ETag"),
        (status = 416, description = "the range starts past the end", body = ErrorBody),
    ),
)]
pub async fn audio(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let object = state
        .media
        .audio(&name(&req)?, false)
        .await
        .map_err(error)?;
    serve(&req, &state, object).await
}

/// GET /audios/{name}.mp3: the audio converted to MP3 (on the first request, then kept).
#[utoipa::path(
    get, path = "/audios/{name}.mp3", tag = "media", security(()),
    params(("name" = String, Path), Conditional),
    responses(
        (status = 200, description = "the object", content((Binary = "audio/mpeg"))),
        (status = 206, description = "the requested range (Content-Range)", body = Binary),
        (status = 304, description = "If-None-Match matched the ETag"),
        (status = 416, description = "the range starts past the end", body = ErrorBody),
    ),
)]
pub async fn mp3(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let object = state.media.audio(&name(&req)?, true).await.map_err(error)?;
    serve(&req, &state, object).await
}

/// GET /files/{name}: a file, typed by its extension.
#[utoipa::path(
    get, path = "/files/{name}", tag = "media", security(()),
    params(("name" = String, Path), Conditional),
    responses(
        (status = 200, description = "the object", content((Binary = "application/octet-stream"))),
        (status = 206, description = "the requested range (Content-Range)", body = Binary),
        (status = 304, description = "If-None-Match matched the ETag"),
        (status = 416, description = "the range starts past the end", body = ErrorBody),
    ),
)]
pub async fn file(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let object = state.media.file(&name(&req)?).await.map_err(error)?;
    serve(&req, &state, object).await
}

/// The part of the object to send: all of it, or one range (first byte, length).
enum Part {
    All,
    Range(u64, u64),
    Unsatisfiable,
}

/// A single `Range` that `If-Range` (if any) allows; several ranges or an unreadable header
/// get the whole object (a server may ignore `Range`).
fn part(req: &HttpRequest, etag: &EntityTag, len: u64) -> Part {
    let Ok(Range::Bytes(specs)) = Range::parse(req) else {
        return Part::All;
    };
    let allowed = match IfRange::parse(req) {
        Ok(IfRange::EntityTag(tag)) => tag.strong_eq(etag),
        Ok(IfRange::Date(_)) => false,
        Err(_) => req.headers().get(header::IF_RANGE).is_none(),
    };
    match specs.as_slice() {
        [spec] if allowed => match ByteRangeSpec::to_satisfiable_range(spec, len) {
            Some((first, last)) => Part::Range(first, last - first + 1),
            None => Part::Unsatisfiable,
        },
        _ => Part::All,
    }
}

fn not_modified(req: &HttpRequest, etag: &EntityTag) -> bool {
    match IfNoneMatch::parse(req) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(etag)),
        Err(_) => false,
    }
}

/// The headers every download carries: caching, ranges, and no sniffing or scripting of what a
/// user uploaded.
fn headers(res: &mut actix_web::HttpResponseBuilder, etag: &EntityTag) {
    res.insert_header(header::ETag(etag.clone()))
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(31_536_000),
            CacheDirective::Extension("immutable".into(), None),
        ]))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ));
}

async fn serve(req: &HttpRequest, state: &AppState, object: Object) -> ApiResult<HttpResponse> {
    let etag = EntityTag::new_strong(object.key.name().to_string());
    let len = object.len;
    if not_modified(req, &etag) {
        let mut res = HttpResponse::NotModified();
        headers(&mut res, &etag);
        return Ok(res.finish());
    }
    let (mut res, start, count) = match part(req, &etag, len) {
        Part::All => (HttpResponse::Ok(), 0, len),
        Part::Range(start, count) => {
            let mut res = HttpResponse::PartialContent();
            res.insert_header(ContentRange(ContentRangeSpec::Bytes {
                range: Some((start, start + count - 1)),
                instance_length: Some(len),
            }));
            (res, start, count)
        }
        Part::Unsatisfiable => return Ok(unsatisfiable(len)),
    };
    headers(&mut res, &etag);
    res.content_type(object.content_type.as_str());
    let body = state
        .media
        .read(&object, start, count)
        .await
        .map_err(error)?;
    Ok(res.body(SizedStream::new(count, body)))
}

/// 416 in the error envelope, with `Content-Range: bytes */len`.
fn unsatisfiable(len: u64) -> HttpResponse {
    let err = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        format!("the range starts past the end of the object ({len} bytes)"),
    );
    let mut res = err.error_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        res.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    res
}
