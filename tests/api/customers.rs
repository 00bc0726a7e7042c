//! SPEC §4.4 customer service, against both stores.

use std::time::{Duration, Instant};

use im_dispatcher::config::PushSinkKind;
use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::*;

const STORE: u64 = 100;

async fn cs_app(backend: Backend) -> TestApp {
    let (mut s, url) = test_settings(backend);
    s.apps[0].store_id = STORE;
    s.apps[1].store_id = 200;
    s.customers.register_per_minute = 10_000;
    s.push.sink = if backend == Backend::Redis {
        PushSinkKind::Redis
    } else {
        PushSinkKind::None
    };
    s.push.flush_interval_ms = 5;
    spawn_with(s, url).await
}

async fn register(app: &TestApp, customer: &str) -> (String, u64) {
    let res = app
        .call(
            "POST",
            "/auth/customer",
            None,
            Some({
                let mut body = signed_registration(customer);
                body["name"] = json!("cust");
                body
            }),
        )
        .await;
    let d = res.data();
    assert_eq!(d["store_id"], STORE);
    (
        d["token"].as_str().unwrap().to_string(),
        d["client_id"].as_u64().unwrap(),
    )
}

async fn add_supporter(app: &TestApp, uid: u64) {
    app.post(
        &format!("/stores/{STORE}/supporters"),
        json!({"uid": uid, "name": format!("agent{uid}"), "avatar": "a.png"}),
    )
    .await
    .data();
}

async fn my_supporter(app: &TestApp, token: &str) -> Res {
    app.call(
        "GET",
        &format!("/supporters?store_id={STORE}"),
        Some(&format!("Bearer {token}")),
        None,
    )
    .await
}

#[actix_web::test]
async fn registering_twice_gives_the_same_client_id_and_token() {
    for backend in BACKENDS {
        let app = cs_app(backend).await;
        let (t1, c1) = register(&app, "alice@example").await;
        let (t2, c2) = register(&app, "alice@example").await;
        assert_eq!((t1.clone(), c1), (t2, c2), "{backend:?}");
        let (t3, c3) = register(&app, "bob").await;
        assert_ne!(c1, c3);
        assert_ne!(t1, t3);
        assert!(c1 > 1 << 52, "customer uids live above the app's own: {c1}");
        // The token works as a client token.
        let res = app
            .call("GET", "/messages", Some(&format!("Bearer {t1}")), None)
            .await;
        assert_eq!(res.data(), &json!([]));
        // Bad registrations.
        let post = |body: Value| app.call("POST", "/auth/customer", None, Some(body));
        post(json!({"appid": APP_B + 1, "customer_id": "x"}))
            .await
            .assert_error(400, "unknown_app");
        post(json!({"appid": "abc", "customer_id": "x"}))
            .await
            .assert_error(400, "invalid_field");
        post(json!({"customer_id": "x"}))
            .await
            .assert_error(400, "missing_field");
        post(json!({"appid": APP_A}))
            .await
            .assert_error(400, "missing_field");
        post(json!({"appid": APP_A, "customer_id": ""}))
            .await
            .assert_error(400, "invalid_field");
        post(json!({"appid": APP_A, "customer_id": [1]}))
            .await
            .assert_error(400, "invalid_field");
    }
    let (s, _) = test_settings(Backend::Memory);
    let app = spawn_with(s, None).await;
    let res = app
        .call(
            "POST",
            "/auth/customer",
            None,
            Some(json!({"appid": APP_A, "customer_id": "x"})),
        )
        .await;
    res.assert_error(400, "no_customer_service");
}

#[actix_web::test]
async fn supporter_status_follows_the_supporters_connection() {
    for backend in BACKENDS {
        let app = cs_app(backend).await;
        add_supporter(&app, 500).await;
        async fn status(app: &TestApp) -> Value {
            app.get(&format!("/stores/{STORE}/supporters")).await.data()[0]["status"].clone()
        }
        assert_eq!(status(&app).await, "offline");
        let ws = app.online(500, 3, "desk").await;
        let until = |want: &'static str| {
            let app = &app;
            async move {
                let deadline = Instant::now() + Duration::from_secs(1);
                loop {
                    if status(app).await == want {
                        return true;
                    }
                    if Instant::now() > deadline {
                        return false;
                    }
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        assert!(until("online").await, "{backend:?}: online within a second");
        drop(ws);
        assert!(
            until("offline").await,
            "{backend:?}: offline within a second"
        );
    }
}

#[actix_web::test]
async fn assignment_prefers_online_and_least_loaded_and_sticks() {
    for backend in BACKENDS {
        let app = cs_app(backend).await;
        let (c0, _) = register(&app, "c0").await;
        my_supporter(&app, &c0)
            .await
            .assert_error(404, "no_supporter");
        for uid in [501, 502, 503] {
            add_supporter(&app, uid).await;
        }
        let _s502 = app.online(502, 3, "d").await;
        let (c1, _) = register(&app, "c1").await;
        let (c2, _) = register(&app, "c2").await;
        let r1 = my_supporter(&app, &c1).await;
        assert_eq!(
            (
                r1.data()["seller_id"].as_u64(),
                r1.data()["status"].as_str()
            ),
            (Some(502), Some("online")),
            "{backend:?}"
        );
        assert_eq!(
            (r1.data()["name"].as_str(), r1.data()["avatar"].as_str()),
            (Some("agent502"), Some("a.png"))
        );
        assert_eq!(
            my_supporter(&app, &c2).await.data()["seller_id"],
            502,
            "the only one online"
        );
        let _s503 = app.online(503, 3, "d").await;
        let (c3, _) = register(&app, "c3").await;
        assert_eq!(
            my_supporter(&app, &c3).await.data()["seller_id"],
            503,
            "online and least loaded"
        );
        assert_eq!(
            my_supporter(&app, &c1).await.data()["seller_id"],
            502,
            "sticky"
        );
        drop(_s502);
        drop(_s503);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        let (c4, _) = register(&app, "c4").await;
        let r4 = my_supporter(&app, &c4).await;
        assert_eq!(
            (
                r4.data()["seller_id"].as_u64(),
                r4.data()["status"].as_str()
            ),
            (Some(501), Some("offline")),
            "nobody online: least loaded"
        );
        app.call(
            "DELETE",
            &format!("/stores/{STORE}/supporters/502"),
            Some(&app.auth_a()),
            None,
        )
        .await
        .data();
        let again = my_supporter(&app, &c1).await.data()["seller_id"].as_u64();
        assert!(
            matches!(again, Some(501) | Some(503)),
            "reassigned once 502 left: {again:?}"
        );
        // Wrong or missing store.
        let bearer = format!("Bearer {c1}");
        app.call("GET", "/supporters?store_id=200", Some(&bearer), None)
            .await
            .assert_error(404, "store_not_found");
        app.call("GET", "/supporters", Some(&bearer), None)
            .await
            .assert_error(400, "invalid_query");
        app.call("GET", "/supporters?store_id=x", Some(&bearer), None)
            .await
            .assert_error(400, "invalid_query");
        app.call(
            "POST",
            "/stores/200/supporters",
            Some(&app.auth_a()),
            Some(json!({"uid": 1, "name": "x"})),
        )
        .await
        .assert_error(404, "store_not_found");
        app.post(
            &format!("/stores/{STORE}/supporters"),
            json!({"uid": 0, "name": "x"}),
        )
        .await
        .assert_error(400, "invalid_field");
        app.post(&format!("/stores/{STORE}/supporters"), json!({"uid": 7}))
            .await
            .assert_error(400, "missing_field");
    }
}

#[actix_web::test]
async fn customers_and_their_supporter_exchange_messages_both_ways() {
    for backend in BACKENDS {
        let app = cs_app(backend).await;
        add_supporter(&app, 600).await;
        let (ct, cid) = register(&app, "carol").await;
        assert_eq!(my_supporter(&app, &ct).await.data()["seller_id"], 600);
        let mut cust = app.ws(&ct, 3, "widget").await;
        let mut agent = app.online(600, 3, "desk").await;

        cust.send(
            json!({"type": "send", "kind": "customer", "to": 600, "content": "help!", "ref": "q1"}),
        )
        .await;
        assert_eq!(cust.recv().await["type"], "ack");
        let m = agent.recv().await;
        assert_eq!(
            (
                m["kind"].as_str(),
                m["sender"].as_u64(),
                m["content"].as_str()
            ),
            (Some("customer"), Some(cid), Some("help!"))
        );

        let res = app
            .post(
                "/messages/customers",
                json!({"sender": 600, "receiver": cid, "content": "on it"}),
            )
            .await;
        res.data();
        assert_eq!(cust.recv().await["content"], "on it");
        agent.send(json!({"type": "send", "kind": "customer", "to": cid, "content": "done", "ref": "a1"})).await;
        assert_eq!(agent.recv_type("ack").await["ref"], "a1");
        assert_eq!(cust.recv().await["content"], "done");

        let history = app
            .call("GET", "/messages", Some(&format!("Bearer {ct}")), None)
            .await;
        let texts: Vec<&str> = history
            .data()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["content"].as_str())
            .collect();
        assert_eq!(texts, vec!["help!", "on it", "done"], "{backend:?}");
        let mut later = app.ws(&ct, 1, "phone").await;
        assert_eq!(later.sync_all(0).await.len(), 3);

        // Nobody else.
        cust.send(
            json!({"type": "send", "kind": "customer", "to": 601, "content": "x", "ref": "bad"}),
        )
        .await;
        let e = cust.recv().await;
        assert_eq!(
            (e["error"].as_str(), e["ref"].as_str()),
            (Some("not_assigned"), Some("bad"))
        );
        app.post(
            "/messages/customers",
            json!({"sender": 601, "receiver": cid, "content": "x"}),
        )
        .await
        .assert_error(403, "not_assigned");
        app.post(
            "/messages/customers",
            json!({"sender": 1, "receiver": 2, "content": "x"}),
        )
        .await
        .assert_error(403, "not_assigned");
        app.post(
            "/messages/customers",
            json!({"sender": 600, "receiver": cid}),
        )
        .await
        .assert_error(400, "missing_field");

        // Offline counts by customer id.
        let off = app
            .get("/messages/offline?customer_id=carol&platform_id=3&device_id=widget")
            .await;
        assert_eq!(off.data()["count"], 3);
        app.get("/messages/offline?customer_id=nobody")
            .await
            .assert_error(404, "unknown_customer");
    }
}

#[actix_web::test]
async fn an_offline_supporter_gets_a_customer_push_job() {
    let app = cs_app(Backend::Redis).await;
    add_supporter(&app, 700).await;
    app.bind_token(700).await;
    let (ct, cid) = register(&app, "dave").await;
    my_supporter(&app, &ct).await.data();
    let mut cust = app.ws(&ct, 3, "w").await;
    cust.send(
        json!({"type": "send", "kind": "customer", "to": 700, "content": "anyone?", "ref": 1}),
    )
    .await;
    cust.recv_type("ack").await;
    let mut jobs: Vec<String> = Vec::new();
    for _ in 0..500 {
        jobs = app
            .redis()
            .lrange("customer_push_queue_v2", 0, -1)
            .unwrap_or_default();
        if !jobs.is_empty() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(jobs.len(), 1);
    let job: Value = serde_json::from_str(&jobs[0]).unwrap();
    assert_eq!(job["appid"], APP_A);
    assert_eq!(
        (job["sender_appid"].as_u64(), job["receiver_appid"].as_u64()),
        (Some(APP_A), Some(APP_A))
    );
    assert_eq!(
        (
            job["sender"].as_u64(),
            job["receiver"].as_u64(),
            job["content"].as_str()
        ),
        (Some(cid), Some(700), Some("anyone?"))
    );
}

#[actix_web::test]
async fn registration_is_rate_limited_per_ip() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.apps[0].store_id = STORE;
    s.customers.register_per_minute = 3;
    let app = spawn_with(s, None).await;
    for i in 0..3 {
        let res = app
            .call(
                "POST",
                "/auth/customer",
                None,
                Some(signed_registration(&i.to_string())),
            )
            .await;
        assert_eq!(res.status, 200);
    }
    // The original's endpoint shares the budget.
    let res = app
        .call(
            "POST",
            "/customer/register",
            Some(&basic_key(APP_A, "key-a")),
            Some(signed_registration("9")),
        )
        .await;
    res.assert_error(429, "rate_limited");
    assert!(
        res.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    );
}

#[actix_web::test]
async fn browser_facing_endpoints_answer_cors() {
    let app = cs_app(Backend::Memory).await;
    for path in [
        "/auth/customer",
        "/customer/register",
        "/v2/customer/register",
        "/supporters",
        "/messages",
    ] {
        let res = app
            .client
            .request(awc::http::Method::OPTIONS, format!("{}{path}", app.base))
            .insert_header(("Origin", "https://shop.example"))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .insert_header((
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let allow = res
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            allow == "*" || allow == "https://shop.example",
            "{path}: {allow:?}"
        );
    }
    let res = app
        .client
        .post(format!("{}/auth/customer", app.base))
        .insert_header(("Origin", "https://shop.example"))
        .send_json(&signed_registration("web"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers().contains_key("access-control-allow-origin"));
}

#[actix_web::test]
async fn a_refused_cors_preflight_is_an_error_envelope_naming_the_reason() {
    let (mut s, url) = test_settings(Backend::Memory);
    s.http.cors_origins = vec!["https://shop.example".into()];
    let app = spawn_with(s, url).await;
    for (origin, method, reason) in [
        ("https://elsewhere.example", "POST", "origin"),
        ("https://shop.example", "DELETE", "method"),
    ] {
        let mut res = app
            .client
            .request(
                awc::http::Method::OPTIONS,
                format!("{}/auth/customer", app.base),
            )
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", method))
            .send()
            .await
            .unwrap();
        let bytes = res.body().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{origin} {method}: not the JSON envelope: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(res.status().as_u16(), 400, "{origin} {method}: {body}");
        assert_eq!(body["meta"]["code"], 400, "{body}");
        assert_eq!(body["meta"]["error"], "cors_rejected", "{body}");
        let message = body["meta"]["message"].as_str().unwrap_or_default();
        assert!(
            message.to_lowercase().contains(reason),
            "the message names the {reason}: {body}"
        );
    }
}
