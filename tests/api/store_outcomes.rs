//! Issue 11 item 5: a 503 says whether the send was refused (nothing stored) or timed out with
//! an unknown outcome (retry with the same idempotency key), against a real Redis that is made
//! to refuse writes (`maxmemory`) or to stall (`DEBUG SLEEP`).

use std::time::Duration;

use redis::Commands;
use serde_json::json;

use crate::helpers::*;
use crate::redis_server::Dedicated;

fn inbox(redis: &Dedicated, uid: u64) -> Vec<String> {
    redis
        .connection()
        .lrange(format!("imd:inbox:{{{APP_A}:{uid}}}"), 0, -1)
        .unwrap()
}

async fn send(app: &TestApp, key: &str, text: &str) -> Res {
    let res = app
        .client
        .post(format!("{}/messages/peers", app.base))
        .insert_header(("Authorization", app.auth_a()))
        .insert_header(("Idempotency-Key", key))
        .send_json(&json!({"sender": 1, "receiver": 2, "content": text}))
        .await
        .unwrap();
    let mut res = res;
    let headers = res.headers().clone();
    let body = res.json().await.unwrap();
    Res {
        status: res.status().as_u16(),
        body,
        headers,
    }
}

fn redis_config(redis: &Dedicated, key: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(key)
        .arg(value)
        .query(&mut redis.connection())
        .unwrap();
}

#[actix_web::test]
async fn a_503_says_whether_the_send_was_refused_or_may_have_been_stored() {
    let redis = Dedicated::start("everysec");
    let (mut s, _) = test_settings(Backend::Memory);
    s.store.kind = im_dispatcher::config::StoreKind::Redis;
    s.store.redis_url = redis.url();
    s.store.timeout_ms = 300;
    let app = spawn_with(s, None).await;
    send(&app, "warm", "warm").await.data();
    let mut ws = app.online(1, 1, "p").await;

    // Refused: Redis is out of memory and says so; nothing is stored.
    redis_config(&redis, "maxmemory", "1");
    let res = send(&app, "refused", "refused").await;
    res.assert_error(503, "store_unavailable");
    assert!(res.headers.contains_key("retry-after"));
    redis_config(&redis, "maxmemory", "0");
    assert_eq!(inbox(&redis, 2).len(), 1, "a refused send stored nothing");

    // Stalled: Redis runs the send after the stall, long after the 300 ms timeout.
    let conn = redis.connection();
    let stall = std::thread::spawn(move || {
        let mut conn = conn;
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("1.5")
            .query::<()>(&mut conn)
    });
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let res = send(&app, "stalled", "during the stall").await;
    res.assert_error(503, "outcome_unknown");
    assert!(res.headers.contains_key("retry-after"));
    assert!(
        res.message().contains("Idempotency-Key"),
        "the message says how to retry: {}",
        res.body
    );
    ws.send(json!({"type": "send", "kind": "peer", "to": 2, "content": "ws", "ref": "w1"}))
        .await;
    let e = ws.recv_type("error").await;
    assert_eq!(
        (e["error"].as_str(), e["ref"].as_str()),
        (Some("outcome_unknown"), Some("w1"))
    );
    stall.join().unwrap().unwrap();

    // It was stored after all; the retries with the same keys return it, not a copy.
    let stored = inbox(&redis, 2);
    assert_eq!(stored.len(), 3, "{stored:?}");
    let id_of = |text: &str| {
        stored
            .iter()
            .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap())
            .find(|m| m["content"] == text)
            .map(|m| m["id"].clone())
            .unwrap_or_else(|| panic!("{text:?} is not stored: {stored:?}"))
    };
    let retried = send(&app, "stalled", "during the stall").await;
    assert_eq!(retried.data()["msg_id"], id_of("during the stall"));
    ws.send(json!({"type": "send", "kind": "peer", "to": 2, "content": "ws", "ref": "w1"}))
        .await;
    assert_eq!(ws.recv_type("ack").await["id"], id_of("ws"));
    assert_eq!(inbox(&redis, 2).len(), 3, "each send stored once");
}
