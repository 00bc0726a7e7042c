//! The upload endpoints: read the body (raw or the multipart part `file`) under
//! `media.max_upload`, store it, answer where it is.

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use super::error;
use crate::api::auth::ClientAuth;
use crate::api::openapi::answers::UploadAnswer;
use crate::api::openapi::schemas::{Binary, FileForm};
use crate::error::{ApiError, ApiResult};
use crate::media::names::ImageType;
use crate::state::AppState;

/// Where an upload is: `src` (a path on this service) and `src_url` (absolute).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// e.g. `/images/0cc175b9c0f1b6a831c399e269772661.png`
    pub src: String,
    /// `src` under `media.public_url` (or the upload request's scheme and host).
    pub src_url: String,
}

/// The envelope with `data` = `{src, src_url}`, and the same two keys at the top level, where
/// the original's clients read them.
fn uploaded(req: &HttpRequest, state: &AppState, folder: &str, name: &str) -> HttpResponse {
    let src = format!("/{folder}/{name}");
    let base = match state.media.public_url.as_str() {
        "" => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
        url => url.to_string(),
    };
    let data = Uploaded {
        src_url: format!("{base}{src}"),
        src,
    };
    let body = serde_json::json!({
        "meta": {"code": 0, "message": "ok"},
        "src": data.src, "src_url": data.src_url, "data": data,
    });
    HttpResponse::Ok().json(body)
}

/// The answer to an upload that `saved` (or the error it met).
fn answer(
    req: &HttpRequest,
    state: &AppState,
    folder: &str,
    saved: Result<String, crate::media::MediaError>,
) -> ApiResult<HttpResponse> {
    Ok(uploaded(req, state, folder, &saved.map_err(error)?))
}

/// The part `file` of a multipart upload, after the user's rate is checked.
async fn form(
    req: &HttpRequest,
    auth: &ClientAuth,
    state: &AppState,
    body: web::Payload,
) -> ApiResult<Part> {
    take_upload(state, auth)?;
    file_part(req, state, body).await
}

/// One upload from the user's per-minute budget (429 with `Retry-After` when spent).
fn take_upload(state: &AppState, auth: &ClientAuth) -> ApiResult<()> {
    state
        .media
        .uploads
        .check(&auth.user)
        .map_err(ApiError::rate_limited)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::too_large(
        "upload_too_large",
        format!("the upload exceeds media.max_upload ({limit} bytes)"),
    )
}

/// Reads a stream of chunks whole, refusing (413) past `limit` bytes in all.
async fn read_limited<E: std::fmt::Display>(
    mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    limit: usize,
    used: &mut usize,
) -> ApiResult<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("invalid_body", format!("could not read the upload: {e}"))
        })?;
        *used += chunk.len();
        if *used > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A raw upload body, after the declared length is checked against the limit.
async fn raw_body(req: &HttpRequest, state: &AppState, body: web::Payload) -> ApiResult<Bytes> {
    let limit = state.media.max_upload;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    read_limited(body, limit, &mut 0).await
}

fn content_type(req: &HttpRequest) -> &str {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn image_type(declared: &str, what: &str) -> ApiResult<ImageType> {
    ImageType::from_content_type(declared).ok_or_else(|| {
        ApiError::bad_request(
            "unsupported_type",
            format!("{what} must be image/png or image/jpeg, got {declared:?}"),
        )
    })
}

/// POST /images (C): the body is the image, typed by `Content-Type`.
#[utoipa::path(
    post, path = "/images", tag = "media", security(("client" = [])),
    request_body(content((Binary = "image/png"), (Binary = "image/jpeg"))),
    responses((status = 200, description = "stored", body = UploadAnswer)),
)]
pub async fn image_raw(
    req: HttpRequest,
    auth: ClientAuth,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    take_upload(&state, &auth)?;
    let ty = image_type(content_type(&req), "Content-Type")?;
    let bytes = raw_body(&req, &state, body).await?;
    answer(
        &req,
        &state,
        "images",
        state.media.save_image(bytes, ty).await,
    )
}

/// POST /audios (C): the body is the audio (AMR from the original's clients).
#[utoipa::path(
    post, path = "/audios", tag = "media", security(("client" = [])),
    request_body(content = Binary, content_type = "audio/amr"),
    responses((status = 200, description = "stored", body = UploadAnswer)),
)]
pub async fn audio_raw(
    req: HttpRequest,
    auth: ClientAuth,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    take_upload(&state, &auth)?;
    let bytes = raw_body(&req, &state, body).await?;
    let saved = state.media.save_audio(bytes, content_type(&req)).await;
    answer(&req, &state, "audios", saved)
}

/// The multipart part named `file`: its bytes, content type and file name.
struct Part {
    bytes: Bytes,
    content_type: String,
    filename: String,
}

/// Reads a `multipart/form-data` body for its part `file` (other parts are read and dropped;
/// the whole body counts against the limit).
async fn file_part(req: &HttpRequest, state: &AppState, body: web::Payload) -> ApiResult<Part> {
    let limit = state.media.max_upload;
    let bad = |e: actix_multipart::MultipartError| {
        ApiError::bad_request("invalid_multipart", format!("multipart body: {e}"))
    };
    let mut form = Multipart::new(req.headers(), body);
    let (mut used, mut found) = (0, None);
    while let Some(field) = form.next().await {
        let field = field.map_err(bad)?;
        let is_file = field.name() == Some("file") && found.is_none();
        let content_type = field.content_type().map(|m| m.to_string());
        let filename = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .unwrap_or("")
            .to_string();
        let bytes = read_limited(field, limit, &mut used).await?;
        if is_file {
            found = Some(Part {
                bytes,
                content_type: content_type.unwrap_or_default(),
                filename,
            });
        }
    }
    found.ok_or_else(|| {
        ApiError::bad_request(
            "missing_field",
            "the multipart body has no part named `file`",
        )
    })
}

/// POST /v2/images (C): multipart, the part `file` typed by its own `Content-Type`.
#[utoipa::path(
    post, path = "/v2/images", tag = "media", security(("client" = [])),
    request_body(content = FileForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "stored", body = UploadAnswer)),
)]
pub async fn image_form(
    req: HttpRequest,
    auth: ClientAuth,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let part = form(&req, &auth, &state, body).await?;
    let ty = image_type(&part.content_type, "the `file` part's Content-Type")?;
    let saved = state.media.save_image(part.bytes, ty).await;
    answer(&req, &state, "images", saved)
}

/// POST /v2/audios (C): multipart, the part `file`.
#[utoipa::path(
    post, path = "/v2/audios", tag = "media", security(("client" = [])),
    request_body(content = FileForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "stored", body = UploadAnswer)),
)]
pub async fn audio_form(
    req: HttpRequest,
    auth: ClientAuth,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let part = form(&req, &auth, &state, body).await?;
    let saved = state.media.save_audio(part.bytes, &part.content_type).await;
    answer(&req, &state, "audios", saved)
}

/// POST /files and /v2/files (C): multipart, the part `file`; its file name's extension is
/// kept.
#[utoipa::path(
    post, path = "/files", tag = "media", security(("client" = [])),
    request_body(content = FileForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "stored", body = UploadAnswer)),
)]
pub async fn file_form(
    req: HttpRequest,
    auth: ClientAuth,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let part = form(&req, &auth, &state, body).await?;
    let saved = state.media.save_file(part.bytes, &part.filename).await;
    answer(&req, &state, "files", saved)
}
