//! Who a customer is (issue 11 items 3 and 4, issue 16 item 2): registrations the app server
//! signs, the original's app-key endpoint, revocation that sticks, and a customer token that
//! reaches only its supporter.

use im_dispatcher::config::CustomerRegistration;
use serde_json::{Value, json};

use crate::helpers::*;

const STORE: u64 = 100;

async fn help_desk(backend: Backend, registration: CustomerRegistration) -> TestApp {
    let (mut s, url) = test_settings(backend);
    s.apps[0].store_id = STORE;
    s.apps[0].customer_registration = registration;
    s.customers.register_per_minute = 10_000;
    spawn_with(s, url).await
}

async fn register(app: &TestApp, body: Value) -> Res {
    app.call("POST", "/auth/customer", None, Some(body)).await
}

/// `signed_registration` with its fields replaced.
fn with(mut body: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    body
}

#[actix_web::test]
async fn a_registration_needs_the_app_servers_signature_by_default() {
    for backend in BACKENDS {
        let app = help_desk(backend, CustomerRegistration::Signed).await;
        let good = signed_registration("bob@example.com");
        // The original's request: the customer id alone.
        register(
            &app,
            json!({"appid": APP_A, "customer_id": "bob@example.com"}),
        )
        .await
        .assert_error(401, "signature_required");
        register(&app, with(good.clone(), json!({"signature": "00ff"})))
            .await
            .assert_error(401, "bad_signature");
        register(&app, with(good.clone(), json!({"signature": "not hex"})))
            .await
            .assert_error(401, "bad_signature");
        // Bob's signature does not register Alice, nor for longer than signed.
        register(&app, with(good.clone(), json!({"customer_id": "alice"})))
            .await
            .assert_error(401, "bad_signature");
        let expires = good["expires"].as_u64().unwrap();
        register(&app, with(good.clone(), json!({"expires": expires + 1})))
            .await
            .assert_error(401, "bad_signature");
        // Signed with app B's secret.
        let b_sig = customer_signature(SECRET_B, APP_A, "bob@example.com", expires);
        register(&app, with(good.clone(), json!({"signature": b_sig})))
            .await
            .assert_error(401, "bad_signature");
        let past = im_dispatcher::domain::now_secs() - 1;
        let old = json!({"expires": past,
                         "signature": customer_signature(SECRET_A, APP_A, "bob@example.com", past)});
        register(&app, with(good.clone(), old))
            .await
            .assert_error(401, "signature_expired");
        let far = im_dispatcher::domain::now_secs() + 2 * 86_400;
        let far = json!({"expires": far,
                         "signature": customer_signature(SECRET_A, APP_A, "bob@example.com", far)});
        let res = register(&app, with(good.clone(), far)).await;
        res.assert_error(400, "invalid_field");
        assert!(res.message().contains("expires"), "{}", res.body);
        // Hex in upper case is the same signature.
        let upper = good["signature"].as_str().unwrap().to_uppercase();
        let t1 = register(&app, with(good.clone(), json!({"signature": upper})))
            .await
            .data()["token"]
            .clone();
        let t2 = register(&app, good).await.data()["token"].clone();
        assert_eq!(t1, t2, "{backend:?}: the same customer, the same token");
    }
}

#[actix_web::test]
async fn an_unsigned_app_registers_by_customer_id_alone() {
    let app = help_desk(Backend::Memory, CustomerRegistration::Unsigned).await;
    let res = register(&app, json!({"appid": APP_A, "customer_id": "f3a9c1d2"})).await;
    let token = res.data()["token"].as_str().unwrap().to_string();
    let again = register(&app, json!({"appid": APP_A, "uid": "f3a9c1d2"})).await;
    assert_eq!(again.data()["token"], token, "`uid` is the same field");
    // A signature, when given, is still checked.
    register(
        &app,
        json!({"appid": APP_A, "customer_id": "f3a9c1d2",
               "expires": im_dispatcher::domain::now_secs() + 60, "signature": "00"}),
    )
    .await
    .assert_error(401, "bad_signature");
}

#[actix_web::test]
async fn the_originals_register_endpoint_takes_the_app_key() {
    for backend in BACKENDS {
        let app = help_desk(backend, CustomerRegistration::Signed).await;
        let ours = register(&app, signed_registration("carol")).await;
        let ours = ours.data().clone();
        let key = basic_key(APP_A, "KEY-A"); // compared case-insensitively, as the original
        for path in ["/customer/register", "/v2/customer/register"] {
            let res = app
                .call("POST", path, Some(&key), Some(signed_registration("carol")))
                .await;
            assert_eq!(res.data(), &ours, "{backend:?} {path}: the same customer");
            let mut by_uid = signed_registration("carol");
            by_uid["uid"] = by_uid["customer_id"].take();
            by_uid.as_object_mut().unwrap().remove("appid");
            let res = app.call("POST", path, Some(&key), Some(by_uid)).await;
            assert_eq!(
                res.data()["client_id"],
                ours["client_id"],
                "`uid`, no appid"
            );
            // The app key names the app; the signature still decides.
            app.call(
                "POST",
                path,
                Some(&key),
                Some(json!({"appid": APP_A, "customer_id": "carol"})),
            )
            .await
            .assert_error(401, "signature_required");
            for wrong in [
                Some(basic_key(APP_A, "key-b")),
                Some(basic_key(APP_B + 1, "key-a")),
                Some(app.auth_a()),
                Some("Bearer x".to_string()),
                None,
            ] {
                let res = app
                    .call(
                        "POST",
                        path,
                        wrong.as_deref(),
                        Some(signed_registration("carol")),
                    )
                    .await;
                res.assert_error(401, "unauthorized");
            }
            let res = app
                .call(
                    "POST",
                    path,
                    Some(&basic_key(APP_B, "key-b")),
                    Some(signed_registration("carol")),
                )
                .await;
            res.assert_error(400, "invalid_field");
            assert!(res.message().contains("appid"), "{}", res.body);
        }
    }
}

#[actix_web::test]
async fn a_revoked_customer_stays_out_until_the_app_server_lifts_the_block() {
    for backend in BACKENDS {
        let app = help_desk(backend, CustomerRegistration::Signed).await;
        let first = register(&app, signed_registration("eve")).await;
        let (token, uid) = (
            first.data()["token"].as_str().unwrap().to_string(),
            first.data()["client_id"].as_u64().unwrap(),
        );
        let mut ws = app.ws(&token, 3, "w").await;
        let res = app
            .call(
                "DELETE",
                &format!("/auth/tokens/{uid}"),
                Some(&app.auth_a()),
                None,
            )
            .await;
        assert_eq!(res.data(), &json!({"revoked": true, "blocked": true}));
        assert_eq!(ws.next(WAIT).await, Some(Err(1008)), "{backend:?}");
        // Neither a fresh signed registration, the original's endpoint nor a grant lets her in.
        register(&app, signed_registration("eve"))
            .await
            .assert_error(403, "customer_blocked");
        app.call(
            "POST",
            "/customer/register",
            Some(&basic_key(APP_A, "key-a")),
            Some(signed_registration("eve")),
        )
        .await
        .assert_error(403, "customer_blocked");
        app.post("/auth/grant", json!({"uid": uid}))
            .await
            .assert_error(403, "customer_blocked");
        let bearer = format!("Bearer {token}");
        app.call("GET", "/messages", Some(&bearer), None)
            .await
            .assert_error(401, "unauthorized");
        // Another app cannot lift it.
        let lift = format!("/auth/customers/{uid}/block");
        let res = app.call("DELETE", &lift, Some(&app.auth_b()), None).await;
        assert_eq!(res.data()["lifted"], false);
        register(&app, signed_registration("eve"))
            .await
            .assert_error(403, "customer_blocked");
        let res = app.call("DELETE", &lift, Some(&app.auth_a()), None).await;
        assert_eq!(res.data()["lifted"], true);
        let again = register(&app, signed_registration("eve")).await;
        assert_eq!(again.data()["client_id"], uid, "the same customer");
        let new = again.data()["token"].as_str().unwrap();
        assert_ne!(new, token, "a new token");
        app.ws(new, 3, "w").await;
        app.call("DELETE", &lift, None, None)
            .await
            .assert_error(401, "unauthorized");
        // Revoking a user (not a customer) blocks nothing: grants are the app server's.
        app.grant(5).await;
        let res = app
            .call("DELETE", "/auth/tokens/5", Some(&app.auth_a()), None)
            .await;
        assert_eq!(res.data(), &json!({"revoked": true, "blocked": false}));
        app.grant(5).await;
    }
}

#[actix_web::test]
async fn a_customer_token_reaches_only_its_supporter() {
    for backend in BACKENDS {
        let app = help_desk(backend, CustomerRegistration::Signed).await;
        app.post(
            &format!("/stores/{STORE}/supporters"),
            json!({"uid": 500, "name": "agent"}),
        )
        .await
        .data();
        app.post(
            "/groups",
            json!({"group_id": 9, "master": 1, "name": "g", "members": [1]}),
        )
        .await
        .data();
        let res = register(&app, signed_registration("mallory")).await;
        let token = res.data()["token"].as_str().unwrap().to_string();
        let bearer = format!("Bearer {token}");
        let sup = app
            .call(
                "GET",
                &format!("/supporters?store_id={STORE}"),
                Some(&bearer),
                None,
            )
            .await;
        assert_eq!(sup.data()["seller_id"], 500);
        let unread = |uid: u64| {
            let app = &app;
            async move {
                let off = app.get(&format!("/messages/offline?uid={uid}")).await;
                off.data()["count"].as_u64()
            }
        };
        let before = (unread(11).await, unread(1).await);
        let mut ws = app.ws(&token, 3, "w").await;
        for (kind, to) in [
            ("peer", 11u64),
            ("peer", 1),
            ("peer", 1 << 52),
            ("group", 9),
        ] {
            ws.send(json!({"type": "send", "kind": kind, "to": to, "content": "hi", "ref": "r"}))
                .await;
            let e = ws.recv().await;
            assert_eq!(
                (e["type"].as_str(), e["error"].as_str(), e["ref"].as_str()),
                (Some("error"), Some("customer_only"), Some("r")),
                "{backend:?} {kind} to {to}: {e}"
            );
        }
        let after = (unread(11).await, unread(1).await);
        assert_eq!(after, before, "nothing reached uids 11 and 1");
        ws.send(
            json!({"type": "send", "kind": "customer", "to": 500, "content": "help", "ref": "ok"}),
        )
        .await;
        assert_eq!(ws.recv().await["type"], "ack", "the supporter is reachable");
    }
}

#[actix_web::test]
async fn a_users_token_is_assigned_no_supporter() {
    let app = help_desk(Backend::Memory, CustomerRegistration::Signed).await;
    app.post(
        &format!("/stores/{STORE}/supporters"),
        json!({"uid": 500, "name": "agent"}),
    )
    .await
    .data();
    let bearer = format!("Bearer {}", app.grant(3).await);
    app.call(
        "GET",
        &format!("/supporters?store_id={STORE}"),
        Some(&bearer),
        None,
    )
    .await
    .assert_error(403, "not_a_customer");
    let list = app.get(&format!("/stores/{STORE}/supporters")).await;
    assert_eq!(list.data()[0]["assigned"], 0, "nobody was assigned");
}
