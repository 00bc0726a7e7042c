//! GROUP_IM to normal and super groups: ACK statuses, METADATA, live pushes, SYNC_GROUP and
//! GROUP_SYNC_KEY, mute.

use serde_json::{Value, json};

use super::client::*;
use crate::helpers::*;

async fn create(app: &TestApp, body: Value) -> u64 {
    let res = app.post("/groups", body).await;
    res.data()["group_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}", res.body))
}

#[actix_web::test]
async fn group_im_is_acked_with_a_status_and_pushed_to_members() {
    let app = spawn_app(Backend::Memory).await;
    let gid = create(&app, json!({"master": 1, "name": "g", "members": [1, 2]})).await;
    let mut one = Client::online(&app, 1, Over::Tcp, 2).await;
    let mut two = Client::online(&app, 2, Over::Ws, 1).await;
    let mut three = Client::online(&app, 3, Over::Tcp, 2).await;
    let seq = one.im(GROUP_IM, 1, gid, 0, "to the group").await;
    let meta = one.recv().await;
    let (key, prev) = metadata(&meta);
    assert_eq!(key, prev + 1);
    let ack = one.recv().await;
    assert_eq!(
        (ack.cmd, ack.body.clone()),
        (ACK, [seq.to_be_bytes().to_vec(), vec![0]].concat())
    );
    let frames = two.until(GROUP_IM).await;
    let im = frames.last().unwrap_or_else(|| panic!("no GROUP_IM"));
    let meta = &frames[frames.len() - 2];
    assert_eq!(meta.seq + 1, im.seq, "METADATA right before its message");
    assert_eq!(im.flag, PUSH, "normal group: PUSH only");
    let (from, to, _, msgid, text) = im_fields(im, 1);
    assert_eq!(
        (from, to, msgid, text.as_str()),
        (1, gid as i64, 0, "to the group")
    );
    assert_eq!(metadata(meta).0, metadata(meta).1 + 1);
    // Not a member: 64; no such group: 65 (v2 status byte); no METADATA.
    let seq = three.im(GROUP_IM, 3, gid, 0, "intruder").await;
    let ack = three.recv().await;
    assert_eq!(
        (ack.cmd, ack.body.clone()),
        (ACK, [seq.to_be_bytes().to_vec(), vec![64]].concat())
    );
    let seq = three.im(GROUP_IM, 3, 987_654, 0, "nowhere").await;
    let ack = three.recv().await;
    assert_eq!(
        (ack.cmd, ack.body),
        (ACK, [seq.to_be_bytes().to_vec(), vec![65]].concat())
    );
    // A muted member's message is dropped without an ACK.
    app.call(
        "PATCH",
        &format!("/groups/{gid}/members/2"),
        Some(&app.auth_a()),
        Some(json!({"mute": true})),
    )
    .await
    .data();
    two.im(GROUP_IM, 2, gid, 0, "muted").await;
    two.send(PING, 0, &[]).await;
    let frames = two.until(PONG).await;
    assert!(frames.iter().all(|f| f.cmd != ACK), "{frames:?}");
}

#[actix_web::test]
async fn super_group_messages_use_the_group_key_and_sync_group() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let gid = create(
            &app,
            json!({"master": 1, "name": "s", "super": true, "members": [1, 2]}),
        )
        .await;
        let mut one = Client::online(&app, 1, Over::Tcp, 2).await;
        let mut two = Client::online(&app, 2, Over::Ws, 1).await;
        let seq = one.im(GROUP_IM, 1, gid, 0, "super hi").await;
        let frames = one.until(ACK).await;
        let ack = frames.last().unwrap_or_else(|| panic!("no ACK"));
        let (gkey, gprev) = metadata(&frames[frames.len() - 2]);
        assert_eq!(gkey, gprev + 1);
        assert_eq!((ack.i32_at(0), ack.flag), (seq, SUPER_GROUP), "{backend:?}");
        let frames = two.until(SYNC_GROUP_NOTIFY).await;
        let n = frames.len();
        let (meta, im, notify) = (&frames[n - 3], &frames[n - 2], &frames[n - 1]);
        assert_eq!(metadata(meta), (gkey, gprev));
        assert_eq!(
            (im.cmd, im.flag, im.seq),
            (GROUP_IM, PUSH | SUPER_GROUP, meta.seq + 1)
        );
        assert_eq!(im_fields(im, 1).4, "super hi");
        assert_eq!((notify.i64_at(0), notify.i64_at(8)), (gid as i64, gkey));
        assert_eq!(notify.body.len(), 16, "group id and key");
        two.group_key(SYNC_GROUP, gid, 0).await;
        let frames = two.until(SYNC_GROUP_END).await;
        assert_eq!(frames[0].cmd, SYNC_GROUP_BEGIN);
        let texts: Vec<String> = frames
            .iter()
            .filter(|f| f.cmd == GROUP_IM)
            .map(|f| im_fields(f, 1).4)
            .collect();
        assert_eq!(texts, ["super hi"]);
        let end = frames.last().unwrap_or_else(|| panic!("no end"));
        assert_eq!((end.i64_at(0), end.i64_at(8)), (gid as i64, gkey));
        two.group_key(GROUP_SYNC_KEY, gid, gkey as u64).await;
        two.send(PING, 0, &[]).await;
        two.until(PONG).await;
        // The confirmed group key is where a fresh SYNC_GROUP(gid, 0) starts.
        two.group_key(SYNC_GROUP, gid, 0).await;
        let frames = two.until(SYNC_GROUP_END).await;
        assert!(frames.iter().all(|f| f.cmd != GROUP_IM), "{frames:?}");
        // A key ahead of the timeline is brought back to its newest.
        two.group_key(SYNC_GROUP, gid, 999).await;
        let end = two.until(SYNC_GROUP_END).await.pop();
        assert_eq!(end.map(|f| f.i64_at(8)), Some(gkey));
        if backend == Backend::Redis {
            let stored = user_field(&app, 2, &format!("group_sync_key_{gid}"));
            assert_eq!(stored, gkey.to_string());
        }
    }
}

#[actix_web::test]
async fn group_notifications_reach_binary_clients_by_sync() {
    let app = spawn_app(Backend::Memory).await;
    let mut two = Client::online(&app, 2, Over::Tcp, 1).await;
    let gid = create(&app, json!({"master": 1, "name": "n", "members": [1, 2]})).await;
    let notify = two.until(SYNC_NOTIFY).await;
    assert!(
        notify.iter().all(|f| f.cmd != GROUP_NOTIFICATION),
        "announced, not pushed"
    );
    two.key(SYNC, 0).await;
    let frames = two.until(SYNC_END).await;
    let note = frames
        .iter()
        .find(|f| f.cmd == GROUP_NOTIFICATION)
        .unwrap_or_else(|| panic!("{frames:?}"));
    let v: Value = serde_json::from_slice(&note.body).unwrap_or_else(|e| panic!("{e}"));
    assert!(v.to_string().contains(&gid.to_string()), "{v}");
}
