//! The im server's own HTTP API (README "The im server's HTTP API"): its own listener, off by
//! default; every route with its query parameters and bodies, through the REST API's send path.

use std::time::Duration;

use im_dispatcher::config::PushSinkKind;
use serde_json::{Value, json};

use crate::helpers::*;

const QUIET: Duration = Duration::from_millis(150);

async fn im_app(backend: Backend) -> TestApp {
    let (mut s, url) = test_settings(backend);
    s.im_http.listen = "127.0.0.1:0".into();
    s.apps[0].store_id = 100;
    if backend == Backend::Redis {
        s.push.sink = PushSinkKind::Redis;
        s.push.flush_interval_ms = 5;
    }
    spawn_with(s, url).await
}

/// POST to the im listener, raw body.
async fn im(app: &TestApp, path: &str, body: &str) -> Res {
    app.im("POST", path, body.as_bytes()).await
}

fn im_data(res: &Res) -> &Value {
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body.get("meta").is_none(), "{}", res.body);
    &res.body["data"]
}

#[actix_web::test]
async fn the_im_http_api_is_off_by_default_and_never_on_the_main_listener() {
    let app = spawn_app(Backend::Memory).await;
    assert!(app.im_http_addr.is_none());
    let app = im_app(Backend::Memory).await;
    assert!(app.im_http_addr.is_some_and(|a| a != app.addr));
    app.raw(
        "POST",
        "/post_peer_message?appid=7&sender=1&receiver=2",
        None,
        b"x",
    )
    .await
    .assert_error(404, "not_found");
    // The REST API is not on the im listener either.
    app.im("POST", "/messages/peers", b"{}")
        .await
        .assert_error(404, "not_found");
}

#[actix_web::test]
async fn post_peer_message_is_stored_delivered_and_listed_like_a_rest_send() {
    for backend in BACKENDS {
        let app = im_app(backend).await;
        let mut b = app.online(2, 1, "p").await;
        let path = "/post_peer_message?appid=7&sender=1&receiver=2";
        let res = im(&app, path, r#"{"text":"hello"}"#).await;
        let id = im_data(&res)["msg_id"].as_u64().unwrap();
        let m = b.recv().await;
        assert_eq!(
            (&m["kind"], &m["sender"], &m["content"], &m["seq"], &m["id"]),
            (
                &json!("peer"),
                &json!(1),
                &json!(r#"{"text":"hello"}"#),
                &json!(1),
                &json!(id)
            ),
            "{m}"
        );
        // Any method, as the original; the same Idempotency-Key sends once.
        for _ in 0..2 {
            let mut req = app
                .client
                .get(format!("http://{}{path}", app.im_http_addr.unwrap()))
                .insert_header(("Idempotency-Key", "k-1"));
            req = req.insert_header(("Content-Type", "text/plain"));
            let res = req.send_body("once").await.unwrap();
            assert_eq!(res.status().as_u16(), 200);
        }
        assert_eq!(b.recv().await["content"], "once");
        b.expect_silence(QUIET).await;
        let latest = app
            .im("GET", "/load_latest_message?appid=7&uid=2&limit=10", b"")
            .await;
        let items = im_data(&latest).as_array().unwrap().clone();
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(
            (
                &items[0]["id"],
                &items[0]["command"],
                &items[0]["sender"],
                &items[0]["receiver"]
            ),
            (&json!(1), &json!(4), &json!(1), &json!(2))
        );
        assert_eq!(items[1]["content"], "once");
        let ts = items[0]["timestamp"].as_u64().unwrap();
        assert!(
            ts.abs_diff(im_dispatcher::domain::now_secs()) < 60,
            "seconds: {ts}"
        );
        let history = app
            .im("GET", "/load_history_message?appid=7&uid=2&last_id=1", b"")
            .await;
        assert_eq!(im_data(&history).as_array().map(Vec::len), Some(1));
        let app = &app;
        let count = |q: &'static str| async move {
            let res = app.im("GET", q, b"").await;
            im_data(&res)["count"].clone()
        };
        assert_eq!(count("/get_offline_count?appid=7&uid=2").await, 2);
        assert_eq!(
            count("/get_offline_count?appid=7&uid=2&sync_key=1").await,
            1
        );
        // The sender's own inbox has it too (a peer send stores both sides).
        assert_eq!(count("/get_offline_count?appid=7&uid=1").await, 2);
    }
}

#[actix_web::test]
async fn an_offline_receiver_of_an_im_http_send_gets_a_push_job() {
    let app = im_app(Backend::Redis).await;
    app.bind_token(2).await;
    im_data(
        &im(
            &app,
            "/post_peer_message?appid=7&sender=1&receiver=2",
            "wake up",
        )
        .await,
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let jobs: Vec<String> =
            redis::Commands::lrange(&mut app.redis(), "push_queue", 0, -1).unwrap();
        if let Some(job) = jobs.first() {
            let job: Value = serde_json::from_str(job).unwrap();
            assert_eq!(
                (&job["receiver"], &job["content"]),
                (&json!(2), &json!("wake up"))
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no push job");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn group_sends_check_membership_and_group_notifications_reach_the_members() {
    for backend in BACKENDS {
        let app = im_app(backend).await;
        let gid = app
            .post(
                "/groups",
                json!({"master": 1, "name": "g", "members": [1, 2]}),
            )
            .await
            .data()["group_id"]
            .as_u64()
            .unwrap();
        let mut b = app.online(2, 1, "p").await;
        let send = |sender: u64, to: u64| {
            let app = &app;
            async move {
                let q = format!("/post_group_message?appid=7&sender={sender}&receiver={to}");
                im(app, &q, "to the group").await
            }
        };
        im_data(&send(1, gid).await);
        let m = b.recv().await;
        assert_eq!(
            (&m["kind"], &m["group_id"]),
            (&json!("group"), &json!(gid)),
            "{m}"
        );
        send(3, gid).await.assert_error(403, "not_group_member");
        send(1, 999_999).await.assert_error(404, "group_not_found");
        let body =
            json!({"appid": 7, "group_id": gid, "notification": "{\"n\":1}", "super": false});
        let res = im(&app, "/post_group_notification", &body.to_string()).await;
        im_data(&res);
        let n = b.recv().await;
        assert_eq!(
            (&n["kind"], &n["content"]),
            (&json!("group_notification"), &json!("{\"n\":1}")),
            "{n}"
        );
        let latest = app
            .im("GET", "/load_latest_message?appid=7&uid=2&limit=1024", b"")
            .await;
        let commands: Vec<u64> = im_data(&latest)
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["command"].as_u64())
            .collect();
        // The create notification and the notification are not chat messages: only the IM.
        assert_eq!(commands, vec![8], "{}", latest.body);
        let history = app
            .im("GET", "/load_history_message?appid=7&uid=2&last_id=0", b"")
            .await;
        let commands: Vec<u64> = im_data(&history)
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["command"].as_u64())
            .collect();
        assert_eq!(commands, vec![7, 8, 7], "{}", history.body);
        let missing = json!({"appid": 7, "notification": "x"}).to_string();
        let res = im(&app, "/post_group_notification", &missing).await;
        res.assert_error(400, "missing_field");
        assert!(res.message().contains("group_id"), "{}", res.body);
        let bad = json!({"appid": 7, "group_id": gid, "notification": 5}).to_string();
        let res = im(&app, "/post_group_notification", &bad).await;
        assert!(res.message().contains("notification"), "{}", res.body);
        let unknown = json!({"appid": 7, "group_id": 999_999, "notification": "x"});
        im(&app, "/post_group_notification", &unknown.to_string())
            .await
            .assert_error(404, "group_not_found");
    }
}

#[actix_web::test]
async fn post_system_message_takes_both_the_json_and_the_query_shape() {
    for backend in BACKENDS {
        let app = im_app(backend).await;
        let mut b = app.online(2, 1, "p").await;
        let mut c = app.online(3, 1, "p").await;
        let body = json!({"appid": 7, "receivers": [2, 3], "content": "to both"});
        let res = im(&app, "/post_system_message", &body.to_string()).await;
        assert_eq!(im_data(&res)["msg_ids"].as_array().map(Vec::len), Some(2));
        for ws in [&mut b, &mut c] {
            let m = ws.recv().await;
            assert_eq!(
                (&m["kind"], &m["content"]),
                (&json!("system"), &json!("to both"))
            );
        }
        im_data(&im(&app, "/post_system_message?appid=7&uid=2", "old shape").await);
        assert_eq!(b.recv().await["content"], "old shape");
        c.expect_silence(QUIET).await;
        for (body, field) in [
            (
                json!({"appid": 7, "receivers": [], "content": "x"}),
                "receivers",
            ),
            (
                json!({"appid": 7, "receivers": [0], "content": "x"}),
                "receivers",
            ),
            (json!({"appid": 7, "receivers": [2]}), "content"),
            (json!({"receivers": [2], "content": "x"}), "appid"),
        ] {
            let res = im(&app, "/post_system_message", &body.to_string()).await;
            assert_eq!(res.status, 400, "{body} → {}", res.body);
            assert!(res.message().contains(field), "{body} → {}", res.body);
        }
    }
}

#[actix_web::test]
async fn notifications_room_and_realtime_messages_reach_open_connections_only() {
    let app = im_app(Backend::Memory).await;
    let mut b = app.online(2, 1, "p").await;
    let res = im(&app, "/post_notification?appid=7&uid=2", "note").await;
    assert_eq!(im_data(&res)["devices"], 1);
    assert_eq!(b.recv().await["kind"], "notification");
    b.send(json!({"type": "enter_room", "room_id": 5})).await;
    assert_eq!(b.recv().await["type"], "room");
    let res = im(
        &app,
        "/post_room_message?appid=7&uid=1&room=5",
        "in the room",
    )
    .await;
    assert_eq!(im_data(&res)["devices"], 1);
    let m = b.recv().await;
    assert_eq!(
        (&m["kind"], &m["sender"], &m["receiver"]),
        (&json!("room"), &json!(1), &json!(5))
    );
    let res = im(
        &app,
        "/post_realtime_message?appid=7&sender=1&receiver=2",
        "rt",
    )
    .await;
    assert_eq!(im_data(&res)["devices"], 1);
    assert_eq!(b.recv().await["kind"], "rt");
    // None of them stored.
    let res = app.im("GET", "/get_offline_count?appid=7&uid=2", b"").await;
    assert_eq!(im_data(&res)["count"], 0);
    app.post("/users/1", json!({"forbidden": true}))
        .await
        .data();
    im(&app, "/post_room_message?appid=7&uid=1&room=5", "x")
        .await
        .assert_error(403, "speak_forbidden");
    let summary = app.im("GET", "/summary", b"").await;
    assert_eq!(im_data(&summary)["connection_count"], 1);
}

#[actix_web::test]
async fn post_customer_message_goes_between_a_customer_and_their_supporter() {
    let app = im_app(Backend::Memory).await;
    let (token, cid) = app.register_customer("shopper").await;
    app.post("/stores/100/supporters", json!({"uid": 600, "name": "ann"}))
        .await
        .data();
    let bearer = format!("Bearer {token}");
    app.call("GET", "/supporters?store_id=100", Some(&bearer), None)
        .await
        .data();
    let mut cust = app.ws(&token, 1, "p").await;
    let body = |sender: u64, receiver: u64, receiver_app: u64| {
        json!({"sender_appid": 7, "sender": sender, "receiver_appid": receiver_app,
               "receiver": receiver, "content": "hello customer"})
        .to_string()
    };
    im_data(&im(&app, "/post_customer_message", &body(600, cid, 7)).await);
    let m = cust.recv().await;
    assert_eq!(
        (&m["kind"], &m["sender"]),
        (&json!("customer"), &json!(600)),
        "{m}"
    );
    im(&app, "/post_customer_message", &body(601, cid, 7))
        .await
        .assert_error(403, "not_assigned");
    // Across apps only with a help-desk app (`customers.help_desk_app`), none here.
    let res = im(&app, "/post_customer_message", &body(600, cid, 8)).await;
    res.assert_error(403, "cross_app");
    let res = im(&app, "/post_customer_message", &body(600, cid, 99)).await;
    res.assert_error(400, "unknown_app");
    assert!(res.message().contains("receiver_appid"), "{}", res.body);
    let latest = app
        .im(
            "GET",
            &format!("/load_latest_message?appid=7&uid={cid}&limit=5"),
            b"",
        )
        .await;
    let item = &im_data(&latest)[0];
    assert_eq!(
        (&item["command"], &item["sender_appid"]),
        (&json!(64), &json!(7))
    );
}

#[actix_web::test]
async fn bad_parameters_and_bodies_get_a_4xx_naming_what_is_wrong() {
    let app = im_app(Backend::Memory).await;
    let big = "c".repeat(app.state.settings.limits.content + 1);
    let cases: Vec<(&str, &[u8], u16, &str)> = vec![
        ("/post_peer_message?sender=1&receiver=2", b"x", 400, "appid"),
        (
            "/post_peer_message?appid=x&sender=1&receiver=2",
            b"x",
            400,
            "appid",
        ),
        (
            "/post_peer_message?appid=99&sender=1&receiver=2",
            b"x",
            400,
            "appid",
        ),
        (
            "/post_peer_message?appid=7&sender=0&receiver=2",
            b"x",
            400,
            "sender",
        ),
        ("/post_peer_message?appid=7&sender=1", b"x", 400, "receiver"),
        (
            "/post_peer_message?appid=7&sender=1&receiver=2",
            b"\xff\xfe",
            400,
            "content",
        ),
        (
            "/post_peer_message?appid=7&sender=1&receiver=2",
            big.as_bytes(),
            413,
            "content",
        ),
        (
            "/post_group_message?appid=7&sender=1&receiver=-4",
            b"x",
            400,
            "receiver",
        ),
        ("/post_notification?appid=7", b"x", 400, "uid"),
        ("/post_room_message?appid=7&uid=1", b"x", 400, "room"),
        (
            "/post_realtime_message?appid=7&sender=1&receiver=",
            b"x",
            400,
            "receiver",
        ),
        ("/post_group_notification", b"not json", 400, "JSON"),
        ("/post_customer_message", b"{}", 400, "sender_appid"),
        ("/get_offline_count?appid=7", b"", 400, "uid"),
        (
            "/get_offline_count?appid=7&uid=1&sync_key=-1",
            b"",
            400,
            "sync_key",
        ),
        (
            "/get_offline_count?appid=7&uid=1&platform_id=300",
            b"",
            400,
            "platform_id",
        ),
        ("/load_latest_message?appid=7&uid=1", b"", 400, "limit"),
        (
            "/load_latest_message?appid=7&uid=1&limit=0",
            b"",
            400,
            "limit",
        ),
        (
            "/load_history_message?appid=7&uid=1&last_id=x",
            b"",
            400,
            "last_id",
        ),
        ("/stack", b"", 404, "/stack"),
    ];
    for (path, body, status, names) in cases {
        let res = app.im("POST", path, body).await;
        assert_eq!(res.status, status, "{path} → {}", res.body);
        assert_eq!(res.body["meta"]["code"], status, "{path} → {}", res.body);
        assert!(
            res.message().contains(names),
            "{path}: the message should name {names:?}: {}",
            res.body
        );
    }
}
