//! A super group keeps its fan-out targets between messages while nothing changes (README
//! "Performance", `group/targets.rs`). Between messages sent one after another, members
//! connect a second device, come online, go offline and come back, are removed and added,
//! and a member sends from a socket: after each change every connection gets exactly the
//! messages it should — none for a removed member or a closed socket, none missed by a new
//! connection, never one twice, the sending socket not its own — against both stores.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// One open connection and the group messages it must have received, in order.
struct Conn {
    name: String,
    ws: Ws,
    expected: Vec<String>,
    got: Vec<String>,
}

impl Conn {
    async fn open(app: &TestApp, uid: u64, device: &str) -> Conn {
        Conn {
            name: format!("{uid}/{device}"),
            ws: app.online(uid, 1, device).await,
            expected: Vec::new(),
            got: Vec::new(),
        }
    }

    /// Reads group messages until the last expected one is in, then compares.
    async fn caught_up(&mut self) {
        let Some(last) = self.expected.last().cloned() else {
            return;
        };
        while self.got.last() != Some(&last) {
            let m: Value = match self.ws.next(Duration::from_secs(10)).await {
                Some(Ok(m)) => m,
                other => panic!(
                    "{}: {other:?} waiting for {last}, got {:?}",
                    self.name, self.got
                ),
            };
            if m["kind"] == "group" {
                self.got
                    .push(m["content"].as_str().unwrap_or_default().into());
            }
            assert!(
                self.got.len() <= self.expected.len(),
                "{}: {:?}",
                self.name,
                self.got
            );
        }
        assert_eq!(self.got, self.expected, "{}", self.name);
    }

    /// Nothing more comes (no late copy, nothing for a removed member).
    async fn done(mut self) {
        self.caught_up().await;
        while let Some(Ok(m)) = self.ws.next(Duration::from_millis(300)).await {
            assert_ne!(m["kind"], "group", "{}: unexpected {m}", self.name);
        }
    }
}

/// The connections open in the test, by name.
struct Online(Vec<Conn>);

impl Online {
    /// `content` from `sender` over HTTP, answered: every connection `to` names expects it.
    async fn send(&mut self, app: &TestApp, gid: u64, content: &str, to: impl Fn(&str) -> bool) {
        let body = json!({"sender": 1, "receiver": gid, "content": content});
        app.post("/messages/groups", body).await.data();
        self.expect(content, to).await;
    }

    async fn expect(&mut self, content: &str, to: impl Fn(&str) -> bool) {
        for c in self.0.iter_mut().filter(|c| to(&c.name)) {
            c.expected.push(content.into());
            c.caught_up().await;
        }
    }

    fn take(&mut self, name: &str) -> Conn {
        let i = self.0.iter().position(|c| c.name == name);
        self.0
            .remove(i.unwrap_or_else(|| panic!("no connection {name}")))
    }
}

async fn super_group(app: &TestApp, members: impl Iterator<Item = u64>) -> u64 {
    let members: Vec<u64> = members.collect();
    let body = json!({"master": 1, "name": "g", "super": true, "members": members});
    let res = app.post("/groups", body).await;
    res.data()["group_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}", res.body))
}

#[actix_web::test]
async fn kept_super_group_targets_follow_every_connect_disconnect_join_and_leave() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let gid = super_group(&app, 1..=30).await;
        let mut on = Online(Vec::new());
        for uid in 1..=20 {
            on.0.push(Conn::open(&app, uid, "a").await);
        }
        let everyone = |_: &str| true;
        on.send(&app, gid, "m0", everyone).await;
        on.send(&app, gid, "m1", everyone).await; // the targets of m0 again

        on.0.push(Conn::open(&app, 3, "b").await); // a second device of a member online
        on.send(&app, gid, "m2", everyone).await;
        on.0.push(Conn::open(&app, 21, "a").await); // a member comes online
        on.send(&app, gid, "m3", everyone).await;

        let path = format!("/groups/{gid}/members/5");
        app.call("DELETE", &path, Some(&app.auth_a()), None)
            .await
            .data();
        let not_5 = |n: &str| !n.starts_with("5/");
        on.send(&app, gid, "m4", not_5).await;

        on.take("6/a").done().await; // closed: nothing is written to it any more
        on.take("7/a").done().await;
        on.send(&app, gid, "m5", not_5).await;
        on.0.push(Conn::open(&app, 6, "c").await); // back, on a new connection
        on.send(&app, gid, "m6", not_5).await;

        let outsider = Conn::open(&app, 40, "a").await; // online, then added
        on.0.push(outsider);
        on.send(&app, gid, "m7", |n| not_5(n) && !n.starts_with("40/"))
            .await;
        let add = json!({"members": [40]});
        app.post(&format!("/groups/{gid}/members"), add)
            .await
            .data();
        on.send(&app, gid, "m8", not_5).await;

        // From a member's socket: the others get it, that socket only the ack.
        let ws_send =
            json!({"type": "send", "kind": "group", "to": gid, "content": "m9", "ref": 1});
        for content in ["m9", "m10"] {
            let sender = on.0.iter_mut().find(|c| c.name == "3/a").unwrap();
            sender.caught_up().await;
            let mut frame = ws_send.clone();
            frame["content"] = json!(content);
            frame["ref"] = json!(content);
            sender.ws.send(frame).await;
            loop {
                let m = sender.ws.recv().await;
                assert_ne!(m["kind"], "group", "{backend:?}: its own message {m}");
                if m["type"] == "ack" {
                    break;
                }
            }
            on.expect(content, |n| not_5(n) && n != "3/a").await;
        }
        on.send(&app, gid, "m11", not_5).await;
        for c in on.0 {
            c.done().await;
        }
    }
}
