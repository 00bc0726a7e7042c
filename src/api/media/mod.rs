//! Media uploads (client auth) and downloads (no auth), as the original's client API
//! (reference §4.4): raw `POST /images` and `POST /audios`, multipart `POST /v2/images`,
//! `/v2/audios` and `/files` (+ `/v2/files`) with the part named `file`.
//!
//! An upload answers `{src, src_url}` in the envelope's `data` and, for the original's clients,
//! at the top level too. Upload bodies have their own limit (`media.max_upload`); every other
//! endpoint keeps `limits.request_body`. Uploads are rate-limited per user.

pub(crate) mod download;
pub(crate) mod upload;

use super::Entry;

pub use download::{audio, file, image, mp3};
pub use upload::{audio_raw, file_form, image_raw};

/// The media rows of the route table.
pub fn routes() -> Vec<Entry> {
    vec![
        Entry::new("/images", vec![on!(POST, image_raw)]),
        Entry::new("/v2/images", vec![on!(POST, upload::image_form)]),
        Entry::new("/audios", vec![on!(POST, audio_raw)]),
        Entry::new("/v2/audios", vec![on!(POST, upload::audio_form)]),
        Entry::new("/files", vec![on!(POST, file_form)]).alias(&["/v2/files"]),
        Entry::new("/images/{name}", vec![on!(GET, image)]),
        // Before `/audios/{name}`, which would take `{md5}.mp3` as a name.
        Entry::new("/audios/{name}.mp3", vec![on!(GET, mp3)]),
        Entry::new("/audios/{name}", vec![on!(GET, audio)]),
        Entry::new("/files/{name}", vec![on!(GET, file)]),
    ]
}

/// `MediaError` → the HTTP error.
fn error(e: crate::media::MediaError) -> crate::error::ApiError {
    use crate::error::ApiError;
    use crate::media::MediaError::*;
    use actix_web::http::StatusCode;
    match e {
        Invalid(code, why) => ApiError::bad_request(code, why),
        NotFound(why) => ApiError::not_found("not_found", why),
        Storage(cause) => {
            tracing::error!(%cause, "media storage failed");
            ApiError {
                code: "storage_unavailable",
                ..ApiError::unavailable("the media storage is unavailable; retry shortly")
            }
        }
        NoConverter(why) => ApiError::new(StatusCode::NOT_IMPLEMENTED, "no_converter", why),
        Unconvertible(why) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_convertible", why)
        }
    }
}
