//! SPEC §6: who gets a push job, checked against the real Redis queues and a webhook.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use im_dispatcher::config::PushSinkKind;
use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::*;

pub(crate) async fn push_app() -> TestApp {
    let (mut s, url) = test_settings(Backend::Redis);
    s.push.sink = PushSinkKind::Redis;
    s.push.flush_interval_ms = 5;
    spawn_with(s, url).await
}

fn queue(app: &TestApp, name: &str) -> Vec<Value> {
    let items: Vec<String> = app.redis().lrange(name, 0, -1).unwrap_or_default();
    items
        .iter()
        .map(|s| serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}")))
        .collect()
}

/// Waits until `name` holds at least `n` jobs.
async fn wait_queue(app: &TestApp, name: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let q = queue(app, name);
        if q.len() >= n || Instant::now() > deadline {
            return q;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn send(app: &TestApp, sender: u64, receiver: u64, content: &str) {
    let res = app
        .post(
            "/messages/peers",
            json!({"sender": sender, "receiver": receiver, "content": content}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
}

/// Sends a marker to an always-offline user and waits until it is queued: every job submitted
/// before it has been written by then, so the queue can be checked for what is not there.
pub(crate) async fn settle(app: &TestApp, marker: &str) -> Vec<Value> {
    app.bind_token(999).await;
    send(app, 1, 999, marker).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let q = queue(app, "push_queue");
        if let Some(at) = q.iter().position(|j| j["content"] == json!(marker)) {
            assert_eq!(at, q.len() - 1, "jobs after the marker: {q:?}");
            return q[..at].to_vec();
        }
        assert!(Instant::now() < deadline, "the marker never came: {q:?}");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn a_fully_offline_receiver_gets_a_push_job_with_its_device_tokens_newest_first() {
    let app = push_app().await;
    app.post("/users/2/bind", json!({"apns_device_token": "apns-2"}))
        .await;
    // Bind times are in seconds: make the second one newer.
    app.redis()
        .hset::<_, _, _, ()>("users_7_2", "apns_timestamp", 1000)
        .unwrap_or_default();
    app.post("/users/2/bind", json!({"gcm_device_token": "gcm-2"}))
        .await;
    send(&app, 1, 2, "hi there").await;
    let q = wait_queue(&app, "push_queue", 1).await;
    assert_eq!(q.len(), 1, "{q:?}");
    let job = &q[0];
    assert_eq!(
        (
            job["appid"].clone(),
            job["sender"].clone(),
            job["receiver"].clone()
        ),
        (json!(APP_A), json!(1), json!(2))
    );
    assert_eq!(job["content"], "hi there");
    let tokens: Vec<&str> = job["device_tokens"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["token"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(tokens, vec!["gcm-2", "apns-2"]);
    assert_eq!(job["device_tokens"][0]["provider"], "gcm");
    // The receiver's session is loaded now; a new binding reaches it.
    app.redis()
        .hset::<_, _, _, ()>("users_7_2", "gcm_timestamp", 1001)
        .unwrap_or_default();
    app.post("/users/2/bind", json!({"xm_device_token": "xm-2"}))
        .await
        .data();
    send(&app, 1, 2, "again").await;
    let q = wait_queue(&app, "push_queue", 2).await;
    assert_eq!(q[1]["device_tokens"][0]["token"], "xm-2", "{q:?}");
}

#[actix_web::test]
async fn a_mobile_connection_counts_as_online() {
    let app = push_app().await;
    let mut phone = app.online(2, 2, "android").await;
    send(&app, 1, 2, "to phone").await;
    assert_eq!(phone.recv().await["content"], "to phone");
    assert!(settle(&app, "m1").await.is_empty());
}

#[actix_web::test]
async fn a_desktop_connection_silences_the_phone_only_while_mute_is_on() {
    let app = push_app().await;
    app.bind_token(2).await;
    let mut web = app.online(2, 3, "tab").await;
    send(&app, 1, 2, "mute off").await;
    assert_eq!(
        web.recv().await["content"],
        "mute off",
        "delivered either way"
    );
    let q = settle(&app, "m1").await;
    assert_eq!(q.len(), 1);
    assert_eq!(
        q[0]["content"], "mute off",
        "mute unset: the phone is still pushed"
    );

    app.post("/users/2", json!({"mute": true})).await;
    send(&app, 1, 2, "mute on").await;
    assert_eq!(web.recv().await["content"], "mute on");
    let q = settle(&app, "m2").await;
    assert!(
        q.iter().all(|j| j["content"] != "mute on"),
        "mute on: the desktop connection counts as online: {q:?}"
    );
    // And a phone connection of the same user keeps it silent regardless.
    let q_len = queue(&app, "push_queue").len();
    app.post("/users/2", json!({"mute": false})).await;
    let mut phone = app.ws(&app.grant(2).await, 1, "phone").await;
    send(&app, 1, 2, "phone on").await;
    assert_eq!(phone.recv().await["content"], "phone on");
    let q = settle(&app, "m-last").await;
    assert_eq!(q.len(), q_len, "no push while a phone is connected");
}

#[actix_web::test]
async fn do_not_disturb_suppresses_the_push_but_not_delivery_or_storage() {
    let app = push_app().await;
    app.bind_token(2).await;
    app.post(
        "/users/2",
        json!({"do_not_disturb": {"peer_uid": 1, "on": true}}),
    )
    .await;
    send(&app, 1, 2, "quiet").await;
    send(&app, 3, 2, "loud").await;
    let q = settle(&app, "m").await;
    let contents: Vec<&str> = q.iter().filter_map(|j| j["content"].as_str()).collect();
    assert_eq!(
        contents,
        vec!["loud"],
        "sender 1 is on DND, sender 3 is not"
    );
    let mut ws = app.online(2, 1, "p").await;
    let synced: Vec<String> = ws
        .sync_all(0)
        .await
        .iter()
        .filter_map(|m| m["content"].as_str().map(String::from))
        .collect();
    assert_eq!(synced, vec!["quiet", "loud"]);
}

#[actix_web::test]
async fn system_messages_push_to_the_system_queue_and_notifications_never_push() {
    let app = push_app().await;
    app.bind_token(5).await;
    app.post(
        "/messages/systems",
        json!({"receiver": 5, "content": "sys"}),
    )
    .await;
    app.post(
        "/messages/notifications",
        json!({"receiver": 5, "content": "note"}),
    )
    .await;
    let q = wait_queue(&app, "system_push_queue", 1).await;
    assert_eq!(q.len(), 1);
    assert_eq!(
        (
            q[0]["appid"].clone(),
            q[0]["receiver"].clone(),
            q[0]["content"].clone()
        ),
        (json!(APP_A), json!(5), json!("sys"))
    );
    let peers = settle(&app, "m").await;
    assert!(
        peers.is_empty(),
        "the sender of a peer message is never pushed, notifications never are: {peers:?}"
    );
}

#[actix_web::test]
async fn the_webhook_sink_posts_batches_and_retries() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let attempts: Arc<Mutex<u32>> = Arc::default();
    let (url, hook_handle) = capture_hook(received.clone(), Some(attempts.clone())).await;
    let (mut s, _) = test_settings(Backend::Memory);
    s.push.sink = PushSinkKind::Webhook;
    s.push.webhook_url = url;
    s.push.flush_interval_ms = 5;
    let app = spawn_with(s, None).await;
    app.bind_token(2).await;
    send(&app, 1, 2, "via hook").await;
    let deadline = Instant::now() + WAIT;
    while received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty()
        && Instant::now() < deadline
    {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let got = received.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(got.len(), 1, "one batch after one retry");
    assert_eq!(got[0][0]["queue"], "push_queue");
    assert_eq!(got[0][0]["payload"]["content"], "via hook");
    assert_eq!(*attempts.lock().unwrap_or_else(|p| p.into_inner()), 2);
    hook_handle.stop(false).await;
}

/// A webhook that records every batch it is sent; its URL. With `attempts`, it counts the
/// requests and refuses the first (500).
async fn capture_hook(
    received: Arc<Mutex<Vec<Value>>>,
    attempts: Option<Arc<Mutex<u32>>>,
) -> (String, actix_web::dev::ServerHandle) {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let hook = HttpServer::new(move || {
        let (r, a) = (received.clone(), attempts.clone());
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Json<Value>| {
                let (r, a) = (r.clone(), a.clone());
                async move {
                    if let Some(a) = a {
                        let mut n = a.lock().unwrap_or_else(|p| p.into_inner());
                        *n += 1;
                        if *n == 1 {
                            return HttpResponse::InternalServerError().finish();
                        }
                    }
                    r.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(body.into_inner());
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}/hook", hook.addrs()[0]);
    let hook = hook.run();
    let handle = hook.handle();
    actix_web::rt::spawn(hook);
    (url, handle)
}

/// For sinks that cannot read the store (webhook, log) a group message's push stream names
/// each receiver's tokens: from memory for users with a session, read from the store for the
/// others; users without a token get no push, whether online on the web or offline.
#[actix_web::test]
async fn group_push_to_a_webhook_names_each_receivers_tokens_and_skips_users_without() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (url, hook) = capture_hook(received.clone(), None).await;
    let (mut s, _) = test_settings(Backend::Memory);
    s.push.sink = PushSinkKind::Webhook;
    s.push.webhook_url = url;
    s.push.flush_interval_ms = 5;
    let app = spawn_with(s, None).await;
    let members: Vec<u64> = (2..=2500).collect();
    let gid = app
        .post(
            "/groups",
            json!({"master": 1, "name": "g", "super": true, "members": members}),
        )
        .await
        .data()["group_id"]
        .as_u64()
        .unwrap();
    for uid in [10, 1500, 2400, 20, 30] {
        app.bind_token(uid).await;
    }
    let _web_with_token = app.online(20, 3, "web").await;
    let _web_without = app.online(21, 3, "web").await;
    let _phone = app.online(30, 1, "phone").await;
    app.post(
        "/messages/groups",
        json!({"sender": 1, "receiver": gid, "content": "to the phones"}),
    )
    .await
    .data();
    let expected: Vec<u64> = vec![10, 20, 1500, 2400];
    let deadline = Instant::now() + WAIT;
    let receivers = loop {
        let mut got: Vec<(u64, Value)> = received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(|batch| batch.as_array().cloned().unwrap_or_default())
            .filter(|job| job["queue"] == "group_push_queue")
            .flat_map(|job| {
                let p = &job["payload"];
                assert!(p["receivers"].as_array().is_some_and(|r| r.len() <= 1000));
                p["receivers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.as_u64())
                    .map(|r| (r, p["device_tokens"][r.to_string()].clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        got.sort_by_key(|(u, _)| *u);
        if got.len() >= expected.len() || Instant::now() > deadline {
            break got;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    let uids: Vec<u64> = receivers.iter().map(|(u, _)| *u).collect();
    assert_eq!(
        uids, expected,
        "not the sender, the phone, or anyone without a token"
    );
    for (uid, tokens) in &receivers {
        assert_eq!(tokens[0]["token"], format!("apns-{uid}"), "{uid}: {tokens}");
    }
    hook.stop(false).await;
}

#[actix_web::test]
async fn a_receiver_without_a_device_token_gets_no_push_job() {
    let app = push_app().await;
    send(&app, 1, 2, "nobody to push to").await;
    let q = settle(&app, "m").await;
    assert!(q.is_empty(), "user 2 bound no token: {q:?}");
}
