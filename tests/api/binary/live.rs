//! Rooms and RT over the binary protocol, beside JSON clients in the same rooms.

use std::time::Duration;

use serde_json::json;

use super::client::*;
use crate::helpers::*;

/// ROOM_IM / RT fields: (sender, receiver or room, content).
fn live_fields(f: &Got) -> (i64, i64, String) {
    let text = String::from_utf8(f.body[16..].to_vec()).unwrap_or_else(|e| panic!("{e}"));
    (f.i64_at(0), f.i64_at(8), text)
}

async fn settle(c: &mut Client) {
    c.send(PING, 0, &[]).await;
    c.until(PONG).await;
}

#[actix_web::test]
async fn room_messages_reach_binary_and_json_members_except_the_sender() {
    let app = spawn_app(Backend::Memory).await;
    let mut a = Client::online(&app, 1, Over::Tcp, 2).await;
    let mut b = Client::online(&app, 2, Over::Ws, 1).await;
    let mut c = app.online(3, 3, "web").await;
    a.key(ENTER_ROOM, 5).await;
    b.key(ENTER_ROOM, 5).await;
    c.send(json!({"type": "enter_room", "room_id": 5})).await;
    c.recv_type("room").await;
    settle(&mut a).await;
    settle(&mut b).await;
    let seq = a.send(ROOM_IM, 0, &room_body(1, 5, "hi room")).await;
    let ack = a.recv().await;
    assert_eq!(
        (ack.cmd, ack.body.clone()),
        (ACK, [seq.to_be_bytes().to_vec(), vec![0]].concat()),
        "plain ACK, no METADATA"
    );
    let got = b.recv().await;
    assert_eq!((got.cmd, got.flag, got.version), (ROOM_IM, 0, 1));
    assert_eq!(live_fields(&got), (1, 5, "hi room".into()));
    let m = c.recv_type("message").await;
    assert_eq!(
        (m["kind"].as_str(), m["content"].as_str()),
        (Some("room"), Some("hi room"))
    );
    // A JSON member and an app server speak: binary members hear both.
    c.send(json!({"type": "send", "kind": "room", "to": 5, "content": "from json", "ref": 1}))
        .await;
    c.recv_type("ack").await; // sent before the app server's
    app.post(
        "/messages/rooms",
        json!({"sender": 9, "receiver": 5, "content": "from http"}),
    )
    .await
    .data();
    for text in ["from json", "from http"] {
        assert_eq!(live_fields(&a.recv().await).2, text);
        assert_eq!(live_fields(&b.recv().await).2, text);
    }
    assert_eq!(c.recv_type("message").await["content"], "from http");
    // Another room than the connection's: no ACK, nobody hears it.
    a.send(ROOM_IM, 0, &room_body(1, 6, "wrong room")).await;
    settle(&mut a).await;
    // Left: nothing more arrives.
    b.key(LEAVE_ROOM, 5).await;
    settle(&mut b).await;
    a.send(ROOM_IM, 0, &room_body(1, 5, "after leaving")).await;
    assert_eq!(a.recv().await.cmd, ACK);
    b.silence(Duration::from_millis(300)).await;
    // Forbidden to speak, applied to the open connection at once: no ACK, not delivered.
    app.post("/users/1", json!({"forbidden": true}))
        .await
        .data();
    a.send(ROOM_IM, 0, &room_body(1, 5, "forbidden")).await;
    a.send(PING, 0, &[]).await;
    let frames = a.until(PONG).await;
    assert!(frames.iter().all(|f| f.cmd != ACK), "{frames:?}");
    let m = c.recv_type("message").await;
    assert_eq!(
        m["content"], "after leaving",
        "the forbidden message never came"
    );
}

#[actix_web::test]
async fn rt_reaches_the_receivers_open_connections_in_both_protocols() {
    let app = spawn_app(Backend::Memory).await;
    let mut a = Client::online(&app, 1, Over::Ws, 1).await;
    let mut b = Client::online(&app, 2, Over::Tcp, 2).await;
    let mut b_json = app.online(2, 3, "web").await;
    a.send(RT, 0, &room_body(1, 2, "typing")).await;
    let got = b.recv().await;
    assert_eq!((got.cmd, got.flag), (RT, 0));
    assert_eq!(live_fields(&got), (1, 2, "typing".into()));
    let m = b_json.recv_type("message").await;
    assert_eq!(
        (m["kind"].as_str(), m["content"].as_str()),
        (Some("rt"), Some("typing"))
    );
    // No ACK for RT; a forged sender is dropped.
    a.send(RT, 0, &room_body(7, 2, "forged")).await;
    a.send(PING, 0, &[]).await;
    let frames = a.until(PONG).await;
    assert!(frames.iter().all(|f| f.cmd != ACK), "{frames:?}");
    b.silence(Duration::from_millis(300)).await;
}

/// ROOM_IM / RT body: sender, room or receiver, content.
fn room_body(sender: u64, to: u64, text: &str) -> Vec<u8> {
    let mut b = (sender as i64).to_be_bytes().to_vec();
    b.extend_from_slice(&(to as i64).to_be_bytes());
    b.extend_from_slice(text.as_bytes());
    b
}
