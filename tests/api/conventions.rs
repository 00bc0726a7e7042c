//! SPEC §3: the envelope, and a 4xx naming the field for every kind of bad input.

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn unknown_routes_and_wrong_methods_use_the_envelope() {
    let app = spawn_app(Backend::Memory).await;
    app.call("GET", "/nope", None, None)
        .await
        .assert_error(404, "not_found");
    app.call("DELETE", "/auth/grant", Some(&app.auth_a()), None)
        .await
        .assert_error(405, "method_not_allowed");
    app.call("GET", "/users/1", Some(&app.auth_a()), None)
        .await
        .assert_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn malformed_bodies_are_400_naming_the_problem() {
    let app = spawn_app(Backend::Memory).await;
    let auth = app.auth_a();
    let cases: &[(&[u8], &str, &str)] = &[
        (b"{\"uid\": 1", "invalid_json", "JSON"),
        (b"not json", "invalid_json", "JSON"),
        (b"", "empty_body", "empty"),
        (b"   ", "empty_body", "empty"),
        (b"[1,2]", "invalid_body", "JSON object"),
        (b"42", "invalid_body", "JSON object"),
        (b"\"uid\"", "invalid_body", "JSON object"),
        (b"{}", "missing_field", "uid"),
        (b"{\"uid\": 0}", "invalid_field", "uid"),
        (b"{\"uid\": -5}", "invalid_field", "uid"),
        (b"{\"uid\": 1.5}", "invalid_field", "uid"),
        (b"{\"uid\": \"abc\"}", "invalid_field", "uid"),
        (b"{\"uid\": \"\"}", "invalid_field", "uid"),
        (
            b"{\"uid\": 99999999999999999999999}",
            "invalid_field",
            "out of range",
        ),
        (
            b"{\"uid\": 9223372036854775808}",
            "invalid_field",
            "out of range",
        ),
        (b"{\"uid\": true}", "invalid_field", "uid"),
        (b"{\"uid\": null}", "invalid_field", "uid"),
        (
            b"{\"uid\": 1, \"user_name\": 5}",
            "invalid_field",
            "user_name",
        ),
        (b"{\"uid\": 1} trailing", "invalid_json", "JSON"),
    ];
    for (body, code, mention) in cases {
        let res = app.raw("POST", "/auth/grant", Some(&auth), body).await;
        res.assert_error(400, code);
        assert!(
            res.message().contains(mention),
            "{:?}: message {:?} should mention {mention:?}",
            String::from_utf8_lossy(body),
            res.message()
        );
    }
}

#[actix_web::test]
async fn ids_are_accepted_as_numbers_or_decimal_strings_and_unknown_fields_are_ignored() {
    let app = spawn_app(Backend::Memory).await;
    let a = app.post("/auth/grant", json!({"uid": 42})).await.data()["token"].clone();
    let b = app
        .post("/auth/grant", json!({"uid": "42", "surprise": [1, 2]}))
        .await
        .data()["token"]
        .clone();
    assert_eq!(a, b, "the same user either way");
    let max = app
        .post("/auth/grant", json!({"uid": 9223372036854775807u64}))
        .await;
    assert_eq!(max.status, 200);
}

#[actix_web::test]
async fn oversized_bodies_are_413() {
    let (mut settings, _) = test_settings(Backend::Memory);
    settings.limits.request_body = 1024;
    let app = spawn_with(settings, None).await;
    let name = "x".repeat(2000);
    let res = app
        .post("/auth/grant", json!({"uid": 1, "user_name": name}))
        .await;
    res.assert_error(413, "body_too_large");
    // Just under the limit is fine.
    let res = app
        .post(
            "/auth/grant",
            json!({"uid": 1, "user_name": "x".repeat(900)}),
        )
        .await;
    assert_eq!(res.status, 200);
}

#[actix_web::test]
async fn bad_path_ids_are_400() {
    let app = spawn_app(Backend::Memory).await;
    for path in [
        "/users/0",
        "/users/-1",
        "/users/abc",
        "/users/1.5",
        "/users/99999999999999999999",
    ] {
        let res = app.post(path, json!({"name": "x"})).await;
        res.assert_error(400, "invalid_path");
        assert!(res.message().contains("uid"), "{}", res.message());
    }
}
