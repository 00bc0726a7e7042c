//! The HTTP rules of downloads: ranges, If-Range, ETag / If-None-Match.

use super::*;

async fn stored_file(app: &TestApp, bytes: &[u8]) -> String {
    let token = app.grant(1).await;
    let res = upload_form(
        app,
        &token,
        "/files",
        "data.bin",
        "application/octet-stream",
        bytes,
    );
    src_of(app, &res.await)
}

#[actix_web::test]
async fn a_single_byte_range_is_206_with_its_content_range() {
    let app = spawn_app(Backend::Memory).await;
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let src = stored_file(&app, &bytes).await;
    let len = bytes.len();
    for (range, first, last) in [
        ("bytes=0-9", 0, 9),
        ("bytes=-5", len - 5, len - 1),
        ("bytes=100000-", 100_000, len - 1),
        ("bytes=199990-999999", 199_990, len - 1),
    ] {
        let res = download(&app, &src, &[("Range", range.into())]).await;
        assert_eq!(res.status, 206, "{range}");
        assert_eq!(&res.body[..], &bytes[first..=last], "{range}");
        assert_eq!(
            res.header("content-range"),
            format!("bytes {first}-{last}/{len}"),
            "{range}"
        );
        assert_eq!(res.header("accept-ranges"), "bytes");
    }
    let past = download(&app, &src, &[("Range", "bytes=300000-".into())]).await;
    past.assert_error(416, "range_not_satisfiable");
    assert_eq!(past.header("content-range"), format!("bytes */{len}"));
    let several = download(&app, &src, &[("Range", "bytes=0-1,5-6".into())]).await;
    assert_eq!(
        (several.status, several.body.len()),
        (200, len),
        "whole object"
    );
    let garbage = download(&app, &src, &[("Range", "pages=1-2".into())]).await;
    assert_eq!((garbage.status, garbage.body.len()), (200, len));
}

#[actix_web::test]
async fn etags_answer_if_none_match_with_304_and_gate_if_range() {
    let app = spawn_app(Backend::Memory).await;
    let bytes = b"0123456789abcdefghij".to_vec();
    let src = stored_file(&app, &bytes).await;
    let etag = download(&app, &src, &[]).await.header("etag").to_string();
    assert!(etag.starts_with('"') && etag.len() > 34, "{etag}");
    let cached = download(&app, &src, &[("If-None-Match", etag.clone())]).await;
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("etag"), etag);
    let any = download(&app, &src, &[("If-None-Match", "*".into())]).await;
    assert_eq!(any.status, 304);
    let other = download(&app, &src, &[("If-None-Match", "\"other\"".into())]).await;
    assert_eq!((other.status, &other.body[..]), (200, &bytes[..]));
    let same = [("Range", "bytes=2-3".into()), ("If-Range", etag.clone())];
    let res = download(&app, &src, &same).await;
    assert_eq!((res.status, &res.body[..]), (206, &b"23"[..]));
    let changed = [
        ("Range", "bytes=2-3".into()),
        ("If-Range", "\"old\"".into()),
    ];
    let res = download(&app, &src, &changed).await;
    assert_eq!(
        (res.status, &res.body[..]),
        (200, &bytes[..]),
        "If-Range mismatch"
    );
}
