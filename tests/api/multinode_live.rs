//! Live-only messages on several nodes (README "Running several nodes", Rooms and RT): a chat
//! room with members on two nodes and sends through a third, RT to a receiver whose devices
//! are on other nodes — three real node processes on one private redis-server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::multinode::{Cluster, device, drain, post};
use crate::rooms::enter;

const QUIET: Duration = Duration::from_millis(300);

/// The live messages of `kind` among `got`: (id, sender, content), in arrival order.
fn live(got: &[Value], kind: &str) -> Vec<(u64, u64, String)> {
    got.iter()
        .filter(|m| m["kind"] == kind)
        .map(|m| {
            assert!(m.get("seq").is_none(), "a live message has no seq: {m}");
            let content = m["content"].as_str().unwrap_or_default().to_string();
            (
                m["id"].as_u64().unwrap_or(0),
                m["sender"].as_u64().unwrap_or(0),
                content,
            )
        })
        .collect()
}

#[actix_web::test]
async fn a_room_message_reaches_its_members_on_every_node_once() {
    let cluster = Cluster::start(3);
    cluster.ready().await;
    let n = &cluster.nodes;
    let room = 41;
    // Members on nodes 0 and 1 (user 2 on both); a connection in another room on node 1.
    let mut a = device(&n[0], 1, 1, "a").await;
    let mut b0 = device(&n[0], 2, 1, "b0").await;
    let mut b1 = device(&n[1], 2, 3, "b1").await;
    let mut c = device(&n[1], 3, 1, "c").await;
    let mut other = device(&n[1], 4, 1, "o").await;
    for ws in [&mut a, &mut b0, &mut b1, &mut c] {
        enter(ws, room).await;
    }
    enter(&mut other, room + 1).await;
    // An app server's send through node 2, where nobody is in the room.
    let mut sent = Vec::new();
    for i in 0..5 {
        let body = json!({"sender": 9, "receiver": room, "content": format!("h{i}")});
        let (s, r) = post(&n[2], "/messages/rooms", body).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["data"]["devices"], 0, "nobody in the room on node 2: {r}");
        sent.push((r["data"]["msg_id"].as_u64().unwrap(), 9, format!("h{i}")));
    }
    let got = live(&drain(&mut a, QUIET).await, "room");
    assert_eq!(
        got, sent,
        "a on n0: the server's room messages once, in order"
    );
    // A member's send on node 0: everyone but the sending connection, on both nodes.
    for i in 0..5 {
        let content = format!("a{i}");
        a.send(json!({"type": "send", "kind": "room", "to": room, "content": content, "ref": i}))
            .await;
        let ack = a.recv_type("ack").await;
        sent.push((ack["id"].as_u64().unwrap(), 1, content));
    }
    for (name, ws, want) in [
        ("b0 on n0", &mut b0, sent.clone()),
        ("b1 on n1", &mut b1, sent.clone()),
        ("c on n1", &mut c, sent),
        ("a on n0 (the sender)", &mut a, Vec::new()),
    ] {
        let got = live(&drain(ws, QUIET).await, "room");
        assert_eq!(got, want, "{name}: every room message once, in order");
    }
    assert!(
        drain(&mut other, QUIET).await.is_empty(),
        "another room hears nothing"
    );
    // Left on node 1: no more messages there.
    c.send(json!({"type": "leave_room", "ref": "l"})).await;
    c.recv_type("room").await;
    let body = json!({"sender": 9, "receiver": room, "content": "after"});
    let (s, r) = post(&n[2], "/messages/rooms", body).await;
    assert_eq!(s, 200, "{r}");
    assert!(
        drain(&mut c, QUIET).await.is_empty(),
        "a leaver hears nothing"
    );
    assert_eq!(live(&drain(&mut b1, QUIET).await, "room").len(), 1);
}

#[actix_web::test]
async fn an_rt_message_reaches_the_receivers_devices_on_other_nodes_once() {
    let cluster = Cluster::start(3);
    cluster.ready().await;
    let n = &cluster.nodes;
    let mut a = device(&n[0], 1, 1, "a").await;
    let mut a2 = device(&n[2], 1, 3, "a2").await;
    let mut b1 = device(&n[1], 2, 1, "b1").await;
    let mut b2 = device(&n[2], 2, 3, "b2").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let content = format!("t{i}");
        a.send(json!({"type": "send", "kind": "rt", "to": 2, "content": content, "ref": i}))
            .await;
        let ack = a.recv_type("ack").await;
        sent.push((ack["id"].as_u64().unwrap(), 1, content));
    }
    for (name, ws) in [("b1 on n1", &mut b1), ("b2 on n2", &mut b2)] {
        let got = live(&drain(ws, QUIET).await, "rt");
        assert_eq!(got, sent, "{name}: every RT message once, in order");
    }
    for ws in [&mut a, &mut a2] {
        assert!(
            live(&drain(ws, QUIET).await, "rt").is_empty(),
            "not to the sender's devices"
        );
    }
    // Nothing stored: the receiver's sync has none of them.
    b1.send(json!({"type": "sync", "after": 0})).await;
    assert_eq!(
        b1.recv_type("sync_end").await,
        json!({"type": "sync_end", "seq": 0, "more": false})
    );
}
