//! Upload → download round trips for every upload endpoint.

use image::ImageFormat;

use super::*;

#[actix_web::test]
async fn every_upload_endpoint_round_trips_the_bytes_with_their_content_type() {
    let app = spawn_app(Backend::Memory).await;
    let token = app.grant(1).await;
    let png = picture(40, 30, ImageFormat::Png);
    let jpeg = picture(41, 30, ImageFormat::Jpeg);
    let amr = amr_frames(5, 3);
    let pdf = b"%PDF-1.4 not really a pdf".to_vec();
    let cases: Vec<(Raw, String, &[u8], &str)> = vec![
        (
            upload_raw(&app, &token, "/images", "image/png", &png).await,
            format!("/images/{}.png", md5(&png)),
            &png,
            "image/png",
        ),
        (
            upload_form(&app, &token, "/v2/images", "x.jpeg", "image/jpeg", &jpeg).await,
            format!("/images/{}.jpg", md5(&jpeg)),
            &jpeg,
            "image/jpeg",
        ),
        (
            upload_raw(&app, &token, "/audios", "audio/amr", &amr).await,
            format!("/audios/{}", md5(&amr)),
            &amr,
            "audio/amr",
        ),
        (
            upload_form(&app, &token, "/v2/audios", "a.amr", "audio/amr", &amr).await,
            format!("/audios/{}", md5(&amr)),
            &amr,
            "audio/amr",
        ),
        (
            upload_form(
                &app,
                &token,
                "/files",
                "Report.PDF",
                "application/pdf",
                &pdf,
            )
            .await,
            format!("/files/{}.pdf", md5(&pdf)),
            &pdf,
            "application/pdf",
        ),
        (
            upload_form(&app, &token, "/v2/files", "notes", "text/plain", b"plain").await,
            format!("/files/{}", md5(b"plain")),
            b"plain",
            "application/octet-stream",
        ),
    ];
    for (res, expected_src, bytes, content_type) in cases {
        let src = src_of(&app, &res);
        assert_eq!(src, expected_src, "content-addressed name");
        let got = download(&app, &src, &[]).await;
        assert_eq!(got.status, 200, "{src}");
        assert_eq!(&got.body[..], bytes, "{src}: the bytes uploaded");
        assert_eq!(got.header("content-type"), content_type, "{src}");
        let name = src.rsplit('/').next().unwrap();
        assert_eq!(got.header("etag"), format!("\"{name}\""));
        assert!(got.header("cache-control").contains("immutable"));
        assert_eq!(got.header("x-content-type-options"), "nosniff");
    }
}

#[actix_web::test]
async fn uploading_needs_a_client_token_and_the_same_bytes_get_the_same_name() {
    let app = spawn_app(Backend::Memory).await;
    let png = picture(8, 8, ImageFormat::Png);
    let anon = send(
        &app,
        "POST",
        "/images",
        &[("Content-Type", "image/png".into())],
        png.clone(),
    )
    .await;
    anon.assert_error(401, "unauthorized");
    let server = send(
        &app,
        "POST",
        "/images",
        &[
            ("Content-Type", "image/png".into()),
            ("Authorization", app.auth_a()),
        ],
        png.clone(),
    )
    .await;
    server.assert_error(401, "unauthorized");
    let (a, b) = (app.grant(1).await, app.grant(2).await);
    let first = src_of(
        &app,
        &upload_raw(&app, &a, "/images", "image/png", &png).await,
    );
    let again = src_of(
        &app,
        &upload_raw(&app, &b, "/images", "image/png", &png).await,
    );
    assert_eq!(first, again);
    let files: Vec<_> = std::fs::read_dir(app.state.settings.media.dir.join("images"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1, "stored once, no temporary file left behind");
}

#[actix_web::test]
async fn upload_urls_use_media_public_url_when_it_is_set() {
    let app = media_app(|s| s.media.public_url = "https://cdn.example.com/".into()).await;
    let token = app.grant(1).await;
    let png = picture(4, 4, ImageFormat::Png);
    let v = upload_raw(&app, &token, "/images", "image/png", &png)
        .await
        .json();
    assert_eq!(
        v["data"]["src_url"],
        format!("https://cdn.example.com/images/{}.png", md5(&png))
    );
}

/// An AMR-NB file of `frames` 12.2 kbit/s frames (20 ms each) with payload bits drawn from
/// `seed`: every bit pattern is a valid frame, and Debian's ffmpeg decodes AMR but has no AMR
/// encoder, so the test writes the frames itself.
pub fn amr_frames(frames: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = b"#!AMR\n".to_vec();
    for _ in 0..frames {
        // Frame type 7 (12.2 kbit/s) with the quality bit, then 31 bytes of speech bits.
        let mut frame = [0x3Cu8; 32];
        for b in &mut frame[1..] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        out.extend_from_slice(&frame);
    }
    out
}
