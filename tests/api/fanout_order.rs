//! The fan-out's write path (hubs that queue first and wake their connections in slices,
//! README "Performance"): a serial publisher, each send waiting for the one before, and
//! concurrent publishers at once on one group, normal and super, against both stores. Every
//! member online gets every message once, all in the same order, each publisher's in the
//! order it sent them — with more members than a hub wakes in one slice.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

/// Members online: several wake slices on each of the two workers.
const MEMBERS: u64 = 300;
const SERIAL: usize = 40;
const CONCURRENT: u64 = 4;
const EACH: usize = 10;

async fn group(app: &TestApp, is_super: bool) -> u64 {
    let members: Vec<u64> = (1..=MEMBERS).collect();
    let res = app
        .post(
            "/groups",
            json!({"master": 1, "name": "g", "super": is_super, "members": members}),
        )
        .await;
    res.data()["group_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}", res.body))
}

/// `count` messages from `sender`, each sent once the one before was answered.
fn publisher(
    app: &TestApp,
    sender: u64,
    gid: u64,
    count: usize,
) -> impl Future<Output = ()> + use<> {
    let (base, auth) = (app.base.clone(), app.auth_a());
    async move {
        let client = awc::Client::new();
        for i in 0..count {
            let body =
                json!({"sender": sender, "receiver": gid, "content": format!("{sender}-{i}")});
            let res = client
                .post(format!("{base}/messages/groups"))
                .insert_header(("Authorization", auth.clone()))
                .send_json(&body)
                .await
                .unwrap_or_else(|e| panic!("send {sender}-{i}: {e}"));
            assert_eq!(res.status().as_u16(), 200, "send {sender}-{i}");
        }
    }
}

/// The group messages' contents one member receives, `total` of them.
async fn received(ws: &mut Ws, total: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < total {
        let m: Value = ws.recv().await;
        if m["kind"] == "group" {
            got.push(m["content"].as_str().unwrap_or_default().to_string());
        }
    }
    got
}

/// Each publisher's messages appear in the order it sent them, every message once.
fn assert_each_publishers_order(order: &[String]) {
    let unique: HashSet<&String> = order.iter().collect();
    assert_eq!(unique.len(), order.len(), "no message twice: {order:?}");
    for sender in 1..=1 + CONCURRENT {
        let own: Vec<&String> = order
            .iter()
            .filter(|c| c.starts_with(&format!("{sender}-")))
            .collect();
        let count = if sender == 1 { SERIAL } else { EACH };
        let sent: Vec<String> = (0..count).map(|i| format!("{sender}-{i}")).collect();
        assert_eq!(
            own,
            sent.iter().collect::<Vec<_>>(),
            "publisher {sender}'s order"
        );
    }
}

#[actix_web::test]
async fn a_serial_and_concurrent_publishers_interleave_and_every_member_gets_each_message_once_in_one_order()
 {
    for backend in BACKENDS {
        for is_super in [false, true] {
            let app = spawn_app(backend).await;
            let gid = group(&app, is_super).await;
            let mut clients = Vec::new();
            for uid in 1..=MEMBERS {
                clients.push(app.online(uid, 1, "p").await);
            }
            let mut tasks = vec![actix_web::rt::spawn(publisher(&app, 1, gid, SERIAL))];
            for sender in 2..=1 + CONCURRENT {
                tasks.push(actix_web::rt::spawn(publisher(&app, sender, gid, EACH)));
            }
            for t in tasks {
                t.await.unwrap_or_else(|e| panic!("publisher: {e}"));
            }
            let total = SERIAL + CONCURRENT as usize * EACH;
            let first = received(&mut clients[0], total).await;
            assert_each_publishers_order(&first);
            for (i, ws) in clients.iter_mut().enumerate().skip(1) {
                let order = received(ws, total).await;
                assert_eq!(
                    order,
                    first,
                    "{backend:?} super={is_super}: member {} sees the one order",
                    i + 1
                );
            }
            // Nothing after the last: no copy came late (a few members of each worker).
            let n = clients.len();
            for i in (0..4).chain(n - 4..n) {
                clients[i]
                    .expect_silence(std::time::Duration::from_millis(100))
                    .await;
            }
        }
    }
}
