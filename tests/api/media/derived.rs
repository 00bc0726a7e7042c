//! Thumbnails and MP3s: made on the first request, kept, served like the originals.

use std::process::{Command, Stdio};

use image::ImageFormat;

use super::uploads::amr_frames;
use super::*;

fn decoded_size(bytes: &[u8], format: ImageFormat) -> (u32, u32) {
    let img = image::load_from_memory_with_format(bytes, format)
        .unwrap_or_else(|e| panic!("the thumbnail must decode as {format:?}: {e}"));
    (img.width(), img.height())
}

#[actix_web::test]
async fn thumbnails_shrink_or_crop_to_the_originals_sizes_and_are_kept() {
    let app = spawn_app(Backend::Memory).await;
    let token = app.grant(1).await;
    for (format, ct) in [
        (ImageFormat::Png, "image/png"),
        (ImageFormat::Jpeg, "image/jpeg"),
    ] {
        let original = picture(300, 200, format);
        let src = src_of(
            &app,
            &upload_raw(&app, &token, "/images", ct, &original).await,
        );
        let name = src.trim_start_matches("/images/").to_string();
        let (digest, ext) = name.split_at(32);
        for (suffix, size) in [
            ("@128w_128h_0c", (128, 85)),
            ("@128w_128h_1c", (128, 128)),
            (&format!("@256w_256h{ext}") as &str, (256, 171)),
            ("@256w_256h_1c", (200, 200)),
        ] {
            let path = format!("{src}{suffix}");
            let first = download(&app, &path, &[]).await;
            assert_eq!(first.status, 200, "{path}: {:?}", first.json());
            assert_eq!(first.header("content-type"), ct, "{path}");
            assert_eq!(decoded_size(&first.body, format), size, "{path}");
            let again = download(&app, &path, &[]).await;
            assert_eq!(again.body, first.body, "{path}: the kept thumbnail");
            assert_eq!(again.header("etag"), first.header("etag"));
        }
        let kept = stored(&app, "images", &format!("{digest}_128w_128h_1c{ext}"));
        assert!(kept.is_file(), "thumbnail cached at {}", kept.display());
    }
    let missing = download(
        &app,
        &format!("/images/{}.png@128w_128h", "0".repeat(32)),
        &[],
    )
    .await;
    missing.assert_error(404, "not_found");
}

/// ffprobe's format name and duration of `bytes` (from a file: a pipe has no duration).
fn probe(bytes: &[u8]) -> (String, f64) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("imd-probe-{}-{n}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-hide_banner", "-loglevel", "error", "-show_entries"])
        .args(["format=format_name,duration", "-of", "default=nw=1"])
        .arg(&path)
        .stdout(Stdio::piped())
        .output()
        .expect("ffprobe (part of Debian's ffmpeg package)");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_default()
            .to_string()
    };
    (
        field("format_name="),
        field("duration=").parse().unwrap_or(0.0),
    )
}

#[actix_web::test]
async fn an_amr_voice_note_is_converted_to_mp3_by_ffmpeg_once() {
    require_ffmpeg();
    let app = spawn_app(Backend::Memory).await;
    let token = app.grant(1).await;
    let amr = amr_frames(50, 7); // one second
    let (format, seconds) = probe(&amr);
    assert_eq!(format, "amr", "the test's input is AMR to ffmpeg");
    assert!((0.9..1.2).contains(&seconds), "{seconds}");
    let src = src_of(
        &app,
        &upload_raw(&app, &token, "/audios", "audio/amr", &amr).await,
    );
    let mp3 = download(&app, &format!("{src}.mp3"), &[]).await;
    assert_eq!(mp3.status, 200, "{:?}", mp3.json());
    assert_eq!(mp3.header("content-type"), "audio/mpeg");
    let (format, seconds) = probe(&mp3.body);
    assert_eq!(format, "mp3");
    assert!(
        (0.9..1.5).contains(&seconds),
        "MP3 of about a second: {seconds}"
    );
    let digest = src.trim_start_matches("/audios/");
    assert!(stored(&app, "audios", &format!("{digest}.mp3")).is_file());
    let again = download(&app, &format!("{src}.mp3"), &[]).await;
    assert_eq!(again.body, mp3.body, "the kept MP3");
    let raw = download(&app, &src, &[]).await;
    assert_eq!(raw.body, amr, "the original stays as uploaded");
}

#[actix_web::test]
async fn an_audio_ffmpeg_cannot_read_is_422_and_nothing_is_kept() {
    require_ffmpeg();
    let app = spawn_app(Backend::Memory).await;
    let token = app.grant(1).await;
    let junk = b"this is not audio at all".repeat(10);
    let src = src_of(&app, &upload_raw(&app, &token, "/audios", "", &junk).await);
    download(&app, &format!("{src}.mp3"), &[])
        .await
        .assert_error(422, "not_convertible");
    let digest = src.trim_start_matches("/audios/");
    assert!(!stored(&app, "audios", &format!("{digest}.mp3")).exists());
}

#[actix_web::test]
async fn without_ffmpeg_mp3_requests_are_501_naming_what_is_missing() {
    let app = media_app(|s| s.media.ffmpeg = "/nonexistent/ffmpeg".into()).await;
    let token = app.grant(1).await;
    let amr = amr_frames(5, 1);
    let src = src_of(
        &app,
        &upload_raw(&app, &token, "/audios", "audio/amr", &amr).await,
    );
    let res = download(&app, &format!("{src}.mp3"), &[]).await;
    res.assert_error(501, "no_converter");
    let message = res.json()["meta"]["message"].to_string();
    assert!(
        message.contains("ffmpeg") && message.contains("/nonexistent/ffmpeg"),
        "{message}"
    );
    assert_eq!(
        download(&app, &src, &[]).await.body,
        amr,
        "raw audio still served"
    );
    download(&app, &format!("/audios/{}.mp3", "1".repeat(32)), &[])
        .await
        .assert_error(404, "not_found");
}
