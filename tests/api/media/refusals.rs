//! What uploads and downloads refuse: names that could leave the storage, bodies that are not
//! their declared type, uploads over the size limit or the per-user rate.

use image::ImageFormat;

use super::*;

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { files_under(&p) } else { vec![p] }
        })
        .collect()
}

#[actix_web::test]
async fn names_that_could_leave_the_storage_directory_are_refused() {
    let app = spawn_app(Backend::Memory).await;
    let media = app.state.settings.media.dir.clone();
    // A file beside the media directory that a traversal would reach.
    std::fs::create_dir_all(media.join("files")).unwrap();
    let secret = media.join("secret.txt");
    std::fs::write(&secret, b"top secret").unwrap();
    let digest = "0".repeat(32);
    let attempts = [
        "/files/..%2Fsecret.txt".to_string(),
        "/files/%2e%2e%2fsecret.txt".to_string(),
        "/files/..%5Csecret.txt".to_string(),
        "/files/secret.txt".to_string(),
        format!("/files/{digest}%2F..%2F..%2Fsecret.txt"),
        format!("/images/..%2F{digest}.png"),
        format!("/images/{digest}.png@..%2F..%2Fsecret.txt"),
        "/audios/..%2Fsecret.txt.mp3".to_string(),
        "/audios/%2e%2e".to_string(),
        "/files/%00".to_string(),
    ];
    for path in &attempts {
        let res = download(&app, path, &[]).await;
        assert!(
            res.status == 400 || res.status == 404,
            "{path}: {} {:?}",
            res.status,
            res.body
        );
        assert!(
            !res.body.windows(10).any(|w| w == b"top secret"),
            "{path} leaked the file"
        );
    }
    let named = download(&app, "/files/secret.txt", &[]).await;
    named.assert_error(400, "invalid_name");
    assert!(
        named.json()["meta"]["message"]
            .as_str()
            .unwrap()
            .contains("<md5>")
    );
}

#[actix_web::test]
async fn a_body_that_is_not_its_declared_type_is_400_and_stores_nothing() {
    let app = spawn_app(Backend::Memory).await;
    let token = app.grant(1).await;
    let png = picture(10, 10, ImageFormat::Png);
    let cases: Vec<(Raw, u16, &str)> = vec![
        (
            upload_raw(&app, &token, "/images", "image/jpeg", &png).await,
            400,
            "wrong_type",
        ),
        (
            upload_raw(&app, &token, "/images", "image/png", b"hello").await,
            400,
            "wrong_type",
        ),
        (
            upload_raw(&app, &token, "/images", "image/gif", b"GIF89a").await,
            400,
            "unsupported_type",
        ),
        (
            upload_raw(&app, &token, "/images", "", &png).await,
            400,
            "unsupported_type",
        ),
        (
            upload_raw(&app, &token, "/images", "image/png", b"").await,
            400,
            "empty_upload",
        ),
        (
            upload_raw(&app, &token, "/images", "image/png", &png[..png.len() / 3]).await,
            400,
            "wrong_type",
        ),
        (
            upload_raw(&app, &token, "/audios", "audio/amr", b"RIFF....WAVE").await,
            400,
            "wrong_type",
        ),
        (
            upload_raw(&app, &token, "/audios", "audio/amr", b"").await,
            400,
            "empty_upload",
        ),
        (
            upload_form(&app, &token, "/v2/images", "a.png", "image/jpeg", &png).await,
            400,
            "wrong_type",
        ),
        (
            upload_form(&app, &token, "/v2/images", "a.png", "text/plain", &png).await,
            400,
            "unsupported_type",
        ),
        (
            upload_raw(&app, &token, "/v2/images", "image/png", &png).await,
            400,
            "invalid_multipart",
        ),
        (
            upload_raw(&app, &token, "/files", "multipart/form-data", b"x").await,
            400,
            "invalid_multipart",
        ),
    ];
    for (i, (res, status, error)) in cases.iter().enumerate() {
        assert_eq!(res.status, *status, "case {i}: {:?}", res.json());
        res.assert_error(*status, error);
    }
    let (ct, body) = multipart(&[("other", None, None, b"value")]);
    let res = send(
        &app,
        "POST",
        "/files",
        &[bearer(&token), ("Content-Type", ct)],
        body,
    )
    .await;
    res.assert_error(400, "missing_field");
    assert!(
        res.json()["meta"]["message"]
            .as_str()
            .unwrap()
            .contains("`file`")
    );
    assert_eq!(
        files_under(&app.state.settings.media.dir),
        Vec::<std::path::PathBuf>::new()
    );
}

#[actix_web::test]
async fn uploads_over_media_max_upload_are_413_and_store_nothing() {
    let app = media_app(|s| s.media.max_upload = 2_000).await;
    let token = app.grant(1).await;
    let big = vec![7u8; 2_001];
    let res = upload_form(
        &app,
        &token,
        "/files",
        "big.bin",
        "application/octet-stream",
        &big,
    );
    res.await.assert_error(413, "upload_too_large");
    let res = upload_raw(&app, &token, "/audios", "audio/amr", &big).await;
    res.assert_error(413, "upload_too_large");
    // Other parts count too: the whole body is bounded.
    let (ct, body) = multipart(&[("pad", None, None, &big), ("file", Some("a"), None, b"x")]);
    let headers = [bearer(&token), ("Content-Type", ct)];
    let res = send(&app, "POST", "/v2/files", &headers, body).await;
    res.assert_error(413, "upload_too_large");
    assert!(files_under(&app.state.settings.media.dir).is_empty());
    let fits = upload_raw(&app, &token, "/audios", "", &big[..1_500]).await;
    src_of(&app, &fits);
    // JSON endpoints keep limits.request_body, not media.max_upload.
    assert_eq!(app.state.settings.limits.request_body, 1 << 20);
}

#[actix_web::test]
async fn uploads_past_the_per_user_rate_are_429_with_retry_after() {
    let app = media_app(|s| s.media.uploads_per_minute = 3).await;
    let (a, b) = (app.grant(1).await, app.grant(2).await);
    for i in 0..3u8 {
        let res = upload_raw(&app, &a, "/audios", "", &[i + 1]).await;
        src_of(&app, &res);
    }
    let refused = upload_raw(&app, &a, "/audios", "", b"four").await;
    refused.assert_error(429, "rate_limited");
    assert!(refused.header("retry-after").parse::<u64>().unwrap() >= 1);
    let other = upload_raw(&app, &b, "/audios", "", b"four").await;
    src_of(&app, &other);
}
