//! SYNC / SYNC_KEY against both stores (keys where the original kept them), a client whose
//! key is ahead, system messages, notifications and UNREAD_COUNT.

use serde_json::json;

use super::client::*;
use crate::helpers::*;

async fn post_peer(app: &TestApp, from: u64, to: u64, text: &str) {
    app.post(
        "/messages/peers",
        json!({"sender": from, "receiver": to, "content": text}),
    )
    .await
    .data();
}

#[actix_web::test]
async fn sync_pages_the_inbox_and_sync_key_is_kept_for_the_next_connection() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        for n in 0..3 {
            post_peer(&app, 1, 2, &format!("m{n}")).await;
        }
        let mut c = Client::online(&app, 2, Over::Tcp, 1).await;
        c.key(SYNC, 0).await;
        let frames = c.until(SYNC_END).await;
        assert_eq!(frames[0].cmd, SYNC_BEGIN);
        assert_eq!(frames[0].i64_at(0), 0);
        let texts: Vec<String> = frames[1..3 + 1].iter().map(|f| im_fields(f, 1).4).collect();
        assert_eq!(texts, ["m0", "m1", "m2"], "{backend:?}");
        assert!(
            frames[1..4].iter().all(|f| f.flag & PUSH == 0),
            "synced: no PUSH flag"
        );
        assert_eq!(frames[4].i64_at(0), 3, "SYNC_END carries the newest key");
        assert_eq!(
            (frames[0].body.len(), frames[4].body.len()),
            (8, 8),
            "i64 keys"
        );
        c.key(SYNC_KEY, 3).await;
        c.key(SYNC_KEY, 1).await; // never backwards
        c.send(PING, 0, &[]).await;
        c.until(PONG).await;
        if backend == Backend::Redis {
            assert_eq!(user_field(&app, 2, "sync_key"), "3", "the original's field");
        }
        // A new device syncing from 0 starts at the confirmed key.
        let mut d = Client::online(&app, 2, Over::Ws, 2).await;
        d.key(SYNC, 0).await;
        let frames = d.until(SYNC_END).await;
        let cmds: Vec<u8> = frames.iter().map(|f| f.cmd).collect();
        assert_eq!(cmds, [SYNC_BEGIN, SYNC_END]);
        assert_eq!((frames[0].i64_at(0), frames[1].i64_at(0)), (3, 3));
        // A key ahead of the server is brought back to the newest.
        d.key(SYNC, 99).await;
        let frames = d.until(SYNC_END).await;
        assert_eq!(frames.last().map(|f| f.i64_at(0)), Some(3));
    }
}

#[actix_web::test]
async fn system_messages_are_announced_and_synced_and_notifications_are_live() {
    let app = spawn_app(Backend::Redis).await;
    let mut c = Client::online(&app, 2, Over::Tcp, 2).await;
    app.post(
        "/messages/systems",
        json!({"receiver": 2, "content": "sys!"}),
    )
    .await
    .data();
    let notify = c.recv().await;
    assert_eq!(
        (notify.cmd, notify.i64_at(0)),
        (SYNC_NOTIFY, 1),
        "no live body for SYSTEM"
    );
    c.key(SYNC, 0).await;
    let frames = c.until(SYNC_END).await;
    let system = frames
        .iter()
        .find(|f| f.cmd == SYSTEM)
        .unwrap_or_else(|| panic!("{frames:?}"));
    assert_eq!(system.body, b"sys!", "SYSTEM is the content alone");
    app.post(
        "/messages/notifications",
        json!({"receiver": 2, "content": "note"}),
    )
    .await
    .data();
    let note = c.recv().await;
    assert_eq!(
        (note.cmd, note.flag, note.body.as_slice()),
        (NOTIFICATION, 0, b"note".as_slice())
    );
    c.send(UNREAD_COUNT, 0, &5i32.to_be_bytes()).await;
    c.send(PING, 0, &[]).await;
    c.until(PONG).await;
    assert_eq!(user_field(&app, 2, "unread"), "5");
    // A new login resets it, as the original does.
    let mut again = Client::online(&app, 2, Over::Ws, 1).await;
    again.send(PING, 0, &[]).await;
    again.until(PONG).await;
    assert_eq!(user_field(&app, 2, "unread"), "0");
}

#[actix_web::test]
async fn sync_key_moves_the_devices_offline_count() {
    let app = spawn_app(Backend::Memory).await;
    post_peer(&app, 1, 2, "a").await;
    post_peer(&app, 1, 2, "b").await;
    let path = "/messages/offline?uid=2&platform_id=2&device_id=device-2";
    assert_eq!(app.get(path).await.data()["count"], 2);
    let mut c = Client::online(&app, 2, Over::Tcp, 1).await;
    c.key(SYNC_KEY, 2).await;
    c.send(PING, 0, &[]).await;
    c.until(PONG).await;
    assert_eq!(app.get(path).await.data()["count"], 0);
}

/// Connects user `uid` as device `device` (platform 2) with a fresh token.
async fn device(app: &TestApp, uid: u64, device: &str) -> Client {
    let token = app.grant(uid).await;
    let mut c = Client::connect(app, Over::Tcp, 2).await;
    c.auth(2, &token, device).await;
    assert_eq!(c.recv().await.i32_at(0), 0, "AUTH_STATUS 0");
    c
}

#[actix_web::test]
async fn a_synced_message_keeps_its_msgid_and_is_flagged_self_only_on_the_device_that_sent_it() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut phone = device(&app, 1, "phone").await;
        phone.im(IM, 1, 2, 77, "from my phone").await;
        phone.until(ACK).await;
        post_peer(&app, 2, 1, "to you").await;
        // The same device after a reinstall (its sync key lost) and another device of user 1.
        for (name, own) in [("phone", SELF), ("tablet", 0)] {
            let mut c = device(&app, 1, name).await;
            c.key(SYNC, 0).await;
            let frames = c.until(SYNC_END).await;
            let got: Vec<(String, i32, u8)> = frames
                .iter()
                .filter(|f| f.cmd == IM)
                .map(|f| (im_fields(f, 2).4, im_fields(f, 2).3, f.flag))
                .collect();
            let want = [
                ("from my phone".to_string(), 77, own),
                ("to you".to_string(), 0, 0),
            ];
            assert_eq!(got, want, "{name}, {backend:?}");
        }
        // The receiver never sees SELF on it, even with a device of the same name.
        let mut other = device(&app, 2, "phone").await;
        other.key(SYNC, 0).await;
        let frames = other.until(SYNC_END).await;
        assert!(frames.iter().all(|f| f.flag & SELF == 0), "{frames:?}");
    }
}

#[actix_web::test]
async fn a_json_client_tells_its_own_messages_by_the_device_tag_of_its_hello() {
    let app = spawn_app(Backend::Redis).await;
    let token = app.grant(1).await;
    let mut web = app.ws(&token, 3, "browser-1").await;
    let tag = web.hello["device_tag"].clone();
    assert!(tag.as_str().is_some_and(|t| t.len() == 16), "{}", web.hello);
    web.send(json!({"type": "send", "kind": "peer", "to": 2, "content": "mine", "ref": 1}))
        .await;
    web.recv_type("ack").await;
    let later = app.ws(&token, 3, "browser-1").await;
    assert_eq!(
        later.hello["device_tag"], tag,
        "the same device, the same tag"
    );
    let other = app.ws(&token, 3, "browser-2").await;
    assert_ne!(other.hello["device_tag"], tag);
    let mut fresh = app.ws(&token, 3, "browser-3").await;
    let synced = fresh.sync_all(0).await;
    assert_eq!(synced.len(), 1, "{synced:?}");
    assert_eq!(synced[0]["device_tag"], tag);
    // What the receiver gets names no device id.
    let mut receiver = app.online(2, 3, "r").await;
    let got = receiver.sync_all(0).await;
    assert!(!got[0].to_string().contains("browser-1"), "{}", got[0]);
}
