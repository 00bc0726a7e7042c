//! Uploaded media (SPEC §11, reference §4.4): images, audios and files stored under
//! content-addressed names, thumbnails and MP3s derived from them on first request and kept.
//!
//! `Media` is the service the HTTP layer calls: it validates what is uploaded, names it, keeps
//! it in a `Storage`, and answers downloads with an `Object` to stream. Nothing here knows HTTP;
//! `MediaError` says what went wrong and `api::media` turns it into a status.

mod imaging;
mod mp3;
pub mod names;
pub mod storage;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::config::MediaSettings;
use crate::domain::UserKey;
use crate::ratelimit::RateLimiter;
use names::{ImageName, ImageType, ObjectKey};
use storage::{LocalDir, Storage, read_all};

pub use imaging::MAX_PIXELS;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Bad input: the code and which part is wrong and why.
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("{0}")]
    NotFound(String),
    /// The storage failed (logged; the client is told to retry).
    #[error("media storage failed: {0}")]
    Storage(#[from] io::Error),
    /// MP3 conversion without an ffmpeg.
    #[error("{0}")]
    NoConverter(String),
    /// A stored object that cannot be turned into what was asked (a thumbnail, an MP3).
    #[error("{0}")]
    Unconvertible(String),
}

/// A stored object to download: its key (and so its ETag), size and content type.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: ObjectKey,
    pub len: u64,
    pub content_type: String,
}

pub struct Media {
    /// Where the objects are.
    storage: Arc<dyn Storage>,
    /// Uploads per user (`media.uploads_per_minute`).
    pub uploads: RateLimiter<UserKey>,
    /// Largest upload, bytes (`media.max_upload`).
    pub max_upload: usize,
    /// Base of `src_url` (`media.public_url`; empty = from the request).
    pub public_url: String,
    /// The ffmpeg found at start-up; `None`: MP3 requests answer 501.
    ffmpeg: Option<PathBuf>,
    /// What `media.ffmpeg` said, for the 501's message.
    ffmpeg_setting: String,
    /// Thumbnails and conversions in progress at once: CPU work, one per core.
    transcodes: tokio::sync::Semaphore,
}

impl Media {
    pub fn new(settings: &MediaSettings, cores: usize) -> Media {
        let ffmpeg = mp3::find_ffmpeg(&settings.ffmpeg);
        Media {
            storage: Arc::new(LocalDir::new(&settings.dir)),
            uploads: RateLimiter::per_minute(settings.uploads_per_minute),
            max_upload: settings.max_upload,
            public_url: settings.public_url.trim_end_matches('/').to_string(),
            ffmpeg,
            ffmpeg_setting: settings.ffmpeg.clone(),
            transcodes: tokio::sync::Semaphore::new(cores.max(1)),
        }
    }

    /// The start-up log lines: where media goes, and whether MP3 conversion works.
    pub fn log_startup(&self) {
        tracing::info!(storage = %self.storage.describe(), "media storage");
        match &self.ffmpeg {
            Some(p) => tracing::info!(ffmpeg = %p.display(), "media: AMR -> MP3 through ffmpeg"),
            None => tracing::warn!(
                setting = %self.ffmpeg_setting,
                "media: ffmpeg not found; GET /audios/{{name}}.mp3 answers 501 (install ffmpeg, e.g. apt-get install ffmpeg, or set media.ffmpeg)"
            ),
        }
    }

    fn empty(bytes: &[u8]) -> Result<(), MediaError> {
        if bytes.is_empty() {
            return Err(MediaError::Invalid(
                "empty_upload",
                "the upload is empty".into(),
            ));
        }
        Ok(())
    }

    /// Stores an image declared as `ty`; returns its name `{md5}{ext}`.
    pub async fn save_image(&self, bytes: Bytes, ty: ImageType) -> Result<String, MediaError> {
        Self::empty(&bytes)?;
        let checked = bytes.clone();
        self.transcode(move || imaging::check(&checked, ty).map(|_| Vec::new()))
            .await
            .map_err(|e| match e {
                MediaError::Unconvertible(why) => MediaError::Invalid("wrong_type", why),
                other => other,
            })?;
        let key = ImageName::new(names::digest(&bytes), ty).original();
        self.storage.write(&key, bytes).await?;
        Ok(key.name().to_string())
    }

    /// Stores an audio; one declared `audio/amr` must be AMR. Returns its name `{md5}`.
    pub async fn save_audio(&self, bytes: Bytes, declared: &str) -> Result<String, MediaError> {
        Self::empty(&bytes)?;
        let declared = declared.split(';').next().unwrap_or("").trim();
        let amr = declared.eq_ignore_ascii_case("audio/amr")
            || declared.eq_ignore_ascii_case("audio/amr-wb");
        if amr && !bytes.starts_with(b"#!AMR") {
            return Err(MediaError::Invalid(
                "wrong_type",
                format!("the body is declared {declared} but does not start with #!AMR"),
            ));
        }
        let key = names::audio(&names::digest(&bytes), false)
            .map_err(|e| MediaError::Invalid("invalid_name", e))?;
        self.storage.write(&key, bytes).await?;
        Ok(key.name().to_string())
    }

    /// Stores a file, keeping the extension of `filename`; returns its name `{md5}{ext}`.
    pub async fn save_file(&self, bytes: Bytes, filename: &str) -> Result<String, MediaError> {
        Self::empty(&bytes)?;
        let name = format!("{}{}", names::digest(&bytes), names::file_ext(filename));
        let key = names::file(&name).map_err(|e| MediaError::Invalid("invalid_name", e))?;
        self.storage.write(&key, bytes).await?;
        Ok(name)
    }

    async fn found(&self, key: ObjectKey, content_type: String) -> Result<Object, MediaError> {
        match self.storage.stat(&key).await? {
            Some(len) => Ok(Object {
                key,
                len,
                content_type,
            }),
            None => Err(MediaError::NotFound(format!("no {} {key}", key.kind.dir()))),
        }
    }

    /// An image or one of its thumbnails (made on the first request, then kept).
    pub async fn image(&self, raw: &str) -> Result<Object, MediaError> {
        let name = ImageName::parse(raw).map_err(|e| MediaError::Invalid("invalid_name", e))?;
        let ct = name.ty.content_type().to_string();
        let Some(thumb) = name.thumb else {
            return self.found(name.original(), ct).await;
        };
        let key = name.key();
        if self.storage.stat(&key).await?.is_none() {
            let original = name.original();
            let bytes = read_all(&*self.storage, &original)
                .await?
                .ok_or_else(|| MediaError::NotFound(format!("no image {original}")))?;
            let ty = name.ty;
            let made = self
                .transcode(move || imaging::thumbnail(&bytes, ty, thumb))
                .await?;
            self.storage.write(&key, made.into()).await?;
        }
        self.found(key, ct).await
    }

    /// Runs CPU-heavy work off the async workers, at most one per core at once.
    async fn transcode(
        &self,
        work: impl FnOnce() -> Result<Vec<u8>, String> + Send + 'static,
    ) -> Result<Vec<u8>, MediaError> {
        let _permit = self
            .transcodes
            .acquire()
            .await
            .map_err(|e| MediaError::Storage(io::Error::other(e)))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| MediaError::Storage(io::Error::other(e)))?
            .map_err(MediaError::Unconvertible)
    }

    /// An audio as uploaded (`mp3` false) or converted to MP3 (made on the first request).
    pub async fn audio(&self, digest: &str, mp3: bool) -> Result<Object, MediaError> {
        let invalid = |e| MediaError::Invalid("invalid_name", e);
        let original = names::audio(digest, false).map_err(invalid)?;
        if !mp3 {
            let head = self.head(&original).await?;
            return self.found(original, sniff_audio(&head).into()).await;
        }
        let key = names::audio(digest, true).map_err(invalid)?;
        if self.storage.stat(&key).await?.is_none() {
            let bytes = read_all(&*self.storage, &original)
                .await?
                .ok_or_else(|| MediaError::NotFound(format!("no audio {original}")))?;
            let ffmpeg = self.ffmpeg.clone().ok_or_else(|| {
                MediaError::NoConverter(format!(
                    "MP3 conversion needs ffmpeg, which was not found at start-up \
                     (media.ffmpeg = {:?}); install it (Debian: apt-get install ffmpeg) or set \
                     media.ffmpeg to its path",
                    self.ffmpeg_setting
                ))
            })?;
            let _permit = self.transcodes.acquire().await.map_err(io::Error::other)?;
            let made = mp3::convert(&ffmpeg, bytes)
                .await
                .map_err(MediaError::Unconvertible)?;
            self.storage.write(&key, made.into()).await?;
        }
        self.found(key, "audio/mpeg".into()).await
    }

    /// The first bytes of an object (empty if it does not exist).
    async fn head(&self, key: &ObjectKey) -> Result<Vec<u8>, MediaError> {
        let Some(len) = self.storage.stat(key).await? else {
            return Ok(Vec::new());
        };
        let mut body = self.storage.read(key, 0, len.min(16)).await?;
        let mut out = Vec::new();
        while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// An uploaded file, typed by its extension.
    pub async fn file(&self, raw: &str) -> Result<Object, MediaError> {
        let key = names::file(raw).map_err(|e| MediaError::Invalid("invalid_name", e))?;
        let ct = mime_guess::from_path(key.name())
            .first_or_octet_stream()
            .to_string();
        self.found(key, ct).await
    }

    /// `len` bytes of `object` from `start`.
    pub async fn read(
        &self,
        object: &Object,
        start: u64,
        len: u64,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, MediaError> {
        Ok(self.storage.read(&object.key, start, len).await?)
    }
}

/// The content type of an uploaded audio, from its first bytes.
fn sniff_audio(head: &[u8]) -> &'static str {
    if head.starts_with(b"#!AMR-WB\n") {
        "audio/amr-wb"
    } else if head.starts_with(b"#!AMR") {
        "audio/amr"
    } else if head.starts_with(b"ID3") || head.starts_with(&[0xFF, 0xFB]) {
        "audio/mpeg"
    } else if head.starts_with(b"OggS") {
        "audio/ogg"
    } else if head.starts_with(b"RIFF") {
        "audio/wav"
    } else {
        "application/octet-stream"
    }
}
