//! SPEC §4.2 groups, group rows of §4.3, `sync_group` (§5.3), against both stores.

use std::time::Duration;

use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::*;

async fn create(app: &TestApp, body: Value) -> u64 {
    let res = app.post("/groups", body).await;
    res.data()["group_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}", res.body))
}

async fn info(app: &TestApp, gid: u64) -> Value {
    app.get(&format!("/groups/{gid}")).await.data().clone()
}

fn member_uids(info: &Value) -> Vec<u64> {
    info["members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["uid"].as_u64()).collect())
        .unwrap_or_default()
}

/// PATCH /groups/{gid}/members/{uid} as app A's server.
async fn patch_member(app: &TestApp, gid: u64, uid: u64, body: Value) -> Res {
    app.call(
        "PATCH",
        &format!("/groups/{gid}/members/{uid}"),
        Some(&app.auth_a()),
        Some(body),
    )
    .await
}

async fn send(app: &TestApp, sender: u64, gid: u64, content: &str) -> Res {
    app.post(
        "/messages/groups",
        json!({"sender": sender, "receiver": gid, "content": content}),
    )
    .await
}

/// The next group notification's parsed content.
async fn next_note(ws: &mut Ws) -> Value {
    let m = ws.recv().await;
    assert_eq!(m["kind"], "group_notification", "{m}");
    serde_json::from_str(m["content"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {m}"))
}

#[actix_web::test]
async fn a_group_lives_through_its_whole_lifecycle() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut master = app.online(1, 1, "p").await;
        let gid = create(
            &app,
            json!({"master": 1, "name": "team", "members": [2, {"uid": "3", "name": "carol"}]}),
        )
        .await;
        let g = info(&app, gid).await;
        assert_eq!(
            (
                g["group_id"].as_u64(),
                g["name"].as_str(),
                g["master"].as_u64(),
                g["super"].as_bool()
            ),
            (Some(gid), Some("team"), Some(1), Some(false))
        );
        assert_eq!(
            member_uids(&g),
            vec![1, 2, 3],
            "{backend:?}: the master is always a member"
        );
        let create_note = next_note(&mut master).await;
        assert_eq!(create_note["create"]["group_id"], gid);
        assert_eq!(
            create_note["create"]["members"],
            json!([2, {"uid": "3", "name": "carol"}]),
            "members as posted"
        );

        app.call(
            "PATCH",
            &format!("/groups/{gid}"),
            Some(&app.auth_a()),
            Some(json!({"name": "crew"})),
        )
        .await
        .data();
        assert_eq!(info(&app, gid).await["name"], "crew");
        assert_eq!(next_note(&mut master).await["update_name"]["name"], "crew");

        let res = app
            .post(
                &format!("/groups/{gid}/members"),
                json!({"members": [4, 2], "inviter": {"uid": 1, "name": "boss"}}),
            )
            .await;
        assert_eq!(res.data()["added"], json!([4]), "re-adding 2 is a no-op");
        assert_eq!(member_uids(&info(&app, gid).await), vec![1, 2, 3, 4]);
        let add = next_note(&mut master).await;
        assert_eq!(
            (
                add["add_member"]["member_id"].clone(),
                add["add_member"]["inviter"]["uid"].clone()
            ),
            (json!(4), json!(1))
        );

        app.post(&format!("/groups/{gid}/members"), json!([5]))
            .await
            .data();
        app.post(
            &format!("/groups/{gid}/members"),
            json!({"uid": 6, "name": "f"}),
        )
        .await
        .data();
        assert_eq!(
            member_uids(&info(&app, gid).await),
            vec![1, 2, 3, 4, 5, 6],
            "all three body shapes"
        );
        next_note(&mut master).await;
        assert_eq!(next_note(&mut master).await["add_member"]["name"], "f");

        patch_member(
            &app,
            gid,
            2,
            json!({"nickname": "bobby", "mute": true, "do_not_disturb": true}),
        )
        .await
        .data();
        let g = info(&app, gid).await;
        let two = g["members"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["uid"] == 2).cloned())
            .unwrap_or_default();
        assert_eq!(
            (
                two["nickname"].as_str(),
                two["mute"].as_bool(),
                two["do_not_disturb"].as_bool()
            ),
            (Some("bobby"), Some(true), Some(true))
        );
        assert_eq!(
            next_note(&mut master).await["update_member_nickname"]["nickname"],
            "bobby"
        );

        app.call(
            "DELETE",
            &format!("/groups/{gid}/members/6"),
            Some(&app.auth_a()),
            None,
        )
        .await
        .data();
        app.call(
            "DELETE",
            &format!("/groups/{gid}/members"),
            Some(&app.auth_a()),
            Some(json!([5, {"uid": 4, "name": "d"}])),
        )
        .await
        .data();
        assert_eq!(member_uids(&info(&app, gid).await), vec![1, 2, 3]);
        let quits: Vec<Value> = vec![
            next_note(&mut master).await,
            next_note(&mut master).await,
            next_note(&mut master).await,
        ];
        let ids: Vec<u64> = quits
            .iter()
            .filter_map(|q| q["quit_group"]["member_id"].as_u64())
            .collect();
        assert_eq!(ids, vec![6, 5, 4]);

        app.post(&format!("/groups/{gid}/upgrade"), json!({}))
            .await
            .data();
        assert_eq!(info(&app, gid).await["super"], true);
        assert_eq!(next_note(&mut master).await["upgrade"]["super"], 1);

        app.call(
            "DELETE",
            &format!("/groups/{gid}"),
            Some(&app.auth_a()),
            None,
        )
        .await
        .data();
        app.get(&format!("/groups/{gid}"))
            .await
            .assert_error(404, "group_not_found");
        assert_eq!(
            next_note(&mut master).await["disband"]["group_name"],
            "crew"
        );
        send(&app, 1, gid, "gone?")
            .await
            .assert_error(404, "group_not_found");
    }
}

#[actix_web::test]
async fn notifications_reach_the_member_they_are_about() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let gid = create(&app, json!({"master": 1, "name": "g", "members": [2]})).await;
        let mut joiner = app.online(3, 1, "p").await;
        let mut leaver = app.online(2, 1, "p").await;
        app.post(&format!("/groups/{gid}/members"), json!([3]))
            .await
            .data();
        assert_eq!(next_note(&mut joiner).await["add_member"]["member_id"], 3);
        assert_eq!(next_note(&mut leaver).await["add_member"]["member_id"], 3);
        app.call(
            "DELETE",
            &format!("/groups/{gid}/members/2"),
            Some(&app.auth_a()),
            None,
        )
        .await
        .data();
        assert_eq!(
            next_note(&mut leaver).await["quit_group"]["member_id"],
            2,
            "{backend:?}"
        );
        assert_eq!(next_note(&mut joiner).await["quit_group"]["member_id"], 2);
        app.call(
            "DELETE",
            &format!("/groups/{gid}"),
            Some(&app.auth_a()),
            None,
        )
        .await
        .data();
        assert_eq!(next_note(&mut joiner).await["disband"]["group_id"], gid);
        leaver.expect_silence(Duration::from_millis(200)).await;
    }
}

async fn leave(app: &TestApp, gid: u64, uid: u64) -> Value {
    app.call(
        "DELETE",
        &format!("/groups/{gid}/members/{uid}"),
        Some(&app.auth_a()),
        None,
    )
    .await
    .data()
    .clone()
}

/// Issue 16: the master may leave. The longest-standing member who stays (earliest join; on
/// a tie the lowest uid) becomes master, named as `new_master` in the master's `quit_group`;
/// the group goes on. The last member's leaving disbands it.
#[actix_web::test]
async fn a_master_may_leave_and_the_longest_standing_member_takes_over() {
    for backend in BACKENDS {
        for is_super in [false, true] {
            let app = spawn_app(backend).await;
            let mut two = app.online(2, 1, "p").await;
            let gid = create(
                &app,
                json!({"master": 1, "name": "h", "super": is_super, "members": [3, 2]}),
            )
            .await;
            assert!(next_note(&mut two).await.get("create").is_some());
            // 4 joins later than everyone else: never the successor while they stay.
            app.post(&format!("/groups/{gid}/members"), json!([4]))
                .await
                .data();
            assert!(next_note(&mut two).await.get("add_member").is_some());
            assert_eq!(leave(&app, gid, 1).await["removed"], json!([1]));
            let quit = next_note(&mut two).await;
            assert_eq!(
                (
                    quit["quit_group"]["member_id"].clone(),
                    quit["quit_group"]["new_master"].clone()
                ),
                (json!(1), json!(2)),
                "{backend:?} super {is_super}: created together, the lowest uid wins the tie"
            );
            let g = info(&app, gid).await;
            assert_eq!(
                (g["master"].clone(), member_uids(&g)),
                (json!(2), vec![2, 3, 4])
            );
            assert_eq!(send(&app, 3, gid, "still here").await.status, 200);
            assert_eq!(two.recv().await["content"], "still here");
            // The new master leaves too; then the rest, the last of whom disbands the group.
            leave(&app, gid, 2).await;
            assert_eq!(info(&app, gid).await["master"], 3, "{backend:?}");
            let mut last = app.online(4, 1, "p").await;
            leave(&app, gid, 3).await;
            assert_eq!(leave(&app, gid, 4).await["removed"], json!([4]));
            assert_eq!(next_note(&mut last).await["quit_group"]["member_id"], 3);
            assert_eq!(next_note(&mut last).await["quit_group"]["member_id"], 4);
            app.get(&format!("/groups/{gid}"))
                .await
                .assert_error(404, "group_not_found");
            send(&app, 4, gid, "anyone?")
                .await
                .assert_error(404, "group_not_found");
        }
    }
}

#[actix_web::test]
async fn non_members_and_muted_members_cannot_send() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let gid = create(&app, json!({"master": 1, "name": "g", "members": [2]})).await;
        send(&app, 9, gid, "x")
            .await
            .assert_error(403, "not_group_member");
        patch_member(&app, gid, 2, json!({"mute": true}))
            .await
            .data();
        send(&app, 2, gid, "x")
            .await
            .assert_error(403, "member_muted");
        let mut ws = app.online(2, 1, "p").await;
        ws.send(json!({"type": "send", "kind": "group", "to": gid, "content": "x", "ref": "a"}))
            .await;
        let e = ws.recv_type("error").await;
        assert_eq!(
            (e["error"].as_str(), e["ref"].as_str()),
            (Some("member_muted"), Some("a"))
        );
        send(&app, 1, 999_999, "x")
            .await
            .assert_error(404, "group_not_found");
    }
}

#[actix_web::test]
async fn members_get_messages_and_membership_changes_take_effect_between_them() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let gid = create(&app, json!({"master": 1, "name": "g", "members": [2, 3]})).await;
        let mut m1 = app.online(1, 1, "p").await;
        let mut m3 = app.online(3, 1, "p").await;
        let mut late = app.online(4, 1, "p").await;
        let id = send(&app, 2, gid, "first").await.data()["msg_id"].clone();
        for ws in [&mut m1, &mut m3] {
            let m = ws.recv().await;
            assert_eq!(
                (
                    m["kind"].as_str(),
                    m["id"].clone(),
                    m["group_id"].as_u64(),
                    m["sender"].as_u64()
                ),
                (Some("group"), id.clone(), Some(gid), Some(2))
            );
            assert!(
                m["seq"].as_u64().is_some(),
                "normal groups store per member: {m}"
            );
        }
        app.call(
            "DELETE",
            &format!("/groups/{gid}/members/3"),
            Some(&app.auth_a()),
            None,
        )
        .await
        .data();
        app.post(&format!("/groups/{gid}/members"), json!([4]))
            .await
            .data();
        send(&app, 1, gid, "second").await.data();
        assert_eq!(next_note(&mut m3).await["quit_group"]["member_id"], 3);
        m3.expect_silence(Duration::from_millis(200)).await;
        assert_eq!(next_note(&mut late).await["add_member"]["member_id"], 4);
        assert_eq!(late.recv().await["content"], "second", "{backend:?}");
        // A ws send reaches the others; the sending device gets the ack.
        let mut m1b = app.ws(&app.grant(1).await, 3, "web").await;
        m1.send(
            json!({"type": "send", "kind": "group", "to": gid, "content": "from ws", "ref": "r"}),
        )
        .await;
        let ack = m1.recv_type("ack").await;
        assert!(ack["seq"].as_u64().is_some());
        assert_eq!(
            m1b.recv().await["content"],
            "from ws",
            "the sender's other device gets it"
        );
        assert_eq!(late.recv().await["content"], "from ws");
    }
}

#[actix_web::test]
async fn concurrent_senders_messages_reach_every_member_in_the_same_order() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let members: Vec<u64> = (1..=6).collect();
        let gid = create(&app, json!({"master": 1, "name": "g", "members": members})).await;
        let mut clients = Vec::new();
        for uid in &members {
            clients.push(app.online(*uid, 1, "p").await);
        }
        let mut senders = Vec::new();
        for s in 1..=4u64 {
            let (base, auth) = (app.base.clone(), app.auth_a());
            senders.push(actix_web::rt::spawn(async move {
                let client = awc::Client::new();
                for i in 0..50 {
                    let body = json!({"sender": s, "receiver": gid, "content": format!("{s}-{i}")});
                    let res = client
                        .post(format!("{base}/messages/groups"))
                        .insert_header(("Authorization", auth.clone()))
                        .send_json(&body)
                        .await
                        .unwrap();
                    assert_eq!(res.status().as_u16(), 200);
                }
            }));
        }
        for s in senders {
            s.await.unwrap();
        }
        let mut orders = Vec::new();
        for ws in &mut clients {
            let mut order = Vec::new();
            while order.len() < 200 {
                let m = ws.recv().await;
                if m["kind"] == "group" {
                    order.push(m["id"].as_u64().unwrap_or_default());
                }
            }
            orders.push(order);
        }
        for o in &orders[1..] {
            assert_eq!(o, &orders[0], "{backend:?}: one order for everyone");
        }
        let mut sorted = orders[0].clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 200);
    }
}

#[actix_web::test]
async fn super_groups_deliver_live_with_group_seq_and_sync_from_join() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let t4 = app.grant(4).await;
        let mut online = Vec::new();
        for uid in 1..=3 {
            online.push(app.online(uid, 1, "p").await);
        }
        let gid = create(
            &app,
            json!({"master": 1, "name": "big", "super": true, "members": [2, 3, 4]}),
        )
        .await;
        for ws in &mut online {
            let n = ws.recv().await;
            assert!(
                n.get("group_seq").is_some() && n["kind"] == "group_notification",
                "create on the timeline: {n}"
            );
        }
        for i in 0..5 {
            send(&app, 2, gid, &format!("s{i}")).await.data();
        }
        for ws in &mut online {
            let seqs: Vec<u64> = [(); 5].iter().map(|_| 0).collect();
            let mut got = Vec::new();
            for _ in seqs {
                let m = ws.recv().await;
                assert!(
                    m.get("seq").is_none(),
                    "super groups are not in the inbox: {m}"
                );
                got.push(m["group_seq"].as_u64().unwrap_or_default());
            }
            assert_eq!(got, vec![2, 3, 4, 5, 6], "{backend:?}");
        }
        // Member 4 was offline: it syncs the timeline (and its inbox is empty).
        let mut four = app.ws(&t4, 1, "p").await;
        assert_eq!(four.hello["seq"], 0);
        four.send(json!({"type": "sync_group", "group_id": gid, "after": 0}))
            .await;
        let mut got = Vec::new();
        loop {
            let m = four.recv().await;
            if m["type"] == "sync_end" {
                assert_eq!(
                    (
                        m["group_id"].as_u64(),
                        m["group_seq"].as_u64(),
                        m["more"].as_bool()
                    ),
                    (Some(gid), Some(6), Some(false))
                );
                break;
            }
            got.push(m["group_seq"].as_u64().unwrap_or_default());
        }
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
        // A late joiner sees only what comes after joining.
        app.post(&format!("/groups/{gid}/members"), json!([7]))
            .await
            .data();
        send(&app, 1, gid, "after join").await.data();
        let mut seven = app.online(7, 1, "p").await;
        seven
            .send(json!({"type": "sync_group", "group_id": gid, "after": 0}))
            .await;
        let a = seven.recv().await;
        assert_eq!(a["kind"], "group_notification");
        assert_eq!(seven.recv().await["content"], "after join");
        assert_eq!(seven.recv().await["type"], "sync_end");
        // Non-members may not sync it.
        let mut outsider = app.online(50, 1, "p").await;
        outsider
            .send(json!({"type": "sync_group", "group_id": gid, "after": 0, "ref": "x"}))
            .await;
        assert_eq!(outsider.recv().await["error"], "not_group_member");
        // A ws send is acked with its group_seq.
        online[0]
            .send(json!({"type": "send", "kind": "group", "to": gid, "content": "ws", "ref": 1}))
            .await;
        let ack = online[0].recv_type("ack").await;
        assert!(ack["group_seq"].as_u64().is_some(), "{ack}");
    }
}

#[actix_web::test]
async fn group_push_jobs_list_offline_members_except_the_sender_and_do_not_disturb() {
    // A super group decides on push in its one walk over the members: same outcome.
    for is_super in [false, true] {
        let (mut s, url) = test_settings(Backend::Redis);
        s.push.sink = im_dispatcher::config::PushSinkKind::Redis;
        s.push.flush_interval_ms = 5;
        let app = spawn_with(s, url).await;
        let gid = create(
            &app,
            json!({"master": 1, "name": "g", "super": is_super, "members": [2, 3, 4]}),
        )
        .await;
        patch_member(&app, gid, 3, json!({"do_not_disturb": true}))
            .await
            .data();
        let _online = app.online(4, 1, "p").await;
        send(&app, 1, gid, "hello group").await.data();
        let mut jobs: Vec<String> = Vec::new();
        for _ in 0..500 {
            jobs = app
                .redis()
                .lrange("group_push_queue", 0, -1)
                .unwrap_or_default();
            if !jobs.is_empty() {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let job: Value = serde_json::from_str(&jobs[0]).unwrap();
        assert_eq!(
            job["receivers"],
            json!([2]),
            "super {is_super}: 1 sent it, 3 has DND, 4 is online"
        );
        assert_eq!(
            (
                job["group_id"].as_u64(),
                job["sender"].as_u64(),
                job["content"].as_str()
            ),
            (Some(gid), Some(1), Some("hello group"))
        );
        // The original DND representations are written too.
        let field: String = app
            .redis()
            .hget("users_7_3", format!("group_{gid}"))
            .unwrap_or_default();
        assert_eq!(field, "1");
        let conv: bool = app
            .redis()
            .sismember("conversations_donotdisturb_7_3", format!("g:{gid}"))
            .unwrap_or(false);
        assert!(conv);
    }
}

#[actix_web::test]
async fn another_apps_group_is_not_found_everywhere_and_its_id_is_free_for_others() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        for _ in 0..2 {
            create(&app, json!({"master": 1, "name": "before", "members": []})).await;
        }
        let gid = create(&app, json!({"master": 1, "name": "mine", "members": [2]})).await;
        let b = Some(app.auth_b());
        let b = b.as_deref();
        for (method, path, body) in [
            ("GET", format!("/groups/{gid}"), None),
            (
                "PATCH",
                format!("/groups/{gid}"),
                Some(json!({"name": "x"})),
            ),
            ("DELETE", format!("/groups/{gid}"), None),
            ("POST", format!("/groups/{gid}/upgrade"), None),
            ("POST", format!("/groups/{gid}/members"), Some(json!([9]))),
            ("DELETE", format!("/groups/{gid}/members"), Some(json!([2]))),
            ("DELETE", format!("/groups/{gid}/members/2"), None),
            (
                "PATCH",
                format!("/groups/{gid}/members/2"),
                Some(json!({"mute": true})),
            ),
            (
                "POST",
                "/messages/groups".to_string(),
                Some(json!({"sender": 1, "receiver": gid, "content": "x"})),
            ),
            (
                "POST",
                "/messages/groups/notifications".to_string(),
                Some(json!({"group_id": gid, "content": "x"})),
            ),
        ] {
            let res = app.call(method, &path, b, body).await;
            res.assert_error(404, "group_not_found");
        }
        let g = info(&app, gid).await;
        assert_eq!(
            (g["name"].as_str(), member_uids(&g)),
            (Some("mine"), vec![1, 2]),
            "{backend:?}: untouched"
        );
        // Group ids are per app: app B can name the same id and gets a group of its own,
        // which reveals nothing of app A's (no 409 that would say the id is in use).
        let res = app
            .call(
                "POST",
                "/groups",
                b,
                Some(json!({"master": 5, "name": "theirs", "members": [6], "group_id": gid})),
            )
            .await;
        assert_eq!(res.status, 200, "{backend:?}: {}", res.body);
        assert_eq!(res.data()["group_id"], gid);
        let theirs = app.call("GET", &format!("/groups/{gid}"), b, None).await;
        assert_eq!(theirs.data()["name"], "theirs", "{backend:?}");
        let g = info(&app, gid).await;
        assert_eq!(
            (g["name"].as_str(), member_uids(&g)),
            (Some("mine"), vec![1, 2]),
            "{backend:?}: app A's group is still its own"
        );
        let res = app
            .call(
                "POST",
                "/messages/groups",
                b,
                Some(json!({"sender": 5, "receiver": gid, "content": "b's"})),
            )
            .await;
        assert_eq!(res.status, 200, "{backend:?}: app B sends in its own group");
        assert_eq!(send(&app, 2, gid, "a's").await.status, 200, "{backend:?}");
        // App B's first allocated id is its own count, not after app A's.
        let res = app
            .call(
                "POST",
                "/groups",
                b,
                Some(json!({"master": 5, "name": "n", "members": []})),
            )
            .await;
        assert_eq!(res.data()["group_id"], 1, "{backend:?}: per-app group ids");
    }
}

#[actix_web::test]
async fn malformed_group_bodies_are_400_naming_the_field_and_change_nothing() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.limits.normal_group_members = 5;
    let app = spawn_with(s, None).await;
    for (body, mention) in [
        (json!({"master": 1, "name": "g", "members": 5}), "members"),
        (
            json!({"master": 1, "name": "g", "members": [{"name": "x"}]}),
            "members[0].uid",
        ),
        (
            json!({"master": 1, "name": "g", "members": [2, "abc"]}),
            "members[1]",
        ),
        (
            json!({"master": 1, "name": "g", "members": [0]}),
            "members[0]",
        ),
        (
            json!({"master": 1, "name": "g", "members": [-4]}),
            "members[0]",
        ),
        (
            json!({"master": 1, "name": "g", "members": [true]}),
            "members[0]",
        ),
        (json!({"master": 1, "name": 7, "members": []}), "name"),
        (json!({"master": 1, "members": []}), "name"),
        (json!({"name": "g", "members": []}), "master"),
        (json!({"master": 1, "name": "g"}), "members"),
        (
            json!({"master": 1, "name": "g", "members": [{"uid": 2, "name": 5}]}),
            "members[0].name",
        ),
    ] {
        let res = app.post("/groups", body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.body);
        assert!(res.message().contains(mention), "{body}: {}", res.message());
    }
    let res = app
        .post(
            "/groups",
            json!({"master": 1, "name": "g", "members": [2, 3, 4, 5, 6]}),
        )
        .await;
    res.assert_error(400, "group_too_large");
    assert!(res.message().contains("super"), "{}", res.message());
    let gid = create(&app, json!({"master": 1, "name": "g", "members": [2]})).await;
    for (method, path, body, mention) in [
        (
            "POST",
            format!("/groups/{gid}/members"),
            json!({"members": "x"}),
            "members",
        ),
        (
            "POST",
            format!("/groups/{gid}/members"),
            json!({"members": [3, {"uid": "zz"}]}),
            "members[1].uid",
        ),
        ("POST", format!("/groups/{gid}/members"), json!(5), "body"),
        (
            "POST",
            format!("/groups/{gid}/members"),
            json!({"members": [3], "inviter": 5}),
            "inviter",
        ),
        (
            "DELETE",
            format!("/groups/{gid}/members"),
            json!([]),
            "empty",
        ),
        (
            "DELETE",
            format!("/groups/{gid}/members"),
            json!([{"name": "x"}]),
            "uid",
        ),
        (
            "PATCH",
            format!("/groups/{gid}/members/2"),
            json!({}),
            "do_not_disturb",
        ),
        (
            "PATCH",
            format!("/groups/{gid}/members/2"),
            json!({"mute": "x"}),
            "mute",
        ),
        (
            "PATCH",
            format!("/groups/{gid}"),
            json!({"name": 5}),
            "name",
        ),
    ] {
        let res = app
            .call(method, &path, Some(&app.auth_a()), Some(body.clone()))
            .await;
        assert_eq!(res.status, 400, "{method} {path} {body}: {}", res.body);
        assert!(res.message().contains(mention), "{body}: {}", res.message());
    }
    // Too many in one add: nothing added.
    app.post(&format!("/groups/{gid}/members"), json!([3, 4, 5, 6]))
        .await
        .assert_error(400, "group_too_large");
    assert_eq!(member_uids(&info(&app, gid).await), vec![1, 2]);
    patch_member(&app, gid, 9, json!({"mute": true}))
        .await
        .assert_error(403, "not_group_member");
    app.get("/groups/424242")
        .await
        .assert_error(404, "group_not_found");
    app.get("/groups/abc")
        .await
        .assert_error(400, "invalid_path");
}

#[actix_web::test]
async fn group_changes_are_appended_to_group_manager_stream_in_the_original_format() {
    let app = spawn_app(Backend::Redis).await;
    let gid = create(&app, json!({"master": 1, "name": "g", "members": [2]})).await;
    app.post(&format!("/groups/{gid}/members"), json!([3]))
        .await
        .data();
    patch_member(&app, gid, 3, json!({"mute": true}))
        .await
        .data();
    app.call(
        "DELETE",
        &format!("/groups/{gid}/members/3"),
        Some(&app.auth_a()),
        None,
    )
    .await
    .data();
    app.post(&format!("/groups/{gid}/upgrade"), json!({}))
        .await
        .data();
    app.call(
        "DELETE",
        &format!("/groups/{gid}"),
        Some(&app.auth_a()),
        None,
    )
    .await
    .data();
    let entries: redis::streams::StreamRangeReply =
        app.redis().xrange_all("group_manager_stream").unwrap();
    let events: Vec<std::collections::HashMap<String, String>> = entries
        .ids
        .iter()
        .map(|e| {
            e.map
                .iter()
                .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
                .collect()
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str()).collect();
    assert_eq!(
        names,
        vec![
            "group_create",
            "group_member_add",
            "group_member_add",
            "group_member_add",
            "group_member_mute",
            "group_member_remove",
            "group_upgrade",
            "group_disband",
        ]
    );
    let g = gid.to_string();
    assert_eq!(
        (
            events[0]["group_id"].as_str(),
            events[0]["app_id"].as_str(),
            events[0]["super"].as_str()
        ),
        (g.as_str(), "7", "0")
    );
    assert_eq!(events[4]["member_id"], "3");
    assert_eq!(events[4]["mute"], "1");
    assert_eq!(events[6]["super"], "1");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["action_id"], (i + 1).to_string());
        assert_eq!(e["previous_action_id"], i.to_string());
    }
    let actions: String = app.redis().get("groups_actions").unwrap();
    assert_eq!(actions, "7:8");
}

#[actix_web::test]
async fn a_restart_with_redis_loses_no_group_member_or_setting() {
    let (settings, url) = test_settings(Backend::Redis);
    let app = spawn_with(settings.clone(), url.clone()).await;
    let gid = create(
        &app,
        json!({"master": 1, "name": "keep", "members": [2, 3], "group_id": 4242}),
    )
    .await;
    assert_eq!(gid, 4242);
    patch_member(&app, gid, 2, json!({"nickname": "two", "mute": true}))
        .await
        .data();
    app.post(&format!("/groups/{gid}/upgrade"), json!({}))
        .await
        .data();
    let before = info(&app, gid).await;
    drop(app);
    let again = spawn_with(settings, url).await;
    let after = info(&again, gid).await;
    assert_eq!(before, after);
    send(&again, 2, gid, "x")
        .await
        .assert_error(403, "member_muted");
    // Allocated ids skip the one the app chose.
    let other = create(&again, json!({"master": 1, "name": "n", "members": []})).await;
    assert_ne!(other, 4242);
}

#[actix_web::test]
async fn a_group_created_with_an_id_that_was_asked_about_before_exists_at_once() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut member = app.online(2, 1, "p").await;
        app.get("/groups/42")
            .await
            .assert_error(404, "group_not_found");
        let gid = create(
            &app,
            json!({"group_id": 42, "master": 1, "name": "late", "members": [2]}),
        )
        .await;
        assert_eq!(gid, 42);
        assert!(
            next_note(&mut member).await.get("create").is_some(),
            "{backend:?}: the members hear of the new group"
        );
        assert_eq!(member_uids(&info(&app, 42).await), vec![1, 2]);
        assert_eq!(send(&app, 2, 42, "hi").await.status, 200, "{backend:?}");
    }
}

#[actix_web::test]
async fn group_ids_an_app_chooses_are_kept_exactly_up_to_the_largest() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        // 2^53 + 1 is the first integer a double cannot hold; 2^63 - 1 is the largest id.
        for gid in [9_007_199_254_740_993u64, 9_223_372_036_854_775_807] {
            let created = create(
                &app,
                json!({"group_id": gid, "master": 1, "name": "big", "members": [2]}),
            )
            .await;
            assert_eq!(created, gid, "{backend:?}");
            assert_eq!(info(&app, gid).await["group_id"], gid, "{backend:?}");
            assert_eq!(send(&app, 2, gid, "hi").await.status, 200, "{backend:?}");
        }
        let taken = app
            .post(
                "/groups",
                json!({"group_id": 9_007_199_254_740_993u64, "master": 1, "name": "again", "members": []}),
            )
            .await;
        taken.assert_error(409, "group_id_taken");
        let fresh = create(
            &app,
            json!({"master": 1, "name": "allocated", "members": []}),
        )
        .await;
        assert_eq!(info(&app, fresh).await["name"], "allocated");
    }
}

/// (operation, id) of every group notification among `messages`.
fn note_ids(messages: &[Value]) -> Vec<(String, Option<u64>)> {
    messages
        .iter()
        .filter(|m| m["kind"] == "group_notification")
        .map(|m| {
            let content: Value =
                serde_json::from_str(m["content"].as_str().unwrap_or_default()).unwrap_or_default();
            let op = content
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            (op, m["id"].as_u64())
        })
        .collect()
}

/// SPEC §5.2: `id` identifies one message. A notification to more inboxes than one store
/// append takes (1,000) is stored in several appends, and keeps one id across all of them.
#[actix_web::test]
async fn a_notification_to_a_large_normal_group_has_one_id_in_every_inbox() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let (first, last) = (app.grant(1).await, app.grant(1500).await);
        let members: Vec<u64> = (2..=1500).collect();
        let gid = create(
            &app,
            json!({"master": 1, "name": "many", "members": members}),
        )
        .await;
        app.call(
            "PATCH",
            &format!("/groups/{gid}"),
            Some(&app.auth_a()),
            Some(json!({"name": "more"})),
        )
        .await
        .data();
        // Members are stored in uid order: 1 is in the first append, 1500 in the second.
        let mut seen = Vec::new();
        for token in [&first, &last] {
            let mut ws = app.ws(token, 1, "p").await;
            seen.push(note_ids(&ws.sync_all(0).await));
        }
        let ops: Vec<&str> = seen[0].iter().map(|(op, _)| op.as_str()).collect();
        assert_eq!(ops, ["create", "update_name"], "{backend:?}");
        assert_eq!(seen[0], seen[1], "{backend:?}: one notification, one id");
    }
}

/// A super group's leaver gets `quit_group` in their inbox (they no longer read the timeline):
/// the same message, so the same id, as the timeline entry the remaining members get.
#[actix_web::test]
async fn a_super_group_leavers_quit_notification_has_the_timeline_entrys_id() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut master = app.online(1, 1, "p").await;
        let gid = create(
            &app,
            json!({"master": 1, "name": "big", "super": true, "members": [2, 3]}),
        )
        .await;
        assert!(next_note(&mut master).await.get("create").is_some());
        app.call(
            "DELETE",
            &format!("/groups/{gid}/members/2"),
            Some(&app.auth_a()),
            None,
        )
        .await
        .data();
        let on_timeline = master.recv().await;
        assert!(on_timeline.get("group_seq").is_some(), "{on_timeline}");
        let mut leaver = app.online(2, 1, "p").await;
        let in_inbox = note_ids(&leaver.sync_all(0).await);
        assert_eq!(
            in_inbox,
            vec![("quit_group".to_string(), on_timeline["id"].as_u64())],
            "{backend:?}"
        );
    }
}

/// A uid repeated in one add or remove counts once (its first entry), and the changed members
/// are answered and announced in the order given.
#[actix_web::test]
async fn repeated_uids_in_one_membership_change_count_once_in_the_order_given() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let mut master = app.online(1, 1, "p").await;
        let gid = create(&app, json!({"master": 1, "name": "g", "members": [2, 3]})).await;
        next_note(&mut master).await;
        let res = app
            .post(
                &format!("/groups/{gid}/members"),
                json!([9, 5, 9, {"uid": 5, "name": "later"}, 2, 7]),
            )
            .await;
        assert_eq!(res.data()["added"], json!([9, 5, 7]), "{backend:?}");
        let mut notes = Vec::new();
        for _ in 0..3 {
            notes.push(next_note(&mut master).await["add_member"].clone());
        }
        let ids: Vec<&Value> = notes.iter().map(|n| &n["member_id"]).collect();
        assert_eq!(ids, [&json!(9), &json!(5), &json!(7)]);
        assert!(
            notes[1].get("name").is_none(),
            "the first entry of 5 counts"
        );
        let res = app
            .call(
                "DELETE",
                &format!("/groups/{gid}/members"),
                Some(&app.auth_a()),
                Some(json!([7, 3, 7, 8])),
            )
            .await;
        assert_eq!(res.data()["removed"], json!([7, 3]), "{backend:?}");
        for uid in [7, 3] {
            assert_eq!(next_note(&mut master).await["quit_group"]["member_id"], uid);
        }
        assert_eq!(member_uids(&info(&app, gid).await), vec![1, 2, 5, 9]);
    }
}

#[actix_web::test]
async fn a_retried_group_notification_is_stored_and_delivered_once() {
    for backend in BACKENDS {
        for is_super in [false, true] {
            let app = spawn_app(backend).await;
            let mut member = app.online(2, 1, "p").await;
            let gid = create(
                &app,
                json!({"master": 1, "name": "g", "super": is_super, "members": [2]}),
            )
            .await;
            assert!(next_note(&mut member).await.get("create").is_some());
            let body =
                json!({"group_id": gid, "content": "{\"pinned\":1}", "client_msg_id": "n-1"});
            let first = app
                .post("/messages/groups/notifications", body.clone())
                .await;
            let again = app.post("/messages/groups/notifications", body).await;
            let id = first.data()["msg_id"].as_u64();
            assert!(id.is_some(), "{}", first.body);
            assert_eq!(again.data()["msg_id"].as_u64(), id, "super {is_super}");
            assert_eq!(next_note(&mut member).await["pinned"], 1);
            member.expect_silence(Duration::from_millis(200)).await;
        }
    }
}
