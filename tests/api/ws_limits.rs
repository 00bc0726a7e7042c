//! WebSocket input limits (issue 11 items 1, 6 and 10): a frame too large is refused on its
//! header, `ref` has one limit and one error, `sync` with `limit: 0` is an error.

use serde_json::json;

use crate::helpers::*;
use crate::process;

/// A masked text frame header declaring `len` payload bytes (64-bit length form).
fn header_declaring(len: u64) -> Vec<u8> {
    let mut h = vec![0x81, 0xff];
    h.extend(len.to_be_bytes());
    h.extend([0x37, 0xfa, 0x21, 0x3d]);
    h
}

#[actix_web::test]
async fn a_frame_declaring_more_than_the_limit_is_refused_on_its_header() {
    let server = process::Server::start(&[("IMD_LOG__LEVEL", "warn".into())]);
    let token = server.grant(1).await;
    let connect = || async {
        let (_, framed) = awc::Client::new()
            .ws(format!("ws://{}/ws?token={token}", server.addr))
            .connect()
            .await
            .unwrap();
        Ws::from_framed(framed).await
    };
    // 1 TiB declared, none of it sent: the header alone is refused.
    let mut ws = connect().await;
    ws.send_wire(&header_declaring(1 << 40)).await;
    assert_eq!(ws.next(WAIT).await, Some(Err(1009)), "closed on the header");
    // A client streaming the payload anyway makes the server hold none of it.
    let mut ws = connect().await;
    let baseline = server.rss();
    let chunk = vec![0x5a; 64 << 10];
    let (mut sent, mut peak) = (0usize, baseline);
    let started = std::time::Instant::now();
    let mut open = ws.send_wire(&header_declaring(1 << 40)).await;
    while open && started.elapsed() < WAIT {
        open = ws.send_wire(&chunk).await;
        sent += chunk.len();
        if sent % (1 << 20) == 0 {
            peak = peak.max(server.rss());
        }
    }
    peak = peak.max(server.rss());
    eprintln!(
        "oversized frame: {} MiB streamed in {:?} before the server closed; RSS {} → peak {} KiB",
        sent >> 20,
        started.elapsed(),
        baseline >> 10,
        peak >> 10
    );
    assert!(!open, "the server closed the connection within {WAIT:?}");
    assert!(
        peak < baseline + (8 << 20),
        "RSS grew from {baseline} to {peak} while the payload streamed"
    );
}

#[actix_web::test]
async fn a_ref_has_one_limit_and_one_error() {
    let app = spawn_app(Backend::Memory).await;
    let mut ws = app.online(1, 1, "p").await;
    for len in [129, 254, 255, 5_000] {
        let r = "r".repeat(len);
        ws.send(json!({"type": "send", "kind": "peer", "to": 2, "content": "x", "ref": r}))
            .await;
        let e = ws.recv().await;
        assert_eq!(
            (e["type"].as_str(), e["error"].as_str()),
            (Some("error"), Some("invalid_frame")),
            "a {len}-byte ref: {e}"
        );
        assert!(e["ref"].is_null(), "an invalid ref is not echoed: {e}");
        assert!(e["message"].as_str().unwrap().contains("`ref`"), "{e}");
    }
    for bad in [json!(true), json!([1]), json!({"a": 1}), json!("")] {
        ws.send(json!({"type": "ping", "ref": bad})).await;
        assert_eq!(ws.recv().await["error"], "invalid_frame", "ref {bad}");
    }
    let offline = app.get("/messages/offline?uid=2").await;
    assert_eq!(offline.data()["count"], 0, "nothing was sent");
    // At the limit: accepted, and the same ref twice is one send.
    let r = "r".repeat(128);
    let mut ids = Vec::new();
    for _ in 0..2 {
        ws.send(json!({"type": "send", "kind": "peer", "to": 2, "content": "x", "ref": r}))
            .await;
        let ack = ws.recv_type("ack").await;
        assert_eq!(ack["ref"], r.as_str());
        ids.push(ack["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    let offline = app.get("/messages/offline?uid=2").await;
    assert_eq!(offline.data()["count"], 1);
}

#[actix_web::test]
async fn sync_with_limit_zero_is_an_error_and_a_larger_limit_pages() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.limits.sync_batch = 2;
    let app = spawn_with(s, None).await;
    for i in 0..3 {
        app.post(
            "/messages/peers",
            json!({"sender": 2, "receiver": 1, "content": format!("{i}")}),
        )
        .await
        .data();
    }
    let mut ws = app.online(1, 1, "p").await;
    ws.send(json!({"type": "sync", "after": 0, "limit": 0, "ref": "s"}))
        .await;
    let e = ws.recv().await;
    assert_eq!(
        (e["error"].as_str(), e["ref"].as_str()),
        (Some("invalid_frame"), Some("s")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("`limit`"), "{e}");
    ws.send(json!({"type": "sync", "after": 0, "limit": 1}))
        .await;
    assert_eq!(ws.recv().await["seq"], 1);
    assert_eq!(
        ws.recv().await,
        json!({"type": "sync_end", "seq": 1, "more": true})
    );
    // Past the page size: one page, then `more`.
    ws.send(json!({"type": "sync", "after": 1, "limit": 1000}))
        .await;
    assert_eq!(ws.recv().await["seq"], 2);
    assert_eq!(ws.recv().await["seq"], 3);
    assert_eq!(
        ws.recv().await,
        json!({"type": "sync_end", "seq": 3, "more": false})
    );
}
