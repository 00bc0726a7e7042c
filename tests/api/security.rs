//! Issue "Reliability and security", item 4: revocation, tokens out of logs, app isolation on
//! every endpoint, a separate metrics listener. (Constant-time comparison and the IP allow-list
//! with trusted proxies: auth.rs.)

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::process;

#[actix_web::test]
async fn revoking_a_token_stops_it_at_once_and_closes_the_users_connections() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let old = app.grant(1).await;
        let mut ws = app.ws(&old, 1, "p").await;
        let res = app
            .call("DELETE", "/auth/tokens/1", Some(&app.auth_a()), None)
            .await;
        assert_eq!(res.data()["revoked"], true);
        assert_eq!(
            ws.next(WAIT).await,
            Some(Err(1008)),
            "{backend:?}: closed with policy violation"
        );
        let bearer = format!("Bearer {old}");
        app.call(
            "POST",
            "/device/bind",
            Some(&bearer),
            Some(json!({"apns_device_token": "x"})),
        )
        .await
        .assert_error(401, "unauthorized");
        let err = awc::Client::new()
            .ws(format!("ws://{}/ws?token={old}", app.addr))
            .connect()
            .await
            .err();
        assert!(format!("{err:?}").contains("401"), "{err:?}");
        let new = app.grant(1).await;
        assert_ne!(new, old, "the next grant issues a new token");
        app.ws(&new, 1, "p").await;
        // Revoking again, or a user who never had a token: answered, nothing to revoke.
        let res = app
            .call("DELETE", "/auth/tokens/42", Some(&app.auth_a()), None)
            .await;
        assert_eq!(res.data()["revoked"], false);
        app.call("DELETE", "/auth/tokens/1", None, None)
            .await
            .assert_error(401, "unauthorized");
    }
}

#[actix_web::test]
async fn tokens_and_secrets_never_appear_in_the_log() {
    let server = process::Server::start(&[("IMD_LOG__LEVEL", "debug".into())]);
    let client = awc::Client::new();
    let auth = process::demo_auth();
    let mut res = client
        .post(format!("{}/auth/grant", server.base()))
        .insert_header(("Authorization", auth.clone()))
        .send_json(&json!({"uid": 1}))
        .await
        .unwrap();
    let v: serde_json::Value = res.json().await.unwrap();
    let token = v["data"]["token"].as_str().unwrap().to_string();
    let (_, mut ws) = client
        .ws(format!("ws://{}/ws?token={token}", server.addr))
        .connect()
        .await
        .unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.next().await;
    ws.send(awc::ws::Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    ws.next().await;
    let forged = "forgedTOKENforgedTOKENforged0001";
    let _ = client
        .ws(format!("ws://{}/ws?token={forged}", server.addr))
        .connect()
        .await;
    client
        .post(format!("{}/device/bind", server.base()))
        .bearer_auth(&token)
        .send_json(&json!({"apns_device_token": "t"}))
        .await
        .unwrap();
    client
        .post(format!("{}/device/bind", server.base()))
        .bearer_auth(forged)
        .send_json(&json!({"apns_device_token": "t"}))
        .await
        .unwrap();
    // A push job for an offline user with a bound device: the default (log) sink names the
    // job, not the device token or the message.
    client
        .post(format!("{}/users/2/bind", server.base()))
        .insert_header(("Authorization", auth.clone()))
        .send_json(&json!({"gcm_device_token": "devicetokenSECRET42"}))
        .await
        .unwrap();
    client
        .post(format!("{}/messages/peers", server.base()))
        .insert_header(("Authorization", auth.clone()))
        .send_json(&json!({"sender": 1, "receiver": 2, "content": "private words here"}))
        .await
        .unwrap();
    client
        .delete(format!("{}/auth/tokens/1", server.base()))
        .insert_header(("Authorization", auth.clone()))
        .send()
        .await
        .unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let log = server.log_text();
    assert!(
        log.contains("/auth/grant") && log.contains("\"status\":101"),
        "the requests were logged: {log}"
    );
    assert!(log.contains("push_queue"), "the push job was logged: {log}");
    assert!(!log.contains(&token), "a token in the log");
    assert!(
        !log.contains("devicetokenSECRET42"),
        "a device token in the log"
    );
    assert!(!log.contains("private words"), "message content in the log");
    assert!(!log.contains(forged), "a presented token in the log");
    assert!(
        !log.contains(&im_dispatcher::apps::md5_hex("demo-secret")) && !log.contains("demo-secret"),
        "a secret in the log"
    );
    assert!(
        !log.contains(auth.trim_start_matches("Basic ")),
        "credentials in the log"
    );
}

#[actix_web::test]
async fn every_user_and_message_endpoint_is_scoped_to_the_callers_app() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let token_a = app.grant(1).await;
        app.post("/users/1/bind", json!({"apns_device_token": "a-token"}))
            .await
            .data();
        let mut ws_a = app.ws(&token_a, 1, "p").await;
        let b = Some(app.auth_b());
        let b = b.as_deref();
        // App B uses app A's user ids everywhere: it only ever touches its own user 1.
        for (method, path, body) in [
            ("POST", "/auth/grant", Some(json!({"uid": 1}))),
            (
                "POST",
                "/users/1",
                Some(
                    json!({"name": "b", "mute": true, "do_not_disturb": {"peer_uid": 2, "on": true}}),
                ),
            ),
            (
                "POST",
                "/users/1/bind",
                Some(json!({"apns_device_token": "b-token"})),
            ),
            (
                "POST",
                "/users/1/unbind",
                Some(json!({"apns_device_token": "a-token"})),
            ),
            ("DELETE", "/auth/tokens/1", None),
            (
                "POST",
                "/messages/peers",
                Some(json!({"sender": 2, "receiver": 1, "content": "from b"})),
            ),
            (
                "POST",
                "/messages/systems",
                Some(json!({"receiver": 1, "content": "from b"})),
            ),
            (
                "POST",
                "/messages/notifications",
                Some(json!({"receiver": 1, "content": "from b"})),
            ),
            ("GET", "/messages/offline?uid=1", None),
        ] {
            let res = app.call(method, path, b, body).await;
            assert!(res.status < 500, "{method} {path}: {}", res.body);
        }
        let offline_b = app.call("GET", "/messages/offline?uid=1", b, None).await;
        assert_eq!(
            offline_b.data()["count"],
            2,
            "app B counts its own user's messages"
        );
        // App A's user is untouched: same token, same settings, same device token, no messages.
        let a = app
            .state
            .store
            .load_user(im_dispatcher::domain::UserKey::new(
                im_dispatcher::domain::AppId(APP_A),
                im_dispatcher::domain::Uid(1),
            ))
            .await
            .unwrap();
        assert_eq!(
            (a.name.as_str(), a.mute, a.dnd_peers.len()),
            ("user1", false, 0),
            "{backend:?}"
        );
        assert_eq!(
            a.device_tokens
                .iter()
                .map(|t| t.token.as_str())
                .collect::<Vec<_>>(),
            vec!["a-token"]
        );
        assert_eq!(app.grant(1).await, token_a);
        ws_a.expect_silence(Duration::from_millis(200)).await;
        assert_eq!(app.get("/messages/offline?uid=1").await.data()["count"], 0);
        let hist = app
            .call("GET", "/messages", Some(&format!("Bearer {token_a}")), None)
            .await;
        assert_eq!(hist.data(), &json!([]));
        // App B's token for its user 1 is not app A's user 1 on the socket either.
        let token_b = app
            .call("POST", "/auth/grant", b, Some(json!({"uid": 1})))
            .await
            .data()["token"]
            .as_str()
            .unwrap()
            .to_string();
        let ws_b = app.ws(&token_b, 1, "p").await;
        assert_eq!(ws_b.hello["appid"], APP_B);
    }
}

#[actix_web::test]
async fn metrics_can_be_served_on_their_own_listener() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.http.metrics_listen = "127.0.0.1:0".into();
    let app = spawn_with(s, None).await;
    app.call("GET", "/metrics", None, None)
        .await
        .assert_error(404, "not_found");
    let addr = app.metrics_addr.expect("a metrics address");
    let mut res = awc::Client::new()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body = res.body().await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("imd_http_requests_total"));
}

#[actix_web::test]
async fn a_client_cannot_make_the_server_log_errors_with_bad_frames() {
    let server = process::Server::start(&[("IMD_LOG__LEVEL", "info".into())]);
    let client = awc::Client::new();
    let token = server.grant(1).await;
    for _ in 0..3 {
        let (_, framed) = client
            .ws(format!("ws://{}/ws?token={token}", server.addr))
            .connect()
            .await
            .unwrap();
        let mut ws = Ws::from_framed(framed).await;
        // A ping without FIN: control frames must not be fragmented (RFC 6455 §5.5).
        ws.send_wire(&crate::fuzz::frames::wire(0x09, b"p", true))
            .await;
        assert_eq!(ws.next(WAIT).await, Some(Err(1002)), "a protocol error");
    }
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let log = server.log_text();
    assert!(
        log.contains("\"status\":101"),
        "the connections were logged: {log}"
    );
    assert!(
        !log.contains("\"level\":\"ERROR\""),
        "a client's bad frame logged as a server error: {log}"
    );
}

#[actix_web::test]
async fn a_malformed_request_is_logged_at_debug_not_as_a_server_error() {
    use tokio::io::AsyncWriteExt;
    let server = process::Server::start(&[("IMD_LOG__LEVEL", "debug".into())]);
    for _ in 0..3 {
        let mut io = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        io.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\0b\r\n\r\n")
            .await
            .unwrap();
        let text = read_until_closed(&mut io).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    }
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let log = server.log_text();
    assert!(
        !log.contains("\"level\":\"ERROR\""),
        "a client's malformed request logged as a server error: {log}"
    );
    let noted = log
        .lines()
        .filter(|l| l.contains("\"level\":\"DEBUG\"") && l.contains("request parse error"))
        .count();
    assert_eq!(noted, 3, "each one is noted at debug: {log}");
}
