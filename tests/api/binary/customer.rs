//! CUSTOMER_V2 over the binary protocol: between a customer and their assigned supporter of one
//! app, and across apps to and from the help-desk app (`customers.help_desk_app`).

use std::time::Duration;

use serde_json::json;

use super::client::*;
use crate::helpers::*;

const CUSTOMER_V2: u8 = 64;

/// sender_appid, sender, receiver_appid, receiver, timestamp, content.
fn customer_body(app: u64, sender: u64, receiver: u64, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [app, sender, app, receiver] {
        b.extend_from_slice(&(v as i64).to_be_bytes());
    }
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(text.as_bytes());
    b
}

#[actix_web::test]
async fn a_customer_and_their_supporter_talk_with_customer_v2() {
    let app = help_desk_app().await;
    let (token, customer) = customer_with_supporter(&app).await;
    let bearer = format!("Bearer {token}");
    app.call(
        "GET",
        &format!("/supporters?store_id={HELP_DESK}"),
        Some(&bearer),
        None,
    )
    .await
    .data();
    let mut agent = Client::online(&app, 500, Over::Tcp, 2).await;
    let mut shopper = Client::connect(&app, Over::Ws, 1).await;
    shopper.auth(3, &token, "").await;
    assert_eq!(shopper.recv().await.i32_at(0), 0, "AUTH_STATUS 0");
    let seq = shopper
        .send(
            CUSTOMER_V2,
            0,
            &customer_body(APP_A, customer, 500, "help?"),
        )
        .await;
    let frames = shopper.until(ACK).await;
    assert_eq!(metadata(&frames[0]).0, 1);
    assert_eq!(frames[1].body, seq.to_be_bytes(), "v1: 4-byte ACK");
    let meta = agent.recv().await;
    let got = agent.recv().await;
    assert_eq!(
        (got.cmd, got.flag, got.seq),
        (CUSTOMER_V2, PUSH, meta.seq + 1)
    );
    assert_eq!(
        (got.i64_at(0), got.i64_at(8), got.i64_at(16), got.i64_at(24)),
        (APP_A as i64, customer as i64, APP_A as i64, 500)
    );
    assert_eq!(&got.body[36..], b"help?", "36-byte prefix, no msgid");
    // A customer may not send anything else: a peer IM is dropped without an ACK.
    shopper.im(IM, customer, 500, 0, "peer?").await;
    shopper.send(PING, 0, &[]).await;
    let frames = shopper.until(PONG).await;
    assert!(frames.iter().all(|f| f.cmd != ACK), "{frames:?}");
}

/// A redis-backed server whose app B is the help desk of every app (`customers.help_desk_app`,
/// the original's `kefu_appid`), with push jobs in Redis and the im HTTP API on.
pub(crate) async fn cross_app_desk() -> TestApp {
    let (mut s, url) = test_settings(Backend::Redis);
    s.customers.help_desk_app = APP_B;
    s.push.sink = im_dispatcher::config::PushSinkKind::Redis;
    s.push.flush_interval_ms = 5;
    s.im_http.listen = "127.0.0.1:0".into();
    spawn_with(s, url).await
}

/// sender_appid, sender, receiver_appid, receiver, timestamp, content — two apps.
fn across(from: (u64, u64), to: (u64, u64), text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [from.0, from.1, to.0, to.1] {
        b.extend_from_slice(&(v as i64).to_be_bytes());
    }
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(text.as_bytes());
    b
}

/// A CUSTOMER_V2 frame's (sender_appid, sender, receiver_appid, receiver, content).
fn customer_fields(f: &Got) -> (i64, i64, i64, i64, String) {
    assert_eq!(f.cmd, CUSTOMER_V2, "{f:?}");
    let text = String::from_utf8_lossy(&f.body[36..]).into_owned();
    (f.i64_at(0), f.i64_at(8), f.i64_at(16), f.i64_at(24), text)
}

/// An agent of the help-desk app B on one binary connection and a JSON one; and their token.
async fn agent_of_b(app: &TestApp, uid: u64) -> (Client, Ws, String) {
    let token = app.grant_as(&app.auth_b(), uid).await;
    let mut bin = Client::connect(app, Over::Ws, 1).await;
    bin.auth(2, &token, "agent-desk").await;
    assert_eq!(bin.recv().await.i32_at(0), 0, "AUTH_STATUS 0");
    let json = app.ws(&token, 3, "agent-web").await;
    (bin, json, token)
}

/// `frame`'s (kind, seq, sender, sender_app, receiver_app) as JSON values.
fn json_fields(m: &serde_json::Value) -> [serde_json::Value; 5] {
    ["kind", "seq", "sender", "sender_app", "receiver_app"].map(|k| m[k].clone())
}

/// Writes CUSTOMER_V2 `from` → `to` on `c`; asserts METADATA (the sender's seq `seq`) and ACK.
async fn send_across(c: &mut Client, from: (u64, u64), to: (u64, u64), text: &str, seq: i64) {
    let frame_seq = c.send(CUSTOMER_V2, 0, &across(from, to, text)).await;
    let frames = c.until(ACK).await;
    assert_eq!(metadata(&frames[0]).0, seq, "the sender's own inbox seq");
    assert_eq!(&frames[1].body[..4], &frame_seq.to_be_bytes());
}

/// Asserts `c` gets METADATA (`meta`), the CUSTOMER_V2 `from` → `to`, then SYNC_NOTIFY.
async fn receive_across(
    c: &mut Client,
    meta: (i64, i64),
    from: (u64, u64),
    to: (u64, u64),
    text: &str,
) {
    assert_eq!(metadata(&c.recv().await), meta);
    let want = (
        from.0 as i64,
        from.1 as i64,
        to.0 as i64,
        to.1 as i64,
        text.to_string(),
    );
    assert_eq!(customer_fields(&c.recv().await), want);
    assert_eq!(c.recv().await.cmd, SYNC_NOTIFY);
}

#[actix_web::test]
async fn a_user_of_one_app_and_an_agent_of_the_help_desk_app_talk_with_customer_v2() {
    let app = cross_app_desk().await;
    let (mut agent, mut agent_web, token) = agent_of_b(&app, 2).await;
    let mut user = Client::online(&app, 1, Over::Tcp, 2).await;
    let (a, b) = (json!(APP_A), json!(APP_B));

    // User 1 of app A writes to agent 2 of app B: stored on both sides, both apps named.
    send_across(&mut user, (APP_A, 1), (APP_B, 2), "help?", 1).await;
    receive_across(&mut agent, (1, 0), (APP_A, 1), (APP_B, 2), "help?").await;
    let m = agent_web.recv_type("message").await;
    let want = [json!("customer"), json!(1), json!(1), a.clone(), b.clone()];
    assert_eq!(json_fields(&m), want);

    // The agent answers: the user's inbox in app A; the agent's other device gets a copy.
    send_across(&mut agent, (APP_B, 2), (APP_A, 1), "how can I help?", 2).await;
    receive_across(&mut user, (2, 1), (APP_B, 2), (APP_A, 1), "how can I help?").await;
    let live = agent_web.recv_type("message").await;
    let want = [json!("customer"), json!(2), json!(2), b.clone(), a.clone()];
    assert_eq!(json_fields(&live), want);

    // Both histories hold both messages, with both apps: as the original's
    // /load_latest_message listed them, and as a device that connects later syncs them.
    let path = format!("/load_latest_message?appid={APP_B}&uid=2&limit=10");
    let res = app.im("GET", &path, b"").await;
    let items = res.body["data"].as_array().cloned().unwrap_or_default();
    let listed: Vec<(u64, u64, u64)> = items
        .iter()
        .map(|i| {
            let f = |k: &str| i[k].as_u64().unwrap_or(0);
            (f("command"), f("sender_appid"), f("receiver_appid"))
        })
        .collect();
    assert_eq!(
        listed,
        [(64, APP_A, APP_B), (64, APP_B, APP_A)],
        "{}",
        res.body
    );
    let mut later = app.ws(&token, 3, "agent-laptop").await;
    let synced: Vec<_> = later.sync_all(0).await.iter().map(json_fields).collect();
    let want = [
        [json!("customer"), json!(1), json!(1), a.clone(), b.clone()],
        [json!("customer"), json!(2), json!(2), b, a],
    ];
    assert_eq!(synced, want);
}

#[actix_web::test]
async fn an_offline_agent_of_the_help_desk_gets_a_customer_push_job_in_their_app() {
    let app = cross_app_desk().await;
    let token = app.grant_as(&app.auth_b(), 9).await;
    let bind = json!({ "apns_device_token": "apns-agent-9" });
    app.call("POST", "/users/9/bind", Some(&app.auth_b()), Some(bind))
        .await
        .data();
    drop(token);
    let body = json!({
        "sender_appid": APP_A, "sender": 1, "receiver_appid": APP_B, "receiver": 9,
        "content": "anyone there?",
    });
    let res = app
        .im(
            "POST",
            "/post_customer_message",
            body.to_string().as_bytes(),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let mut jobs: Vec<String> = Vec::new();
    for _ in 0..500 {
        jobs = redis::cmd("LRANGE")
            .arg("customer_push_queue_v2")
            .arg(0)
            .arg(-1)
            .query(&mut app.redis())
            .unwrap_or_default();
        if !jobs.is_empty() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job: serde_json::Value = serde_json::from_str(&jobs[0]).unwrap_or_default();
    let f = |k: &str| job[k].as_u64().unwrap_or(0);
    assert_eq!(
        (
            f("appid"),
            f("sender_appid"),
            f("sender"),
            f("receiver_appid"),
            f("receiver")
        ),
        (APP_B, APP_A, 1, APP_B, 9),
        "{job}"
    );
    assert_eq!(
        job["device_tokens"][0]["token"],
        json!("apns-agent-9"),
        "{job}"
    );
}

#[actix_web::test]
async fn customer_messages_cross_apps_only_to_or_from_the_help_desk() {
    // No help desk configured: every way in refuses a customer message to another app, and
    // nothing is stored.
    let app = spawn_app(Backend::Redis).await;
    let mut user = Client::online(&app, 1, Over::Tcp, 2).await;
    user.send(CUSTOMER_V2, 0, &across((APP_A, 1), (APP_B, 2), "hi"))
        .await;
    user.send(PING, 0, &[]).await;
    let frames = user.until(PONG).await;
    assert!(frames.iter().all(|f| f.cmd != ACK), "no ACK: {frames:?}");
    let body = json!({"sender": 1, "receiver": 2, "receiver_app": APP_B, "content": "hi"});
    app.post("/messages/customers", body)
        .await
        .assert_error(403, "cross_app");
    let mut web = app.online(1, 3, "web").await;
    for (kind, error) in [("peer", "invalid_to_app"), ("customer", "cross_app")] {
        let send = json!({"type": "send", "kind": kind, "to": 2, "to_app": APP_B,
                          "content": "hi", "ref": kind});
        web.send(send).await;
        let err = web.recv_type("error").await;
        assert_eq!(err["error"], json!(error), "{err}");
    }
    let newest: Option<String> = redis::cmd("GET")
        .arg(format!("imd:msgid:{{{APP_A}}}"))
        .query(&mut app.redis())
        .unwrap_or_default();
    assert_eq!(newest, None, "nothing was stored");
}

#[actix_web::test]
async fn the_help_desk_app_reaches_only_known_apps_and_json_clients_name_the_other_app() {
    let app = cross_app_desk().await;
    let (_agent, mut agent_web, _) = agent_of_b(&app, 2).await;
    let body = json!({"sender": 2, "receiver": 1, "receiver_app": 999, "content": "hi"});
    app.call(
        "POST",
        "/messages/customers",
        Some(&app.auth_b()),
        Some(body),
    )
    .await
    .assert_error(403, "cross_app");
    let mut user = app.online(1, 3, "web").await;
    agent_web
        .send(
            json!({"type": "send", "kind": "customer", "to": 1, "to_app": APP_A,
                     "content": "hello from the desk", "ref": "r1"}),
        )
        .await;
    let ack = agent_web.recv_type("ack").await;
    assert_eq!(ack["seq"], json!(1), "{ack}");
    let m = user.recv_type("message").await;
    assert_eq!(
        (
            &m["sender"],
            &m["sender_app"],
            &m["receiver_app"],
            &m["content"]
        ),
        (
            &json!(2),
            &json!(APP_B),
            &json!(APP_A),
            &json!("hello from the desk")
        )
    );
}
