//! Media (SPEC §11, reference §4.4): uploads, downloads, thumbnails, AMR → MP3, limits, and
//! the HTTP caching and range rules of the downloads.

use std::io::Cursor;
use std::process::Command;

use awc::http::header::HeaderMap;
use bytes::Bytes;
use image::{DynamicImage, ImageFormat, Rgba};
use serde_json::Value;

use crate::helpers::*;

mod derived;
mod downloads;
mod refusals;
mod uploads;

/// A response with its raw body.
pub struct Raw {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) {
        let v = self.json();
        assert_eq!(self.status, status, "{v}");
        assert_eq!(v["meta"]["error"], error, "{v}");
        assert!(!v["meta"]["message"].as_str().unwrap_or("").is_empty());
    }
}

/// Any request with these headers and body.
pub async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Raw {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.insert_header((*k, v.as_str()));
    }
    let mut res = req.send_body(body).await.unwrap();
    let body = res.body().limit(64 << 20).await.unwrap();
    Raw {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    }
}

pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// One part of a multipart body: field name, file name, content type, bytes.
pub type FormPart<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body and its Content-Type.
pub fn multipart(parts: &[FormPart]) -> (String, Vec<u8>) {
    let boundary = "imd-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, ct, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = filename {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = ct {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A `w`×`h` image with a gradient (so different sizes give different bytes).
pub fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        Rgba([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8, 255])
    });
    let img = match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img).into_rgb8()),
        _ => DynamicImage::ImageRgba8(img),
    };
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

pub fn md5(bytes: &[u8]) -> String {
    im_dispatcher::apps::md5_hex(bytes)
}

/// Uploads raw bytes with a content type; the answer.
pub async fn upload_raw(app: &TestApp, token: &str, path: &str, ct: &str, bytes: &[u8]) -> Raw {
    let headers = [bearer(token), ("Content-Type", ct.to_string())];
    send(app, "POST", path, &headers, bytes.to_vec()).await
}

/// Uploads one multipart part `file`; the answer.
pub async fn upload_form(
    app: &TestApp,
    token: &str,
    path: &str,
    filename: &str,
    ct: &str,
    bytes: &[u8],
) -> Raw {
    let (form_ct, body) = multipart(&[("file", Some(filename), Some(ct), bytes)]);
    send(
        app,
        "POST",
        path,
        &[bearer(token), ("Content-Type", form_ct)],
        body,
    )
    .await
}

/// `src` of a successful upload, checked against `data.src`, `src_url` and the top-level
/// copies the original's clients read.
#[track_caller]
pub fn src_of(app: &TestApp, res: &Raw) -> String {
    let v = res.json();
    assert_eq!(res.status, 200, "{v}");
    assert_eq!(v["meta"]["code"], 0, "{v}");
    let src = v["data"]["src"].as_str().unwrap().to_string();
    assert_eq!(v["src"], src, "top-level src for the original's clients");
    assert_eq!(v["data"]["src_url"], format!("{}{src}", app.base), "{v}");
    assert_eq!(v["src_url"], v["data"]["src_url"]);
    src
}

/// GET without credentials (downloads need none).
pub async fn download(app: &TestApp, path: &str, headers: &[(&str, String)]) -> Raw {
    send(app, "GET", path, headers, Vec::new()).await
}

/// Fails loudly when ffmpeg is missing (scripts/test installs it).
pub fn require_ffmpeg() {
    let found = Command::new("ffmpeg").arg("-version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "these tests need ffmpeg on PATH: scripts/test installs Debian's ffmpeg when it is \
         missing (apt-get install -y ffmpeg)"
    );
}

/// A media test server with small limits where a test needs them.
pub async fn media_app(edit: impl FnOnce(&mut im_dispatcher::config::Settings)) -> TestApp {
    let (mut s, url) = test_settings(Backend::Memory);
    edit(&mut s);
    spawn_with(s, url).await
}

pub fn stored(app: &TestApp, folder: &str, name: &str) -> std::path::PathBuf {
    app.state.settings.media.dir.join(folder).join(name)
}
