//! SPEC §6: who gets a push job, checked against the real Redis queues and a webhook.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use im_dispatcher::config::PushSinkKind;
use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::*;

async fn push_app() -> TestApp {
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
async fn settle(app: &TestApp, marker: &str) -> Vec<Value> {
    app.bind_token(999).await;
    let before = queue(app, "push_queue").len();
    send(app, 1, 999, marker).await;
    let q = wait_queue(app, "push_queue", before + 1).await;
    assert_eq!(q.last().map(|j| j["content"].clone()), Some(json!(marker)));
    q[..q.len() - 1].to_vec()
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
    use actix_web::{App, HttpResponse, HttpServer, web};
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let attempts: Arc<Mutex<u32>> = Arc::default();
    let (r, a) = (received.clone(), attempts.clone());
    let hook = HttpServer::new(move || {
        let (r, a) = (r.clone(), a.clone());
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Json<Value>| {
                let (r, a) = (r.clone(), a.clone());
                async move {
                    let mut n = a.lock().unwrap_or_else(|p| p.into_inner());
                    *n += 1;
                    if *n == 1 {
                        return HttpResponse::InternalServerError().finish();
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
    let hook_addr = hook.addrs()[0];
    let hook = hook.run();
    let hook_handle = hook.handle();
    actix_web::rt::spawn(hook);

    let (mut s, _) = test_settings(Backend::Memory);
    s.push.sink = PushSinkKind::Webhook;
    s.push.webhook_url = format!("http://{hook_addr}/hook");
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
