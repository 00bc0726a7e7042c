//! SPEC §4.1 through HTTP, against both stores.

use im_dispatcher::domain::{AppId, PushProvider, Uid, UserKey};
use redis::Commands;
use serde_json::json;

use crate::helpers::*;

fn user_a(uid: u64) -> UserKey {
    UserKey::new(AppId(APP_A), Uid(uid))
}

#[actix_web::test]
async fn granting_twice_returns_the_same_token_and_updates_the_name() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let first = app
            .post("/auth/grant", json!({"uid": 1, "user_name": "ann"}))
            .await
            .data()["token"]
            .clone();
        let token = first.as_str().unwrap_or_default();
        assert!(token.len() >= 22, "at least 128 bits: {token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "URL-safe: {token}"
        );
        let again = app
            .post("/auth/grant", json!({"uid": 1, "user_name": "anne"}))
            .await
            .data()["token"]
            .clone();
        assert_eq!(first, again, "{backend:?}");
        let user = app
            .state
            .store
            .load_user(user_a(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(user.name, "anne");
        let other = app.post("/auth/grant", json!({"uid": 2})).await.data()["token"].clone();
        assert_ne!(first, other);
    }
}

#[actix_web::test]
async fn grant_writes_the_original_redis_layout() {
    let app = spawn_app(Backend::Redis).await;
    let token = app.grant(1).await;
    let mut r = app.redis();
    let stored: String = r.hget("users_7_1", "access_token").unwrap_or_default();
    assert_eq!(stored, token);
    let (uid, appid, name): (String, String, String) = redis::cmd("HMGET")
        .arg(format!("access_token_{token}"))
        .arg("user_id")
        .arg("app_id")
        .arg("user_name")
        .query(&mut r)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (uid.as_str(), appid.as_str(), name.as_str()),
        ("1", "7", "user1")
    );
}

#[actix_web::test]
async fn a_token_written_by_an_existing_deployment_authenticates() {
    let app = spawn_app(Backend::Redis).await;
    let mut r = app.redis();
    let _: () = redis::cmd("HSET")
        .arg("access_token_legacy0123456789abcdef")
        .arg("user_id")
        .arg("9")
        .arg("app_id")
        .arg("7")
        .query(&mut r)
        .unwrap_or_else(|e| panic!("{e}"));
    let res = app
        .call(
            "POST",
            "/device/bind",
            Some("Bearer legacy0123456789abcdef"),
            Some(json!({"apns_device_token": "dev-9"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let stored: String = r.hget("users_7_9", "apns_device_token").unwrap_or_default();
    assert_eq!(stored, "dev-9");
    let ts: u64 = r.hget("users_7_9", "apns_timestamp").unwrap_or_default();
    assert!(ts > 1_600_000_000);
}

#[actix_web::test]
async fn user_settings_are_all_applied_together() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let res = app
            .post(
                "/users/3",
                json!({
                    "name": "carol", "mute": true, "forbidden": 1,
                    "do_not_disturb": {"peer_uid": "5", "on": true}
                }),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let u = app
            .state
            .store
            .load_user(user_a(3))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (u.name.as_str(), u.mute, u.forbidden),
            ("carol", true, true)
        );
        assert_eq!(u.dnd_peers, vec![Uid(5)]);
        let res = app
            .call(
                "PATCH",
                "/users/3",
                Some(&app.auth_a()),
                Some(json!({"do_not_disturb": {"peer_uid": 5, "on": false}, "mute": false})),
            )
            .await;
        assert_eq!(res.status, 200);
        let u = app
            .state
            .store
            .load_user(user_a(3))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(u.dnd_peers.is_empty() && !u.mute && u.forbidden && u.name == "carol");
    }
}

#[actix_web::test]
async fn do_not_disturb_is_written_where_the_original_daemons_read_it() {
    let app = spawn_app(Backend::Redis).await;
    app.post("/auth/grant", json!({"uid": 3})).await;
    app.post(
        "/users/3",
        json!({"do_not_disturb": {"peer_uid": 5, "on": true}, "mute": true}),
    )
    .await;
    let mut r = app.redis();
    let field: String = r.hget("users_7_3", "peer_5").unwrap_or_default();
    assert_eq!(field, "1");
    let in_set: bool = r
        .sismember("users_7_3_peer_do_not_disturb", 5)
        .unwrap_or(false);
    assert!(in_set);
    let in_conv: bool = r
        .sismember("conversations_donotdisturb_7_3", "p:5")
        .unwrap_or(false);
    assert!(in_conv);
    let token: String = r.hget("users_7_3", "access_token").unwrap_or_default();
    let on: String = r
        .hget(format!("access_token_{token}"), "notification_on")
        .unwrap_or_default();
    assert_eq!(on, "0", "mute sets the original notification_on = 0");
}

#[actix_web::test]
async fn bad_user_bodies_are_400_naming_the_field() {
    let app = spawn_app(Backend::Memory).await;
    app.post("/users/3", json!({}))
        .await
        .assert_error(400, "no_action");
    app.post("/users/3", json!({"nickname": "x"}))
        .await
        .assert_error(400, "no_action");
    for (body, field) in [
        (json!({"name": 5}), "name"),
        (json!({"mute": "yes"}), "mute"),
        (json!({"mute": 2}), "mute"),
        (json!({"forbidden": "no"}), "forbidden"),
        (json!({"do_not_disturb": true}), "do_not_disturb"),
        (
            json!({"do_not_disturb": {"peer_uid": "x", "on": true}}),
            "do_not_disturb.peer_uid",
        ),
        (
            json!({"do_not_disturb": {"peer_uid": 0, "on": true}}),
            "do_not_disturb.peer_uid",
        ),
        (json!({"do_not_disturb": {"on": true}}), "peer_uid"),
        (
            json!({"do_not_disturb": {"peer_uid": 4, "on": "x"}}),
            "do_not_disturb.on",
        ),
        (json!({"name": "n".repeat(1025), "mute": true}), "name"),
        (json!({"avatar": "a".repeat(1025)}), "avatar"),
    ] {
        let res = app.post("/users/3", body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.body);
        assert!(res.message().contains(field), "{body}: {}", res.message());
    }
    let res = app
        .post(
            "/auth/grant",
            json!({"uid": 3, "user_name": "u".repeat(1025)}),
        )
        .await;
    res.assert_error(400, "invalid_field");
    assert!(res.message().contains("user_name"), "{}", res.message());
    // Nothing was half-applied by the rejected requests.
    let u = app
        .state
        .store
        .load_user(user_a(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(u, Default::default());
}

#[actix_web::test]
async fn device_tokens_bind_and_a_stale_unbind_removes_nothing() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let res = app
            .post(
                "/users/4/bind",
                json!({"apns_device_token": "new", "gcm_device_token": "g1"}),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let res = app
            .post("/users/4/unbind", json!({"apns_device_token": "old"}))
            .await;
        assert_eq!(res.data()["removed"], 0);
        let u = app
            .state
            .store
            .load_user(user_a(4))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut names: Vec<_> = u
            .device_tokens
            .iter()
            .map(|t| (t.provider, t.token.as_str()))
            .collect();
        names.sort_by_key(|(p, _)| p.name());
        assert_eq!(
            names,
            vec![(PushProvider::Apns, "new"), (PushProvider::Gcm, "g1")],
            "{backend:?}"
        );
        let res = app
            .post("/users/4/unbind", json!({"apns_device_token": "new"}))
            .await;
        assert_eq!(res.data()["removed"], 1);
        let u = app
            .state
            .store
            .load_user(user_a(4))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.device_tokens.len(), 1);
        assert_eq!(u.device_tokens[0].provider, PushProvider::Gcm);
    }
}

#[actix_web::test]
async fn client_device_bind_applies_to_the_tokens_own_user() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let token = app.grant(6).await;
        let bearer = format!("Bearer {token}");
        let res = app
            .call(
                "POST",
                "/device/bind",
                Some(&bearer),
                Some(json!({"xm_device_token": "mi-6", "jp_device_token": ""})),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let u = app
            .state
            .store
            .load_user(user_a(6))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.device_tokens.len(), 1, "empty strings are ignored");
        assert_eq!(u.device_tokens[0].token, "mi-6");
        let res = app
            .call(
                "POST",
                "/device/unbind",
                Some(&bearer),
                Some(json!({"xm_device_token": "mi-6"})),
            )
            .await;
        assert_eq!(res.data()["removed"], 1);
    }
}

#[actix_web::test]
async fn bad_bind_bodies_are_400() {
    let app = spawn_app(Backend::Memory).await;
    app.post("/users/4/bind", json!({}))
        .await
        .assert_error(400, "no_device_token");
    app.post("/users/4/bind", json!({"apns_device_token": ""}))
        .await
        .assert_error(400, "no_device_token");
    app.post("/users/4/unbind", json!({"foo": "x"}))
        .await
        .assert_error(400, "no_device_token");
    let res = app
        .post("/users/4/bind", json!({"apns_device_token": 5}))
        .await;
    res.assert_error(400, "invalid_field");
    assert!(res.message().contains("apns_device_token"));
    app.post("/users/4/bind", json!([1]))
        .await
        .assert_error(400, "invalid_body");
}

#[actix_web::test]
async fn two_apps_never_see_each_others_users() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let a = app.grant(1).await;
        let b = app
            .call(
                "POST",
                "/auth/grant",
                Some(&app.auth_b()),
                Some(json!({"uid": 1, "user_name": "bob"})),
            )
            .await
            .data()["token"]
            .clone();
        assert_ne!(json!(a), b);
        app.call(
            "POST",
            "/users/1",
            Some(&app.auth_b()),
            Some(json!({"name": "b-side", "mute": true})),
        )
        .await;
        let ua = app
            .state
            .store
            .load_user(user_a(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((ua.name.as_str(), ua.mute), ("user1", false));
        // App A's token resolves to app A's user only.
        let who = app
            .state
            .store
            .resolve_token(&a)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(who, Some(user_a(1)));
    }
}
