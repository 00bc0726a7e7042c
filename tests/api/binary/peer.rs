//! Authentication, ping, peer IM with METADATA and ACK in every version, JSON and binary
//! clients of one user, idempotency by msgid.

use serde_json::json;

use super::client::*;
use crate::helpers::*;

#[actix_web::test]
async fn ping_is_answered_before_auth_and_auth_status_carries_the_version() {
    let app = spawn_app(Backend::Memory).await;
    for over in [Over::Tcp, Over::Ws] {
        let mut c = Client::connect(&app, over, 1).await;
        c.send(PING, 0, &[]).await;
        let pong = c.recv().await;
        assert_eq!((pong.cmd, pong.version, pong.seq), (PONG, 0, 1), "{over:?}");
        assert!(pong.body.is_empty());
        // A bad token: AUTH_STATUS 1 in version 0; the connection stays open.
        c.auth(3, "no-such-token", "dev").await;
        let st = c.recv().await;
        assert_eq!(
            (st.cmd, st.version, st.seq, st.body.clone()),
            (AUTH_STATUS, 0, 2, vec![0, 0, 0, 1])
        );
        let token = app.grant(1).await;
        c.auth(3, &token, "dev").await;
        let st = c.recv().await;
        assert_eq!(
            (st.cmd, st.version, st.seq, st.body),
            (AUTH_STATUS, 1, 3, vec![0, 0, 0, 0])
        );
        c.send(PING, 0, &[]).await;
        let pong = c.recv().await;
        assert_eq!((pong.cmd, pong.version, pong.seq), (PONG, 1, 4));
    }
}

#[actix_web::test]
async fn a_sync_pipelined_behind_auth_is_served_after_auth_status() {
    let app = spawn_app(Backend::Memory).await;
    let token = app.grant(2).await;
    app.post(
        "/messages/peers",
        json!({"sender": 1, "receiver": 2, "content": "queued"}),
    )
    .await
    .data();
    let mut c = Client::connect(&app, Over::Tcp, 1).await;
    c.auth(2, &token, "phone").await;
    c.key(SYNC, 0).await;
    let first = c.recv().await;
    assert_eq!(
        first.cmd, AUTH_STATUS,
        "AUTH_STATUS is the very first frame"
    );
    let frames = c.until(SYNC_END).await;
    let cmds: Vec<u8> = frames.iter().map(|f| f.cmd).collect();
    assert_eq!(cmds, vec![SYNC_BEGIN, IM, SYNC_END]);
    assert_eq!(im_fields(&frames[1], 1).4, "queued");
}

#[actix_web::test]
async fn peer_im_is_acked_with_metadata_and_pushed_live_in_each_version() {
    let app = spawn_app(Backend::Memory).await;
    for (v_send, v_recv, over) in [(2, 1, Over::Tcp), (1, 2, Over::Ws), (0, 0, Over::Tcp)] {
        let (a, b) = (10 + u64::from(v_send) * 2, 11 + u64::from(v_send) * 2);
        let mut sender = Client::online(&app, a, over, v_send).await;
        let mut receiver = Client::online(&app, b, Over::Ws, v_recv).await;
        for (n, text) in [(1i64, "hello"), (2, "again")] {
            let seq = sender.im(IM, a, b, 40 + n as i32, text).await;
            // The sender: METADATA (its queue position) right before the ACK.
            let meta = sender.recv().await;
            assert_eq!(metadata(&meta), (n, n - 1));
            let ack = sender.recv().await;
            assert_eq!((ack.cmd, ack.seq, ack.version), (ACK, meta.seq + 1, v_send));
            let mut want = seq.to_be_bytes().to_vec();
            if v_send >= 2 {
                want.push(0); // status byte, v2 only
            }
            assert_eq!(ack.body, want, "ACK layout of version {v_send}");
            // The receiver: METADATA, IM with PUSH, SYNC_NOTIFY.
            let meta = receiver.recv().await;
            assert_eq!(metadata(&meta), (n, n - 1));
            let im = receiver.recv().await;
            assert_eq!(
                (im.cmd, im.seq, im.flag, im.version),
                (IM, meta.seq + 1, PUSH, v_recv)
            );
            let (from, to, ts, msgid, got) = im_fields(&im, v_recv);
            assert_eq!(
                (from, to, msgid, got.as_str()),
                (a as i64, b as i64, 40 + n as i32, text),
                "the sender's msgid passed on"
            );
            let prefix = if v_recv == 0 { 20 } else { 24 };
            assert_eq!(
                im.body.len(),
                prefix + text.len(),
                "IM layout of version {v_recv}"
            );
            if let Some(ts) = ts {
                let now = im_dispatcher::domain::now_secs() as i64;
                assert!(
                    (i64::from(ts) - now).abs() < 60,
                    "server clock in seconds: {ts}"
                );
            }
            let notify = receiver.recv().await;
            assert_eq!((notify.cmd, notify.i64_at(0)), (SYNC_NOTIFY, n));
        }
    }
}

#[actix_web::test]
async fn json_and_binary_clients_of_one_user_get_every_message_with_the_same_seq() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut json_ws = app.online(2, 3, "browser").await;
        let mut bin = Client::online(&app, 2, Over::Tcp, 2).await;
        let mut peer = Client::online(&app, 1, Over::Ws, 1).await;
        // HTTP, a binary client and a JSON client send; both devices of user 2 see each.
        app.post(
            "/messages/peers",
            json!({"sender": 1, "receiver": 2, "content": "by http"}),
        )
        .await
        .data();
        peer.im(IM, 1, 2, 0, "by binary").await;
        peer.until(ACK).await; // stored (and delivered) before the next send
        let mut other = app.online(1, 1, "phone").await;
        other
            .send(
                json!({"type": "send", "kind": "peer", "to": 2, "content": "by json", "ref": "r1"}),
            )
            .await;
        for text in ["by http", "by binary", "by json"] {
            let j = json_ws.recv_type("message").await;
            let meta = bin.recv().await;
            let im = bin.recv().await;
            bin.recv().await; // SYNC_NOTIFY
            assert_eq!(j["content"], text, "{backend:?}");
            assert_eq!(im_fields(&im, 2).4, text);
            assert_eq!(
                Some(metadata(&meta).0 as u64),
                j["seq"].as_u64(),
                "one seq for both"
            );
        }
        // A binary send of user 2: its JSON device gets the sent copy with the ACK's seq.
        let seq = bin.im(IM, 2, 1, 0, "from the phone").await;
        let meta = bin.recv().await;
        let ack = bin.recv().await;
        assert_eq!((ack.cmd, ack.i32_at(0)), (ACK, seq));
        let j = json_ws.recv_type("message").await;
        assert_eq!(j["content"], "from the phone");
        assert_eq!(Some(metadata(&meta).0 as u64), j["seq"].as_u64());
    }
}

#[actix_web::test]
async fn a_resent_msgid_is_stored_once_and_acked_twice() {
    let app = spawn_app(Backend::Memory).await;
    let mut a = Client::online(&app, 1, Over::Tcp, 2).await;
    for _ in 0..2 {
        let seq = a.im(IM, 1, 2, 77, "once").await;
        let frames = a.until(ACK).await;
        assert_eq!(frames.last().map(|f| f.i32_at(0)), Some(seq));
        assert_eq!(
            metadata(&frames[0]),
            (1, 0),
            "the same queue position both times"
        );
    }
    // Another sender field than the connection's user: silently dropped.
    a.im(IM, 5, 2, 0, "forged").await;
    a.silence(std::time::Duration::from_millis(300)).await;
    let mut b = Client::online(&app, 2, Over::Tcp, 1).await;
    b.key(SYNC, 0).await;
    let frames = b.until(SYNC_END).await;
    let ims: Vec<String> = frames
        .iter()
        .filter(|f| f.cmd == IM)
        .map(|f| im_fields(f, 1).4)
        .collect();
    assert_eq!(ims, vec!["once".to_string()]);
}

#[actix_web::test]
async fn a_token_minted_in_redis_as_existing_deployments_did_authenticates() {
    let app = spawn_app(Backend::Redis).await;
    let token = "abcdefghijklmnopqrstuvwxyz0123"; // 30 chars, as the Python test clients mint
    let () = redis::cmd("HSET")
        .arg(format!("access_token_{token}"))
        .arg("user_id")
        .arg(42)
        .arg("user_name")
        .arg("")
        .arg("app_id")
        .arg(APP_A)
        .query(&mut app.redis())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut c = Client::connect(&app, Over::Tcp, 1).await;
    c.auth(2, token, "f9d2a7c2-701a-11e5-9c3e-34363bd464b2")
        .await;
    let st = c.recv().await;
    assert_eq!((st.cmd, st.i32_at(0), st.version), (AUTH_STATUS, 0, 1));
    let seq = c.im(IM, 42, 43, 0, "from an old token").await;
    let frames = c.until(ACK).await;
    assert_eq!(
        frames.last().map(|f| f.body.clone()),
        Some(seq.to_be_bytes().to_vec())
    );
}
