//! RT messages (README "RT messages"): live-only peer messages from a JSON client — to the
//! receiver's open connections, never stored, synced or pushed.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::push::{push_app, settle};

const QUIET: Duration = Duration::from_millis(150);

#[actix_web::test]
async fn an_rt_message_reaches_the_receivers_open_connections_only_and_is_not_stored() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let token1 = app.grant(1).await;
        let mut a = app.ws(&token1, 1, "phone").await;
        let mut a2 = app.ws(&token1, 3, "web").await;
        let token2 = app.grant(2).await;
        let mut b = app.ws(&token2, 1, "phone").await;
        let mut b2 = app.ws(&token2, 3, "web").await;
        a.send(
            json!({"type": "send", "kind": "rt", "to": 2, "content": {"typing": true}, "ref": 4}),
        )
        .await;
        let ack = a.recv().await;
        assert_eq!(
            (&ack["type"], &ack["ref"]),
            (&json!("ack"), &json!(4)),
            "{ack}"
        );
        assert!(
            ack["id"].as_u64().is_some() && ack.get("seq").is_none(),
            "{ack}"
        );
        for ws in [&mut b, &mut b2] {
            let m = ws.recv().await;
            assert_eq!(
                (&m["kind"], &m["sender"], &m["receiver"], &m["content"]),
                (
                    &json!("rt"),
                    &json!(1),
                    &json!(2),
                    &json!(r#"{"typing":true}"#)
                ),
                "{m}"
            );
            assert_eq!(m["id"], ack["id"]);
            assert!(m.get("seq").is_none(), "{m}");
        }
        // Not to the sender's other devices, not stored anywhere.
        a2.expect_silence(QUIET).await;
        for ws in [&mut b, &mut a] {
            ws.send(json!({"type": "sync", "after": 0})).await;
            assert_eq!(
                ws.recv().await,
                json!({"type": "sync_end", "seq": 0, "more": false})
            );
        }
        let history = app
            .call("GET", "/messages", Some(&format!("Bearer {token2}")), None)
            .await;
        assert_eq!(history.data(), &json!([]));
        // To a user with no connection: accepted, reaches nobody, and later connections
        // never see it.
        a.send(json!({"type": "send", "kind": "rt", "to": 3, "content": "gone"}))
            .await;
        assert_eq!(a.recv().await["type"], "ack");
        let mut c = app.online(3, 1, "p").await;
        assert_eq!(c.hello["seq"], 0);
        c.expect_silence(QUIET).await;
    }
}

#[actix_web::test]
async fn rt_and_room_messages_are_never_pushed() {
    let app = push_app().await;
    app.bind_token(2).await;
    app.bind_token(3).await;
    let mut a = app.online(1, 1, "p").await;
    // A web connection does not count as online for push (mute unset): a stored message to
    // 3 would be pushed; room and RT messages are not.
    let mut c = app.ws(&app.grant(3).await, 3, "w").await;
    c.send(json!({"type": "enter_room", "room_id": 5})).await;
    assert_eq!(c.recv().await["type"], "room");
    a.send(json!({"type": "enter_room", "room_id": 5})).await;
    assert_eq!(a.recv().await["type"], "room");
    for (kind, to) in [("rt", 2), ("rt", 3), ("room", 5)] {
        a.send(json!({"type": "send", "kind": kind, "to": to, "content": "live"}))
            .await;
        assert_eq!(a.recv().await["type"], "ack");
    }
    assert_eq!(c.recv_type("message").await["kind"], "rt");
    assert_eq!(c.recv_type("message").await["kind"], "room");
    let before = settle(&app, "rt-marker").await;
    assert!(before.is_empty(), "pushed: {before:?}");
}

#[actix_web::test]
async fn rt_sends_with_bad_input_get_an_error_naming_the_field() {
    let app = spawn_app(Backend::Memory).await;
    let mut a = app.online(1, 1, "p").await;
    for (frame, field) in [
        (
            json!({"type": "send", "kind": "rt", "to": 0, "content": "x"}),
            "to",
        ),
        (
            json!({"type": "send", "kind": "rt", "to": 2, "content": null}),
            "content",
        ),
        (json!({"type": "send", "kind": "rt", "to": 2}), "content"),
    ] {
        a.send(frame.clone()).await;
        let e = a.recv().await;
        assert_eq!(e["type"], "error", "{frame} → {e}");
        assert!(
            e["message"].as_str().is_some_and(|m| m.contains(field)),
            "{frame} → {e}"
        );
    }
}
