//! Issue 11 item 2: a request body that trickles in is cut off (408, connection closed), and
//! clients or unauthenticated callers, whose requests share a budget of their own, can never
//! take the in-flight slots app servers need; the im HTTP API's listener shares the app
//! servers' budget.

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::*;

/// A registration that declares a 1,000-byte body and sends one byte of it, on `path`, with
/// `Basic` credentials made up (they must not buy it an app server's slot).
async fn trickle(app: &TestApp, path: &str) -> TcpStream {
    let mut io = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: {}\r\nContent-Length: 1000\r\n\r\n{{",
        basic_key(APP_A, "key-a")
    );
    io.write_all(head.as_bytes()).await.unwrap();
    io
}

/// The status of the one response on `io`, which the server must then close.
async fn answer_then_close(mut io: TcpStream) -> u16 {
    let text = read_until_closed(&mut io).await;
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"))
}

#[actix_web::test]
async fn slow_bodies_are_cut_off_and_cannot_take_the_app_servers_slots() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.apps[0].store_id = 100;
    s.limits.inflight_requests = 4;
    s.limits.inflight_public = 4;
    s.limits.body_timeout_secs = 2;
    let app = spawn_with(s, None).await;
    let bearer = format!("Bearer {}", app.grant(1).await);
    let mut slow = Vec::new();
    for path in [
        "/auth/customer",
        "/customer/register",
        "/v2/customer/register",
    ] {
        for _ in 0..4 {
            slow.push(trickle(&app, path).await);
        }
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    // App servers are served while the trickling requests are held.
    for i in 0..10 {
        app.post(
            "/messages/peers",
            json!({"sender": 1, "receiver": 2, "content": format!("{i}")}),
        )
        .await
        .data();
    }
    // The other budget is full.
    app.call("GET", "/messages", Some(&bearer), None)
        .await
        .assert_error(503, "overloaded");
    // Four held a slot until the deadline (408); the rest were refused at once (503); every
    // connection was closed after its answer.
    let mut statuses = Vec::new();
    for io in slow {
        statuses.push(answer_then_close(io).await);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [[408; 4].as_slice(), &[503; 8]].concat());
    app.call("GET", "/messages", Some(&bearer), None)
        .await
        .data();
}

#[actix_web::test]
async fn a_body_that_misses_the_deadline_is_408_naming_it() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.limits.body_timeout_secs = 1;
    let app = spawn_with(s, None).await;
    let mut io = TcpStream::connect(app.addr).await.unwrap();
    let auth = app.auth_a();
    let head = format!(
        "POST /messages/peers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\n{{\"sen\r\n"
    );
    io.write_all(head.as_bytes()).await.unwrap();
    let text = read_until_closed(&mut io).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"body_timeout\""), "{text}");
    assert!(text.contains("within 1 s"), "{text}");
}

#[actix_web::test]
async fn the_im_http_listener_has_the_app_servers_budget_and_body_deadline() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.im_http.listen = "127.0.0.1:0".into();
    s.limits.inflight_requests = 2;
    s.limits.body_timeout_secs = 2;
    let app = spawn_with(s, None).await;
    let at = app
        .im_http_addr
        .unwrap_or_else(|| panic!("no im HTTP listener"));
    let send = "/post_peer_message?appid=7&sender=1&receiver=2";
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut io = TcpStream::connect(at).await.unwrap();
        let head = format!("POST {send} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nh");
        io.write_all(head.as_bytes()).await.unwrap();
        slow.push(io);
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let res = app.im("POST", send, b"hi").await;
    res.assert_error(503, "overloaded");
    let mut statuses = Vec::new();
    for io in slow {
        statuses.push(answer_then_close(io).await);
    }
    assert_eq!(statuses, [408, 408], "cut off at the body deadline");
    let res = app.im("POST", send, b"hi").await;
    assert_eq!(res.status, 200, "{}", res.body);
}
