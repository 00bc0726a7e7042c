//! SPEC §4.3 (peer, system, notification), §4.4 history/offline, §5 WebSocket channel.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn send_peer(app: &TestApp, sender: u64, receiver: u64, content: &str) -> u64 {
    let res = app
        .post(
            "/messages/peers",
            json!({"sender": sender, "receiver": receiver, "content": content}),
        )
        .await;
    res.data()["msg_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no msg_id: {}", res.body))
}

#[actix_web::test]
async fn a_bad_token_is_refused_with_401_before_the_upgrade() {
    let app = spawn_app(Backend::Memory).await;
    let err = awc::Client::new()
        .ws(format!("ws://{}/ws?token=nope", app.addr))
        .connect()
        .await
        .err()
        .expect("must fail");
    let text = format!("{err:?}");
    assert!(
        text.contains("401") || text.contains("InvalidResponseStatus"),
        "{text}"
    );
    // No token at all is the binary protocol (README "GoBelieve binary protocol"): the
    // upgrade succeeds, and a JSON text frame on it closes the connection (1008).
    let (_, framed) = awc::Client::new()
        .ws(format!("ws://{}/ws", app.addr))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("tokenless upgrade: {e}"));
    let mut ws = Ws::from_raw(framed);
    ws.send(serde_json::json!({"type": "ping"})).await;
    assert_eq!(ws.next(WAIT).await, Some(Err(1008)));
    // A plain GET without upgrade headers but with a good token is a 400, not a 500.
    let token = app.grant(1).await;
    let res = app
        .call("GET", "/ws", Some(&format!("Bearer {token}")), None)
        .await;
    res.assert_error(400, "not_websocket");
}

#[actix_web::test]
async fn hello_names_the_user_and_the_latest_seq() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        send_peer(&app, 2, 1, "one").await;
        send_peer(&app, 2, 1, "two").await;
        let ws = app.online(1, 1, "phone").await;
        assert_eq!(ws.hello["uid"], 1);
        assert_eq!(ws.hello["appid"], APP_A);
        assert_eq!(ws.hello["seq"], 2, "{backend:?}");
    }
}

#[actix_web::test]
async fn a_peer_message_reaches_every_device_of_the_receiver_and_the_senders_other_devices() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let t1 = app.grant(1).await;
        let t2 = app.grant(2).await;
        let mut r_phone = app.ws(&t2, 1, "phone").await;
        let mut r_web = app.ws(&t2, 3, "tab").await;
        let mut s_phone = app.ws(&t1, 1, "phone").await;
        let mut s_web = app.ws(&t1, 3, "tab").await;

        let id = send_peer(&app, 1, 2, "hello").await;
        for ws in [&mut r_phone, &mut r_web] {
            let m = ws.recv().await;
            assert_eq!(
                (m["type"].as_str(), m["kind"].as_str()),
                (Some("message"), Some("peer")),
                "{m}"
            );
            assert_eq!(
                (
                    m["id"].as_u64(),
                    m["sender"].as_u64(),
                    m["receiver"].as_u64()
                ),
                (Some(id), Some(1), Some(2))
            );
            assert_eq!(m["seq"], 1);
            assert_eq!(m["content"], "hello");
            assert!(m["timestamp"].as_u64().is_some());
        }
        for ws in [&mut s_phone, &mut s_web] {
            let m = ws.recv().await;
            assert_eq!(
                m["id"].as_u64(),
                Some(id),
                "the sender's devices get their copy"
            );
        }

        // A ws send: the sending device gets an ack, the sender's other device the message.
        s_phone.send(json!({"type": "send", "kind": "peer", "to": 2, "content": {"text": "hi"}, "ref": "c1"})).await;
        let ack = s_phone.recv().await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["ref"], "c1");
        assert_eq!(ack["seq"], 2);
        let copy = s_web.recv().await;
        assert_eq!(
            (copy["id"].clone(), copy["seq"].clone()),
            (ack["id"].clone(), json!(2))
        );
        assert_eq!(
            copy["content"], r#"{"text":"hi"}"#,
            "object content is sent as its JSON text"
        );
        for ws in [&mut r_phone, &mut r_web] {
            let m = ws.recv().await;
            assert_eq!(m["id"], ack["id"]);
        }
        s_phone.expect_silence(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn an_offline_user_gets_everything_by_sync_in_order_without_duplicates() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut ids = Vec::new();
        for i in 0..130 {
            ids.push(send_peer(&app, 2, 1, &format!("m{i}")).await);
        }
        let mut ws = app.online(1, 2, "android").await;
        assert_eq!(ws.hello["seq"], 130);
        // Pages of 50: 50, 50, 30.
        let mut after = 0;
        let mut got = Vec::new();
        let mut pages = 0;
        loop {
            ws.send(json!({"type": "sync", "after": after, "limit": 50}))
                .await;
            loop {
                let v = ws.recv().await;
                if v["type"] == "sync_end" {
                    after = v["seq"].as_u64().unwrap_or_default();
                    pages += 1;
                    if v["more"] == false {
                        break;
                    }
                    assert_eq!(v["more"], true);
                    break;
                }
                got.push(v);
            }
            if after == 130 {
                break;
            }
        }
        assert_eq!(pages, 3, "{backend:?}");
        let seqs: Vec<u64> = got.iter().filter_map(|m| m["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=130).collect::<Vec<_>>());
        let got_ids: Vec<u64> = got.iter().filter_map(|m| m["id"].as_u64()).collect();
        assert_eq!(got_ids, ids);
        assert_eq!(got[7]["content"], "m7");
        // A sync past the end says so.
        ws.send(json!({"type": "sync", "after": 130})).await;
        assert_eq!(
            ws.recv().await,
            json!({"type": "sync_end", "seq": 130, "more": false})
        );
    }
}

#[actix_web::test]
async fn a_reconnect_in_the_middle_of_a_stream_loses_nothing() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let token = app.grant(1).await;
        let mut ws = app.ws(&token, 1, "phone").await;
        let sender = {
            let app_base = app.base.clone();
            let auth = app.auth_a();
            actix_web::rt::spawn(async move {
                let client = awc::Client::new();
                for i in 0..200 {
                    let body = json!({"sender": 2, "receiver": 1, "content": format!("n{i}")});
                    let res = client
                        .post(format!("{app_base}/messages/peers"))
                        .insert_header(("Authorization", auth.clone()))
                        .send_json(&body)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(res.status().as_u16(), 200);
                }
            })
        };
        // Take some live, drop the connection, come back, sync from the last seq.
        let mut first: Vec<u64> = Vec::new();
        while first.len() < 40 {
            let m = ws.recv().await;
            first.push(m["seq"].as_u64().unwrap_or_default());
        }
        assert_eq!(
            first,
            (1..=40).collect::<Vec<_>>(),
            "live frames come in seq order"
        );
        drop(ws);
        let mut ws = app.ws(&token, 1, "phone").await;
        let hello = ws.hello["seq"].as_u64().unwrap_or_default();
        let mut synced = Vec::new();
        let mut live = Vec::new();
        for m in ws.sync_all(40).await {
            let seq = m["seq"].as_u64().unwrap_or_default();
            if seq <= hello {
                synced.push(seq)
            } else {
                live.push(seq)
            }
        }
        sender.await.unwrap_or_else(|e| panic!("{e}"));
        while live.last().copied().unwrap_or(hello) < 200 {
            live.push(ws.recv().await["seq"].as_u64().unwrap_or_default());
        }
        // Sync covers (40, hello], live covers (hello, 200]: each contiguous and in order.
        assert_eq!(synced, (41..=hello).collect::<Vec<_>>(), "{backend:?}");
        assert_eq!(live, (hello + 1..=200).collect::<Vec<_>>(), "{backend:?}");
    }
}

#[actix_web::test]
async fn notifications_reach_online_devices_only_and_are_not_stored() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut a = app.online(1, 1, "p").await;
        let mut b = app.ws(&app.grant(1).await, 3, "w").await;
        let res = app
            .post(
                "/messages/notifications",
                json!({"receiver": 1, "content": "ping!"}),
            )
            .await;
        assert_eq!(res.data()["devices"], 2);
        for ws in [&mut a, &mut b] {
            let m = ws.recv().await;
            assert_eq!(
                (m["kind"].as_str(), m["content"].as_str()),
                (Some("notification"), Some("ping!"))
            );
            assert!(m.get("seq").is_none() && m["id"].as_u64().is_some(), "{m}");
        }
        a.send(json!({"type": "sync", "after": 0})).await;
        assert_eq!(
            a.recv().await,
            json!({"type": "sync_end", "seq": 0, "more": false})
        );
        // Nobody online: accepted, reaches nobody, nothing stored.
        let res = app
            .post(
                "/messages/notifications",
                json!({"receiver": 9, "content": "x"}),
            )
            .await;
        assert_eq!(res.data()["devices"], 0);
        let mut c = app.online(9, 1, "p").await;
        assert_eq!(c.hello["seq"], 0);
        c.expect_silence(Duration::from_millis(100)).await;
        // A user whose session is loaded (a system message just went to them) but who has no
        // connection: reaches nobody either.
        app.post(
            "/messages/systems",
            json!({"receiver": 10, "content": "stored"}),
        )
        .await
        .data();
        let res = app
            .post(
                "/messages/notifications",
                json!({"receiver": 10, "content": "x"}),
            )
            .await;
        assert_eq!(res.data()["devices"], 0, "{backend:?}");
    }
}

#[actix_web::test]
async fn system_messages_are_stored_and_delivered() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut ws = app.online(4, 1, "p").await;
        let res = app
            .post(
                "/messages/systems",
                json!({"receiver": 4, "content": {"notice": 1}}),
            )
            .await;
        let id = res.data()["msg_id"].clone();
        let m = ws.recv().await;
        assert_eq!(
            (m["kind"].as_str(), m["id"].clone(), m["seq"].clone()),
            (Some("system"), id, json!(1))
        );
        assert!(m.get("sender").is_none());
        let synced = ws.sync_all(0).await;
        assert!(synced.is_empty(), "already live, nothing before hello");
    }
}

#[actix_web::test]
async fn idempotent_retries_deliver_once() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut r = app.online(2, 1, "p").await;
        let body = json!({"sender": 1, "receiver": 2, "content": "once"});
        let send = |body: Value, key: Option<&'static str>| {
            let req = app
                .client
                .post(format!("{}/messages/peers", app.base))
                .insert_header(("Authorization", app.auth_a()));
            let req = match key {
                Some(k) => req.insert_header(("Idempotency-Key", k)),
                None => req,
            };
            async move {
                let mut res = req.send_json(&body).await.unwrap_or_else(|e| panic!("{e}"));
                let v: Value = res.json().await.unwrap_or_else(|e| panic!("{e}"));
                v["data"]["msg_id"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{v}"))
            }
        };
        let first = send(body.clone(), Some("k-1")).await;
        let again = send(body.clone(), Some("k-1")).await;
        assert_eq!(first, again);
        let mut with_field = body.clone();
        with_field["client_msg_id"] = json!("cm-7");
        let a = send(with_field.clone(), None).await;
        let b = send(with_field, None).await;
        assert_eq!(a, b);
        assert_ne!(a, first);
        assert_eq!(r.recv().await["id"].as_u64(), Some(first));
        assert_eq!(r.recv().await["id"].as_u64(), Some(a));
        r.expect_silence(Duration::from_millis(200)).await;

        // A repeated ws ref: the same ack, one delivery.
        let mut s = app.online(1, 1, "p").await;
        for _ in 0..3 {
            s.send(json!({"type": "send", "kind": "peer", "to": 2, "content": "x", "ref": 77}))
                .await;
        }
        let acks: Vec<Value> = vec![s.recv().await, s.recv().await, s.recv().await];
        assert!(
            acks.iter()
                .all(|a| a["type"] == "ack" && a["id"] == acks[0]["id"] && a["ref"] == 77),
            "{acks:?}"
        );
        assert_eq!(r.recv().await["id"], acks[0]["id"]);
        r.expect_silence(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn offline_counts_move_with_ack_and_an_ack_beyond_the_newest_is_refused() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        for i in 0..5 {
            send_peer(&app, 2, 1, &format!("{i}")).await;
        }
        let count = |q: &'static str| {
            let app = &app;
            async move {
                app.get(&format!("/messages/offline?{q}"))
                    .await
                    .data()
                    .clone()
            }
        };
        assert_eq!(
            count("uid=1&platform_id=1&device_id=d1").await,
            json!({"count": 5, "new": 1})
        );
        let mut ws = app.online(1, 1, "d1").await;
        ws.send(json!({"type": "ack", "seq": 3})).await;
        ws.send(json!({"type": "ping"})).await;
        assert_eq!(ws.recv_type("pong").await["type"], "pong");
        assert_eq!(
            count("uid=1&platform_id=1&device_id=d1").await,
            json!({"count": 2, "new": 1}),
            "{backend:?}"
        );
        assert_eq!(
            count("uid=1&platform_id=1&device_id=other").await["count"],
            5,
            "per device"
        );
        ws.send(json!({"type": "ack", "seq": 1})).await; // never backwards
        // Beyond the newest seq: refused, the position stays.
        ws.send(json!({"type": "ack", "seq": 999, "ref": "a"}))
            .await;
        let e = ws.recv_type("error").await;
        assert_eq!(
            (e["error"].as_str(), e["ref"].as_str()),
            (Some("invalid_frame"), Some("a")),
            "{e}"
        );
        assert!(e["message"].as_str().unwrap().contains("999"), "{e}");
        assert_eq!(
            count("uid=1&platform_id=1&device_id=d1").await["count"],
            2,
            "{backend:?}"
        );
        ws.send(json!({"type": "ack", "seq": 5})).await;
        ws.send(json!({"type": "ping"})).await;
        ws.recv_type("pong").await;
        assert_eq!(
            count("uid=1&platform_id=1&device_id=d1").await,
            json!({"count": 0, "new": 0})
        );
        app.get("/messages/offline")
            .await
            .assert_error(400, "invalid_query");
        app.get("/messages/offline?uid=abc")
            .await
            .assert_error(400, "invalid_query");
    }
}

#[actix_web::test]
async fn history_returns_the_newest_messages_oldest_first() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        for i in 1..=10 {
            send_peer(&app, 2, 1, &format!("h{i}")).await;
        }
        let token = app.grant(1).await;
        let bearer = format!("Bearer {token}");
        let res = app
            .call("GET", "/messages?limit=3", Some(&bearer), None)
            .await;
        let seqs: Vec<u64> = res
            .data()
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["seq"].as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(seqs, vec![8, 9, 10], "{backend:?}");
        let m = &res.data()[0];
        assert_eq!(
            (
                m["kind"].as_str(),
                m["sender"].as_u64(),
                m["content"].as_str()
            ),
            (Some("peer"), Some(2), Some("h8"))
        );
        let res = app
            .call("GET", "/messages?limit=4&before=8", Some(&bearer), None)
            .await;
        let seqs: Vec<u64> = res
            .data()
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["seq"].as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(seqs, vec![4, 5, 6, 7]);
        app.call("GET", "/messages?limit=0", Some(&bearer), None)
            .await
            .assert_error(400, "invalid_query");
        app.call("GET", "/messages?limit=x", Some(&bearer), None)
            .await
            .assert_error(400, "invalid_query");
        app.call("GET", "/messages", None, None)
            .await
            .assert_error(401, "unauthorized");
    }
}

#[actix_web::test]
async fn bad_send_bodies_are_4xx_naming_the_field() {
    let (mut settings, _) = test_settings(Backend::Memory);
    settings.limits.content = 100;
    let app = spawn_with(settings, None).await;
    for (body, field) in [
        (
            json!({"sender": 0, "receiver": 2, "content": "x"}),
            "sender",
        ),
        (
            json!({"sender": -1, "receiver": 2, "content": "x"}),
            "sender",
        ),
        (
            json!({"sender": "abc", "receiver": 2, "content": "x"}),
            "sender",
        ),
        (
            json!({"sender": 1, "receiver": 2.5, "content": "x"}),
            "receiver",
        ),
        (json!({"sender": 1, "content": "x"}), "receiver"),
        (json!({"sender": 1, "receiver": 2}), "content"),
        (json!({"sender": 1, "receiver": 2, "content": 5}), "content"),
        (
            json!({"sender": 1, "receiver": 2, "content": ["a"]}),
            "content",
        ),
        (
            json!({"sender": 1, "receiver": 2, "content": "x", "client_msg_id": {"a": 1}}),
            "client_msg_id",
        ),
    ] {
        let res = app.post("/messages/peers", body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.body);
        assert!(res.message().contains(field), "{body}: {}", res.message());
    }
    let res = app
        .post(
            "/messages/peers",
            json!({"sender": 1, "receiver": 2, "content": "x".repeat(101)}),
        )
        .await;
    res.assert_error(413, "content_too_large");
    app.post(
        "/messages/systems",
        json!({"receiver": "x", "content": "x"}),
    )
    .await
    .assert_error(400, "invalid_field");
    app.post("/messages/notifications", json!({"content": "x"}))
        .await
        .assert_error(400, "missing_field");
    // Nothing was stored by any of them.
    let mut ws = app.online(2, 1, "p").await;
    assert_eq!(ws.hello["seq"], 0);
    ws.expect_silence(Duration::from_millis(100)).await;
}

#[actix_web::test]
async fn a_store_outage_is_a_503_for_sends() {
    let (mut settings, _) = test_settings(Backend::Memory);
    settings.store.kind = im_dispatcher::config::StoreKind::Redis;
    settings.store.redis_url = "redis://127.0.0.1:1/0".into();
    // Longer than the reconnect attempts that report the refusal (~0.3 s).
    settings.store.timeout_ms = 1000;
    let app = spawn_with(settings, None).await;
    app.post(
        "/messages/peers",
        json!({"sender": 1, "receiver": 2, "content": "x"}),
    )
    .await
    .assert_error(503, "store_unavailable");
    app.post("/messages/systems", json!({"receiver": 2, "content": "x"}))
        .await
        .assert_error(503, "store_unavailable");
}

#[actix_web::test]
async fn bad_frames_get_error_frames_and_a_flood_closes_the_connection() {
    let (mut settings, _) = test_settings(Backend::Memory);
    settings.limits.ws_max_bad_frames = 6;
    settings.limits.ws_max_frame = 4096;
    let app = spawn_with(settings, None).await;
    let token = app.grant(1).await;
    let mut ws = app.ws(&token, 1, "p").await;
    ws.send_raw(awc::ws::Message::Text("not json".into())).await;
    assert_eq!(ws.recv().await["error"], "invalid_json");
    ws.send(json!({"type": "dance", "ref": "r1"})).await;
    let e = ws.recv().await;
    assert_eq!(
        (e["error"].as_str(), e["ref"].as_str()),
        (Some("unknown_type"), Some("r1"))
    );
    ws.send(json!({"type": "sync"})).await;
    assert_eq!(ws.recv().await["error"], "invalid_frame");
    ws.send(json!({"type": "send", "kind": "peer", "to": 2, "ref": "r2"}))
        .await;
    let e = ws.recv().await;
    assert_eq!(
        (e["error"].as_str(), e["ref"].as_str()),
        (Some("invalid_frame"), Some("r2"))
    );
    ws.send(json!([1, 2])).await;
    assert_eq!(ws.recv().await["error"], "invalid_frame");
    // Still healthy after bad frames.
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.recv().await["type"], "pong");
    ws.send(json!({"type": "send", "kind": "peer", "to": 2, "content": 5}))
        .await;
    assert_eq!(ws.recv().await["error"], "invalid_content");
    // The seventh bad frame in a minute closes it (1008).
    ws.send(json!({"nope": 1})).await;
    assert_eq!(ws.recv().await["type"], "error");
    assert_eq!(ws.next(WAIT).await, Some(Err(1008)));

    // An oversized frame closes with 1009.
    let mut ws = app.ws(&token, 1, "p").await;
    ws.send(json!({"type": "send", "kind": "peer", "to": 2, "content": "x".repeat(5000)}))
        .await;
    assert_eq!(ws.next(WAIT).await, Some(Err(1009)));
}

#[actix_web::test]
async fn a_client_that_never_reads_is_closed_while_others_keep_receiving() {
    let (mut settings, _) = test_settings(Backend::Memory);
    settings.limits.outbound_queue = 32;
    let app = spawn_with(settings, None).await;
    let stalled_token = app.grant(1).await;
    // Connected, then never read again.
    let stalled = app.ws(&stalled_token, 1, "p").await;
    let mut healthy = app.online(2, 1, "p").await;
    let big = "y".repeat(60_000);
    let mut closed = false;
    for i in 0..2000 {
        send_peer(&app, 3, 1, &big).await;
        if i % 50 == 0 {
            let metrics = app.call("GET", "/metrics", None, None).await;
            if metrics
                .body
                .as_str()
                .is_some_and(|t| t.contains("imd_ws_queue_overflows_total"))
            {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "the stalled connection's queue overflowed and it was closed"
    );
    let id = send_peer(&app, 3, 2, "still flowing").await;
    assert_eq!(healthy.recv().await["id"].as_u64(), Some(id));
    drop(stalled);
    // The stalled user reconnects and can sync everything.
    let mut again = app.ws(&stalled_token, 1, "p").await;
    let seqs: BTreeSet<u64> = again
        .sync_all(0)
        .await
        .iter()
        .filter_map(|m| m["seq"].as_u64())
        .collect();
    assert_eq!(
        seqs.len() as u64,
        again.hello["seq"].as_u64().unwrap_or_default()
    );
}

/// A masked client frame, built by hand (RFC 6455 §5.2).
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![
        if fin { 0x80 } else { 0 } | opcode,
        0x80 | payload.len() as u8,
    ];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[actix_web::test]
async fn a_fragmented_text_message_is_reassembled() {
    let app = spawn_app(Backend::Memory).await;
    let mut ws = app.online(1, 1, "p").await;
    let mut wire = client_frame(false, 0x1, br#"{"type":"#);
    wire.extend(client_frame(false, 0x0, br#""pi"#));
    wire.extend(client_frame(true, 0x0, br#"ng"}"#));
    ws.send_wire(&wire).await;
    assert_eq!(ws.recv().await["type"], "pong");
    // A continuation that continues nothing breaks the protocol: the connection is failed.
    ws.send_wire(&client_frame(true, 0x0, b"x")).await;
    assert_eq!(ws.next(WAIT).await, Some(Err(1002)));
}

/// A WebSocket client that does the handshake by hand, with a small receive buffer, and then
/// never reads: once the kernel buffers fill, the server's writes to it make no progress.
async fn stalled_client(addr: std::net::SocketAddr, token: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut io = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /ws?token={token}&platform_id=1&device_id=stalled HTTP/1.1\r\nHost: {addr}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await.unwrap();
    // The response head, a byte at a time so nothing after it is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(io.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    io
}

/// Tries a new connection for the user until one is accepted (a refusal must be the per-user
/// limit); panics after `within`. Returns how long it took.
async fn reconnect_within(app: &TestApp, token: &str, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    loop {
        match awc::Client::new()
            .ws(format!("ws://{}/ws?token={token}", app.addr))
            .connect()
            .await
        {
            Ok((_, framed)) => {
                let ws = Ws::from_framed(framed).await;
                ws.close().await;
                return started.elapsed();
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) => {
                assert_eq!(s.as_u16(), 429, "only the per-user limit refuses")
            }
            Err(e) => panic!("ws connect: {e}"),
        }
        assert!(
            started.elapsed() < within,
            "the stalled connection still holds the user's only slot after {within:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads (and discards) until the server ends the stream; panics if it is still open after
/// `within`.
async fn assert_dropped(io: &mut (impl tokio::io::AsyncRead + Unpin), within: Duration) {
    use tokio::io::AsyncReadExt;
    let mut sink = vec![0u8; 64 * 1024];
    let read_all = async {
        loop {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    assert!(
        tokio::time::timeout(within, read_all).await.is_ok(),
        "the server kept the stalled socket open"
    );
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_dropped_and_frees_its_slot_after_an_overflow() {
    let (mut settings, _) = test_settings(Backend::Memory);
    settings.limits.outbound_queue = 8;
    settings.limits.ws_connections_per_user = 1;
    let app = spawn_with(settings, None).await;
    let token = app.grant(1).await;
    let mut stalled = stalled_client(app.addr, &token).await;
    let refused = awc::Client::new()
        .ws(format!("ws://{}/ws?token={token}", app.addr))
        .connect()
        .await;
    assert!(
        refused.is_err(),
        "the stalled connection holds the only slot"
    );
    // Far more than the kernel buffers and the 8-frame queue hold: the queue overflows (1013)
    // while the socket takes nothing.
    let big = "y".repeat(60_000);
    for _ in 0..200 {
        send_peer(&app, 2, 1, &big).await;
    }
    // The close frame cannot be written; the server gives up on it and drops the socket.
    let took = reconnect_within(&app, &token, Duration::from_secs(20)).await;
    eprintln!("slot freed {took:?} after the overflow");
    assert_dropped(&mut stalled, WAIT).await;
}

#[actix_web::test]
async fn a_client_that_keeps_sending_but_never_reads_is_dropped_after_the_idle_timeout() {
    let (mut settings, _) = test_settings(Backend::Memory);
    settings.limits.ws_connections_per_user = 1;
    settings.limits.ws_idle_timeout_secs = 2;
    settings.limits.ws_ping_interval_secs = 1;
    let app = spawn_with(settings, None).await;
    let token = app.grant(1).await;
    let stalled = stalled_client(app.addr, &token).await;
    // Enough to fill the kernel buffers, far below the outbound queue: no overflow.
    let big = "y".repeat(60_000);
    for _ in 0..150 {
        send_peer(&app, 2, 1, &big).await;
    }
    // The client keeps pinging, so it never looks idle by what it sends.
    let (mut reader, mut writer) = stalled.into_split();
    let pinger = actix_web::rt::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while writer
            .write_all(&client_frame(true, 0x9, b""))
            .await
            .is_ok()
        {
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let took = reconnect_within(&app, &token, Duration::from_secs(25)).await;
    eprintln!("slot freed {took:?} after the sends");
    assert_dropped(&mut reader, WAIT).await;
    pinger.abort();
}

#[actix_web::test]
async fn hello_is_the_first_frame_even_while_messages_stream_in() {
    let app = spawn_app(Backend::Redis).await;
    let token = app.grant(1).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Stored messages (held until the hello seq is known) and notifications (queued at once)
    // arrive for the user throughout its connects.
    let mut senders = Vec::new();
    for (path, body) in [
        (
            "/messages/peers",
            json!({"sender": 2, "receiver": 1, "content": "p"}),
        ),
        (
            "/messages/notifications",
            json!({"receiver": 1, "content": "n"}),
        ),
        (
            "/messages/notifications",
            json!({"receiver": 1, "content": "n"}),
        ),
    ] {
        let (base, auth, stop) = (app.base.clone(), app.auth_a(), stop.clone());
        senders.push(actix_web::rt::spawn(async move {
            let client = awc::Client::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let res = client
                    .post(format!("{base}{path}"))
                    .insert_header(("Authorization", auth.clone()))
                    .send_json(&body)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(res.status().as_u16(), 200);
            }
        }));
    }
    let mut firsts = Vec::new();
    for _ in 0..40 {
        let (_, mut framed) = awc::Client::new()
            .ws(format!("ws://{}/ws?token={token}", app.addr))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("ws connect: {e}"));
        let first = loop {
            use futures_util::StreamExt;
            match tokio::time::timeout(WAIT, framed.next()).await {
                Ok(Some(Ok(awc::ws::Frame::Text(b)))) => {
                    break serde_json::from_slice::<Value>(&b).unwrap();
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("no first frame: {other:?}"),
            }
        };
        firsts.push(first["type"].as_str().unwrap_or_default().to_string());
        drop(framed);
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert!(
        firsts.iter().all(|t| t == "hello"),
        "every connection starts with hello: {firsts:?}"
    );
}
