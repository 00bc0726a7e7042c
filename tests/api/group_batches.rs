//! A group's sends are stored together (`dispatch/group/batch.rs`): sends that queue while the
//! store is busy go to Redis in one round-trip, in order, and a membership change that arrives
//! among them keeps its place in the group's one order. Against a private Redis stalled with
//! `DEBUG SLEEP`, so that the sends really queue.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::redis_server::Dedicated;

const MEMBERS: u64 = 12;
/// Concurrent senders (members 1..=SENDERS), two messages each, one after the other.
const SENDERS: u64 = 10;
/// Removed while the sends queue.
const LEAVER: u64 = MEMBERS;

/// (count, sum) of the batch-size histogram, over the whole test process.
async fn batches(app: &TestApp) -> (f64, f64) {
    let res = app.call("GET", "/metrics", None, None).await;
    let text = res.body.as_str().unwrap_or_default().to_string();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("imd_group_batch_messages_count"),
        value("imd_group_batch_messages_sum"),
    )
}

/// Posts as app A's server from a task of its own: (status, body).
#[derive(Clone)]
struct Poster {
    base: String,
    auth: String,
}

impl Poster {
    fn of(app: &TestApp) -> Poster {
        Poster {
            base: app.base.clone(),
            auth: app.auth_a(),
        }
    }

    async fn call(&self, method: awc::http::Method, path: &str, body: Value) -> (u16, Value) {
        let mut res = awc::Client::new()
            .request(method, format!("{}{path}", self.base))
            .insert_header(("Authorization", self.auth.clone()))
            .send_json(&body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let value = res.json().await.unwrap_or(Value::Null);
        (res.status().as_u16(), value)
    }

    async fn send(&self, sender: u64, gid: u64, content: &str) -> (u16, Value) {
        let body = json!({"sender": sender, "receiver": gid, "content": content});
        self.call(awc::http::Method::POST, "/messages/groups", body)
            .await
    }
}

/// Stalls the Redis for `secs` (from another thread), and waits until the stall has begun.
async fn stall(redis: &Dedicated, secs: &str) -> std::thread::JoinHandle<redis::RedisResult<()>> {
    let mut conn = redis.connection();
    let secs = secs.to_string();
    let t = std::thread::spawn(move || redis::cmd("DEBUG").arg("SLEEP").arg(secs).query(&mut conn));
    actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    t
}

/// An app on the private `redis`, with a store timeout longer than the stalls.
async fn app_on(redis: &Dedicated) -> TestApp {
    let (mut s, _) = test_settings(Backend::Memory);
    s.store.kind = im_dispatcher::config::StoreKind::Redis;
    s.store.redis_url = redis.url();
    s.store.timeout_ms = 5_000;
    spawn_with(s, None).await
}

/// A group of `members`, mastered by the first; its id.
async fn create_group(app: &TestApp, members: &[u64], is_super: bool) -> u64 {
    let master = members.first().copied().unwrap_or(1);
    let body = json!({"master": master, "name": "g", "super": is_super, "members": members});
    let res = app.post("/groups", body).await;
    res.data()["group_id"].as_u64().unwrap_or_default()
}

/// A group of members 1..=MEMBERS, every one of them online.
async fn group_online(app: &TestApp, is_super: bool) -> (u64, Vec<Ws>) {
    let members: Vec<u64> = (1..=MEMBERS).collect();
    let gid = create_group(app, &members, is_super).await;
    let mut clients = Vec::new();
    for uid in 1..=MEMBERS {
        clients.push(app.online(uid, 1, "p").await);
    }
    (gid, clients)
}

/// Every member but the leaver got every message once, in one order, each sender's two in the
/// order sent; the leaver (the last member), removed among the sends, exactly those stored
/// before its removal.
async fn assert_one_order(clients: &mut [Ws], is_super: bool) {
    let quiet = Duration::from_millis(500);
    let first = clients[0].group_contents(quiet).await;
    assert_eq!(
        first.len(),
        1 + 2 * SENDERS as usize,
        "super={is_super}: {first:?}"
    );
    for sender in 1..=SENDERS {
        let own: Vec<String> = first
            .iter()
            .filter(|c| c.starts_with(&format!("{sender}-")))
            .cloned()
            .collect();
        assert_eq!(own, [format!("{sender}-0"), format!("{sender}-1")]);
    }
    let (leaver, others) = clients
        .split_last_mut()
        .unwrap_or_else(|| panic!("no members"));
    for (i, ws) in others.iter_mut().enumerate().skip(1) {
        let order = ws.group_contents(quiet).await;
        assert_eq!(
            order,
            first,
            "super={is_super}: member {} sees the one order",
            i + 1
        );
    }
    let left = leaver.group_contents(quiet).await;
    assert!(
        first.starts_with(&left) && left.len() < first.len(),
        "super={is_super}: the leaver's messages {left:?} are a beginning of {first:?}"
    );
}

#[actix_web::test]
async fn sends_queued_behind_a_busy_store_go_together_in_order_and_a_change_keeps_its_place() {
    let redis = Dedicated::start("everysec");
    for is_super in [false, true] {
        let app = app_on(&redis).await;
        let (gid, mut clients) = group_online(&app, is_super).await;
        let poster = Poster::of(&app);
        assert_eq!(poster.send(1, gid, "first").await.0, 200);
        let before = batches(&app).await;

        let stalled = stall(&redis, "0.6").await;
        let mut tasks = Vec::new();
        for sender in 1..=SENDERS {
            let each = poster.clone();
            tasks.push(actix_web::rt::spawn(async move {
                for i in 0..2 {
                    let (status, body) = each.send(sender, gid, &format!("{sender}-{i}")).await;
                    assert_eq!(status, 200, "send {sender}-{i}: {body}");
                }
            }));
            if sender == SENDERS / 2 {
                let poster = poster.clone();
                tasks.push(actix_web::rt::spawn(async move {
                    let path = format!("/groups/{gid}/members/{LEAVER}");
                    let (status, body) = poster
                        .call(awc::http::Method::DELETE, &path, Value::Null)
                        .await;
                    assert_eq!(status, 200, "remove: {body}");
                }));
            }
        }
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("sender: {e}"));
        }
        stalled.join().ok();
        let after = batches(&app).await;

        assert_one_order(&mut clients, is_super).await;
        // Twenty sends queued behind the stall: far fewer round-trips than messages. Other
        // tests' sends can only add batches of their own, never take messages out of one.
        let (batches, messages) = (after.0 - before.0, after.1 - before.1);
        assert!(
            messages - batches >= SENDERS as f64,
            "super={is_super}: {messages} messages stored in {batches} batches"
        );
    }
}

/// Sends that the store refuses fail alone: the other sends of their batch are stored.
#[actix_web::test]
async fn a_refused_send_in_a_batch_fails_alone() {
    let redis = Dedicated::start("everysec");
    let app = app_on(&redis).await;
    let gid = create_group(&app, &[1, 2, 3], false).await;
    let mut ws = app.online(2, 1, "p").await;
    // Member 3 is muted; its send, queued among the others, is refused alone.
    let poster = Poster::of(&app);
    let path = format!("/groups/{gid}/members/3");
    let (status, body) = poster
        .call(awc::http::Method::PATCH, &path, json!({"mute": true}))
        .await;
    assert_eq!(status, 200, "mute: {body}");
    let stalled = stall(&redis, "0.4").await;
    let mut tasks = Vec::new();
    for (sender, content) in [(1, "a"), (3, "muted"), (1, "b"), (2, "c")] {
        let poster = poster.clone();
        tasks.push(actix_web::rt::spawn(async move {
            (content, poster.send(sender, gid, content).await)
        }));
    }
    for t in tasks {
        let (content, (status, body)) = t.await.unwrap_or_else(|e| panic!("sender: {e}"));
        match content {
            "muted" => assert_eq!(
                (status, body["meta"]["error"].as_str()),
                (403, Some("member_muted"))
            ),
            _ => assert!(
                status == 200 && body["data"]["msg_id"].is_u64(),
                "{content}: {body}"
            ),
        }
    }
    stalled.join().ok();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = ws.recv().await;
        seen.push(m["content"].as_str().unwrap_or_default().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["a", "b", "c"], "each accepted send once");
    ws.expect_silence(Duration::from_millis(200)).await;
}

/// Redis lost its scripts (a restart, `SCRIPT FLUSH`): every call of the next pipeline misses,
/// none of them ran, so the batch is sent again once the script is loaded — each message
/// stored once.
#[actix_web::test]
async fn a_batch_after_redis_lost_its_scripts_is_stored_once() {
    let redis = Dedicated::start("everysec");
    let app = app_on(&redis).await;
    let gid = create_group(&app, &[1, 2, 3], false).await;
    let poster = Poster::of(&app);
    assert_eq!(poster.send(1, gid, "before").await.0, 200);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut redis.connection())
        .unwrap_or_else(|e| panic!("SCRIPT FLUSH: {e}"));
    let stalled = stall(&redis, "0.4").await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let poster = poster.clone();
        let content = format!("after-{i}");
        tasks.push(actix_web::rt::spawn(async move {
            poster.send(1 + i % 3, gid, &content).await
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap_or_else(|e| panic!("sender: {e}"));
        assert_eq!(status, 200, "{body}");
    }
    stalled.join().ok();
    let stored: Vec<String> = redis::Commands::lrange(
        &mut redis.connection(),
        format!("imd:inbox:{{{APP_A}:2}}"),
        0,
        -1,
    )
    .unwrap_or_else(|e| panic!("inbox: {e}"));
    let mut contents: Vec<String> = stored
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter(|m| m["kind"] == "group")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect();
    contents.sort();
    let mut expected: Vec<String> = (0..6).map(|i| format!("after-{i}")).collect();
    expected.push("before".into());
    expected.sort();
    assert_eq!(contents, expected, "each message stored once: {stored:?}");
}
