//! Chat rooms (README "Chat rooms"): enter/leave over the JSON channel, room messages from
//! clients and from `POST /messages/rooms`, one room per connection, `forbidden`.

use std::time::Duration;

use im_dispatcher::domain::{AppId, RoomId};
use serde_json::{Value, json};

use crate::helpers::*;

const QUIET: Duration = Duration::from_millis(150);

/// Enters `room` on `ws` and checks the `room` answer (also used by `multinode_live`).
pub(crate) async fn enter(ws: &mut Ws, room: u64) {
    ws.send(json!({"type": "enter_room", "room_id": room, "ref": "e"}))
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "room", "ref": "e", "room_id": room})
    );
}

async fn say(ws: &mut Ws, room: u64, content: &str) -> Value {
    ws.send(json!({"type": "send", "kind": "room", "to": room, "content": content, "ref": "r"}))
        .await;
    ws.recv().await
}

fn assert_room_message(m: &Value, sender: u64, room: u64, content: &str) {
    assert_eq!(m["type"], "message", "{m}");
    assert_eq!(
        (&m["kind"], &m["sender"], &m["receiver"], &m["content"]),
        (
            &json!("room"),
            &json!(sender),
            &json!(room),
            &json!(content)
        ),
        "{m}"
    );
    assert!(m.get("seq").is_none() && m["id"].as_u64().is_some(), "{m}");
}

#[actix_web::test]
async fn a_room_message_reaches_everyone_in_the_room_but_the_sending_connection() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let token1 = app.grant(1).await;
        let mut a = app.ws(&token1, 1, "phone").await;
        let mut a2 = app.ws(&token1, 3, "web").await;
        let mut b = app.online(2, 1, "p").await;
        let mut elsewhere = app.online(3, 1, "p").await;
        let mut no_room = app.online(4, 1, "p").await;
        for ws in [&mut a, &mut a2, &mut b] {
            enter(ws, 5).await;
        }
        enter(&mut elsewhere, 6).await;
        let ack = say(&mut a, 5, "hello room").await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["ref"], "r");
        assert!(
            ack["id"].as_u64().is_some() && ack.get("seq").is_none(),
            "{ack}"
        );
        for ws in [&mut a2, &mut b] {
            let m = ws.recv().await;
            assert_room_message(&m, 1, 5, "hello room");
            assert_eq!(m["id"], ack["id"]);
        }
        for ws in [&mut a, &mut elsewhere, &mut no_room] {
            ws.expect_silence(QUIET).await;
        }
        // Nothing stored: not in sync, not in history, no offline count.
        b.send(json!({"type": "sync", "after": 0})).await;
        assert_eq!(
            b.recv().await,
            json!({"type": "sync_end", "seq": 0, "more": false})
        );
        let token2 = app.grant(2).await;
        let history = app
            .call("GET", "/messages", Some(&format!("Bearer {token2}")), None)
            .await;
        assert_eq!(history.data(), &json!([]));
        let offline = app.get("/messages/offline?uid=2").await;
        assert_eq!(offline.data()["count"], 0);
    }
}

#[actix_web::test]
async fn a_connection_is_in_one_room_at_a_time_and_leaves_it_on_request() {
    let app = spawn_app(Backend::Memory).await;
    let mut a = app.online(1, 1, "p").await;
    let mut b = app.online(2, 1, "p").await;
    enter(&mut a, 5).await;
    enter(&mut b, 5).await;
    enter(&mut a, 6).await; // leaves 5
    let res = app
        .post(
            "/messages/rooms",
            json!({"sender": 9, "receiver": 5, "content": "to five"}),
        )
        .await;
    assert_eq!(res.data()["devices"], 1, "only b is in room 5 now");
    assert_room_message(&b.recv().await, 9, 5, "to five");
    a.expect_silence(QUIET).await;
    // Speaking only in one's own room.
    let refused = say(&mut a, 5, "wrong room").await;
    assert_eq!(
        (&refused["type"], &refused["error"], &refused["ref"]),
        (&json!("error"), &json!("not_in_room"), &json!("r")),
        "{refused}"
    );
    b.expect_silence(QUIET).await;
    // Leaving a room one is not in is refused; leaving one's room works, and again is a no-op.
    a.send(json!({"type": "leave_room", "room_id": 5})).await;
    assert_eq!(a.recv().await["error"], "not_in_room");
    for _ in 0..2 {
        a.send(json!({"type": "leave_room", "ref": 1})).await;
        assert_eq!(
            a.recv().await,
            json!({"type": "room", "ref": 1, "room_id": null})
        );
    }
    let res = app
        .post(
            "/messages/rooms",
            json!({"sender": 9, "receiver": 6, "content": "empty"}),
        )
        .await;
    assert_eq!(res.data()["devices"], 0);
    a.expect_silence(QUIET).await;
}

#[actix_web::test]
async fn a_closed_connection_leaves_its_room() {
    let app = spawn_app(Backend::Memory).await;
    let mut a = app.online(1, 1, "p").await;
    enter(&mut a, 5).await;
    a.close().await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let res = app
            .post(
                "/messages/rooms",
                json!({"sender": 9, "receiver": 5, "content": "anyone?"}),
            )
            .await;
        if res.data()["devices"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still in the room");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.state.dispatcher.room_members(AppId(APP_A), RoomId(5)),
        0
    );
}

#[actix_web::test]
async fn a_forbidden_user_cannot_speak_in_rooms_even_on_an_open_connection() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut a = app.online(1, 1, "p").await;
        let mut b = app.online(2, 1, "p").await;
        enter(&mut a, 5).await;
        enter(&mut b, 5).await;
        assert_eq!(say(&mut a, 5, "before").await["type"], "ack");
        assert_room_message(&b.recv().await, 1, 5, "before");
        app.post("/users/1", json!({"forbidden": true}))
            .await
            .data();
        let refused = say(&mut a, 5, "banned").await;
        assert_eq!(refused["error"], "speak_forbidden", "{refused}");
        app.post(
            "/messages/rooms",
            json!({"sender": 1, "receiver": 5, "content": "via server"}),
        )
        .await
        .assert_error(403, "speak_forbidden");
        b.expect_silence(QUIET).await;
        // Still in the room, still listening. (A server send has no sending connection:
        // every member gets it, the sender's own connections too.)
        let res = app
            .post(
                "/messages/rooms",
                json!({"sender": 2, "receiver": 5, "content": "from b"}),
            )
            .await;
        assert_eq!(res.data()["devices"], 2);
        assert_room_message(&a.recv().await, 2, 5, "from b");
        assert_room_message(&b.recv().await, 2, 5, "from b");
        app.post("/users/1", json!({"forbidden": false}))
            .await
            .data();
        assert_eq!(say(&mut a, 5, "after").await["type"], "ack");
        assert_room_message(&b.recv().await, 1, 5, "after");
    }
}

#[actix_web::test]
async fn room_commands_and_sends_with_bad_input_get_an_error_naming_the_field() {
    let app = spawn_app(Backend::Memory).await;
    let mut a = app.online(1, 1, "p").await;
    let cases = [
        (json!({"type": "enter_room", "room_id": 0}), "room_id"),
        (json!({"type": "enter_room"}), "room_id"),
        (json!({"type": "enter_room", "room_id": "x"}), "enter_room"),
        (json!({"type": "leave_room", "room_id": 0}), "room_id"),
        (
            json!({"type": "send", "kind": "room", "to": 0, "content": "x"}),
            "to",
        ),
        (
            json!({"type": "send", "kind": "room", "to": 5, "content": 3}),
            "content",
        ),
    ];
    for (frame, field) in cases {
        a.send(frame.clone()).await;
        let e = a.recv().await;
        assert_eq!(e["type"], "error", "{frame} → {e}");
        let msg = e["message"].as_str().unwrap_or_default();
        assert!(msg.contains(field), "{frame} → {e}");
    }
    for (body, field) in [
        (
            json!({"sender": 1, "receiver": 0, "content": "x"}),
            "receiver",
        ),
        (json!({"sender": 1, "content": "x"}), "receiver"),
        (
            json!({"sender": 0, "receiver": 5, "content": "x"}),
            "sender",
        ),
        (json!({"sender": 1, "receiver": 5}), "content"),
        (
            json!({"sender": 1, "receiver": 5, "content": []}),
            "content",
        ),
    ] {
        let res = app.post("/messages/rooms", body.clone()).await;
        res.assert_error(400, res.body["meta"]["error"].as_str().unwrap_or("?"));
        assert!(res.message().contains(field), "{body} → {}", res.body);
    }
    let res = app
        .call(
            "POST",
            "/messages/rooms",
            None,
            Some(json!({"sender": 1, "receiver": 5, "content": "x"})),
        )
        .await;
    assert_eq!(res.status, 401, "{}", res.body);
}
