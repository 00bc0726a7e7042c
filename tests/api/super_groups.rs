//! SPEC §9 big super groups, at 100,000 members through the API: built and changed in big
//! batches announced by one summary each, delivered only to the members online (once per
//! connection), pushed to every offline member exactly once in jobs of at most 1,000
//! (checked against the redis sink's queue), paged by `GET /groups/{gid}`, and loaded back
//! after a restart.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::redis_server;

/// Members the big group ends up with before the big removal.
const MEMBERS: u64 = 100_000;

async fn members_post(app: &TestApp, gid: u64, uids: std::ops::RangeInclusive<u64>) -> Value {
    let list: Vec<u64> = uids.collect();
    app.post(
        &format!("/groups/{gid}/members"),
        json!({ "members": list }),
    )
    .await
    .data()
    .clone()
}

/// Every member, page by page: the pages must add up to the membership.
async fn all_pages(app: &TestApp, gid: u64, limit: usize) -> (Vec<u64>, usize) {
    let (mut uids, mut pages, mut cursor) = (Vec::new(), 0, String::new());
    loop {
        let res = app
            .get(&format!("/groups/{gid}?limit={limit}&cursor={cursor}"))
            .await;
        let g = res.data();
        let page: Vec<u64> = g["members"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["uid"].as_u64()).collect())
            .unwrap_or_default();
        assert!(page.len() <= limit, "a page holds at most its limit");
        assert_eq!(g["member_count"].as_u64(), Some(member_total(g)));
        uids.extend(page);
        pages += 1;
        match g["next_cursor"].as_u64() {
            Some(next) => cursor = next.to_string(),
            None => return (uids, pages),
        }
    }
}

fn member_total(g: &Value) -> u64 {
    g["member_count"].as_u64().unwrap_or(0)
}

/// The next group notification on `ws` (skipping other frames): its parsed content.
async fn note(ws: &mut Ws) -> Value {
    loop {
        let m = ws.recv().await;
        if m["kind"] == "group_notification" {
            return serde_json::from_str(m["content"].as_str().unwrap_or_default()).unwrap();
        }
    }
}

/// Group push jobs of message `content` in the redis sink's queue, once `expected` receivers
/// are in (or the deadline passed): receivers → how often each came.
async fn pushed(sink: &str, content: &str, expected: usize) -> HashMap<u64, usize> {
    let mut con = redis_server::connect(sink);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs: Vec<String> = con.lrange("group_push_queue", 0, -1).unwrap();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for job in &jobs {
            let job: Value = serde_json::from_str(job).unwrap();
            if job["content"] != content {
                continue;
            }
            let receivers = job["receivers"].as_array().unwrap();
            assert!(
                !receivers.is_empty() && receivers.len() <= 1000,
                "jobs of 1 to 1,000 receivers: {}",
                receivers.len()
            );
            assert!(
                job.get("device_tokens").is_none(),
                "the redis sink leaves tokens to the daemon"
            );
            for r in receivers {
                *seen.entry(r.as_u64().unwrap()).or_default() += 1;
            }
        }
        let total: usize = seen.values().sum();
        if total >= expected || Instant::now() > deadline {
            return seen;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Who is online in the test, and how.
struct Online {
    /// iOS (online for push): 2, 60_000 (added later), 99_999 (removed later).
    phones: Vec<(u64, Ws)>,
    /// 3 on iOS and on the web: two connections.
    second: Ws,
    /// Web only, mute off: online, yet pushed (SPEC §6) — 4 has a device token, 5 has none.
    webs: Vec<(u64, Ws)>,
    /// Online but not a member.
    outsider: Ws,
}

async fn connect(app: &TestApp) -> Online {
    let mut phones = Vec::new();
    for uid in [2, 3, 60_000, 99_999] {
        phones.push((uid, app.online(uid, 1, "phone").await));
    }
    let second = app.ws(&app.grant(3).await, 3, "web").await;
    app.bind_token(4).await;
    let webs = vec![
        (4, app.online(4, 3, "web").await),
        (5, app.online(5, 3, "web").await),
    ];
    Online {
        phones,
        second,
        webs,
        outsider: app.online(200_000, 1, "phone").await,
    }
}

impl Online {
    fn all(&mut self) -> impl Iterator<Item = (u64, &mut Ws)> {
        self.phones
            .iter_mut()
            .chain(self.webs.iter_mut())
            .map(|(u, ws)| (*u, ws))
            .chain(std::iter::once((3, &mut self.second)))
    }
}

#[actix_web::test]
async fn a_hundred_thousand_member_super_group_is_built_used_and_reloaded_through_the_api() {
    for backend in BACKENDS {
        let started = Instant::now();
        let (mut s, url) = test_settings(backend);
        let sink = url.clone().unwrap_or_else(redis_server::fresh_db);
        s.push.sink = im_dispatcher::config::PushSinkKind::Redis;
        s.push.redis_url = sink.clone();
        s.push.flush_interval_ms = 5;
        let app = spawn_with(s.clone(), url.clone()).await;
        let mut on = connect(&app).await;

        // Built in two big requests: a create, then an add announced by one summary.
        let first: Vec<u64> = (2..=MEMBERS / 2).collect();
        let res = app
            .post(
                "/groups",
                json!({"master": 1, "name": "big", "super": true, "members": first}),
            )
            .await;
        let gid = res.data()["group_id"].as_u64().unwrap();
        let added = members_post(&app, gid, MEMBERS / 2 + 1..=MEMBERS).await;
        assert_eq!(added["added"].as_array().map(Vec::len), Some(50_000));
        for (uid, ws) in on.all() {
            if uid <= MEMBERS / 2 {
                assert!(note(ws).await.get("create").is_some(), "{uid}");
            }
            let summary = note(ws).await;
            let s = &summary["add_members"];
            assert_eq!(
                (
                    s["count"].as_u64(),
                    s["member_ids"].as_array().map(Vec::len)
                ),
                (Some(50_000), Some(50_000)),
                "{backend:?}: one notification listing them, to {uid}"
            );
        }
        patch_dnd(&app, gid, 7).await;

        let (uids, pages) = all_pages(&app, gid, 10_000).await;
        assert_eq!(pages, 10);
        assert_eq!(uids, (1..=MEMBERS).collect::<Vec<_>>(), "{backend:?}");

        // Live to the members online, once per connection; nobody else.
        let sent = send(&app, 1, gid, "m1").await;
        for (uid, ws) in on.all() {
            assert_eq!(
                ws.group_contents(Duration::from_millis(300)).await,
                ["m1"],
                "{uid}"
            );
        }
        on.outsider.expect_silence(Duration::from_millis(100)).await;
        // Push: every offline member but the sender and DND, plus web user 4 (a token); not
        // the phones, nor web user 5 (no token).
        let expected: BTreeSet<u64> = (2..=MEMBERS)
            .filter(|u| ![2, 3, 5, 7, 60_000, 99_999].contains(u))
            .collect();
        let got = pushed(&sink, "m1", expected.len()).await;
        assert!(
            got.values().all(|n| *n == 1),
            "{backend:?}: each receiver once"
        );
        assert_eq!(got.keys().copied().collect::<BTreeSet<_>>(), expected);
        assert!(sent > 0);

        // Removed in one big request: one summary to those who stay, a quit_group of its own
        // to each leaver; the leavers receive nothing more, and are not pushed.
        let gone: Vec<u64> = (MEMBERS / 2 + 1..=MEMBERS).collect();
        let res = app
            .call(
                "DELETE",
                &format!("/groups/{gid}/members"),
                Some(&app.auth_a()),
                Some(json!(gone)),
            )
            .await;
        assert_eq!(res.data()["removed"].as_array().map(Vec::len), Some(50_000));
        for (uid, ws) in on.all() {
            let n = note(ws).await;
            if uid > MEMBERS / 2 {
                assert_eq!(n["quit_group"]["member_id"], uid, "{backend:?}");
            } else {
                assert_eq!(n["quit_members"]["count"], 50_000, "{backend:?}");
            }
        }
        send(&app, 1, gid, "m2").await;
        for (uid, ws) in on.all() {
            let want: &[&str] = if uid > MEMBERS / 2 { &[] } else { &["m2"] };
            assert_eq!(
                ws.group_contents(Duration::from_millis(300)).await,
                want,
                "{uid}"
            );
        }
        let expected: BTreeSet<u64> = expected.into_iter().filter(|u| *u <= MEMBERS / 2).collect();
        let got = pushed(&sink, "m2", expected.len()).await;
        assert_eq!(got.keys().copied().collect::<BTreeSet<_>>(), expected);

        if backend == Backend::Redis {
            // A restart loads it back (a page at a time); sends arriving meanwhile wait.
            drop(on);
            drop(app);
            let app = spawn_with(s, url).await;
            let sends: Vec<_> = (0..8)
                .map(|i| {
                    let (base, auth) = (app.base.clone(), app.auth_a());
                    actix_web::rt::spawn(async move {
                        awc::Client::new()
                            .post(format!("{base}/messages/groups"))
                            .insert_header(("Authorization", auth))
                            .send_json(
                                &json!({"sender": 1, "receiver": gid, "content": format!("r{i}")}),
                            )
                            .await
                            .map(|r| r.status().as_u16())
                    })
                })
                .collect();
            for s in sends {
                assert_eq!(
                    s.await.unwrap().ok(),
                    Some(200),
                    "waits for the load, then sends"
                );
            }
            let (uids, _) = all_pages(&app, gid, 10_000).await;
            assert_eq!(uids, (1..=MEMBERS / 2).collect::<Vec<_>>());
        }
        eprintln!("{backend:?}: {:.1} s", started.elapsed().as_secs_f64());
    }
}

async fn send(app: &TestApp, sender: u64, gid: u64, content: &str) -> u64 {
    let res = app
        .post(
            "/messages/groups",
            json!({"sender": sender, "receiver": gid, "content": content}),
        )
        .await;
    res.data()["msg_id"].as_u64().unwrap_or_default()
}

async fn patch_dnd(app: &TestApp, gid: u64, uid: u64) {
    app.call(
        "PATCH",
        &format!("/groups/{gid}/members/{uid}"),
        Some(&app.auth_a()),
        Some(json!({"do_not_disturb": true})),
    )
    .await
    .data();
}

/// A change staged and committed, then interrupted (the process died while applying it): the
/// next load of the group applies the rest of its journal before it answers anything, with
/// the members' index entries and stream events.
#[actix_web::test]
async fn a_membership_change_committed_before_a_crash_is_completed_by_the_next_load() {
    let (s, url) = test_settings(Backend::Redis);
    let app = spawn_with(s.clone(), url.clone()).await;
    let res = app
        .post(
            "/groups",
            json!({"master": 1, "name": "j", "super": true, "members": [2]}),
        )
        .await;
    let gid = res.data()["group_id"].as_u64().unwrap();
    drop(app);
    // What `store/redis/members.rs` leaves after the commit, before the first chunk.
    let mut r = app_redis(url.as_deref());
    let items: Vec<String> = (3..=2500)
        .map(|u| format!("{u}|1700000000,0,0,0,"))
        .collect();
    let _: () = r
        .rpush(format!("imd:group:{{7:{gid}}}:journal"), items)
        .unwrap();
    let _: () = r
        .hset(format!("imd:group:{{7:{gid}}}"), "journal", "add")
        .unwrap();
    let app = spawn_with(s, url).await;
    let (uids, _) = all_pages(&app, gid, 10_000).await;
    assert_eq!(uids, (1..=2500).collect::<Vec<_>>());
    let groups: Vec<u64> = r.smembers("imd:ugroups:{7:2500}").unwrap();
    assert_eq!(groups, vec![gid], "the index of a super group's member");
    let journal: bool = r.exists(format!("imd:group:{{7:{gid}}}:journal")).unwrap();
    let pending: bool = r
        .hexists(format!("imd:group:{{7:{gid}}}"), "journal")
        .unwrap();
    assert!(!journal && !pending, "the journal is done");
    let events: usize = r.xlen("group_manager_stream").unwrap();
    assert_eq!(
        events,
        1 + 2 + 2498,
        "create, its two members, the journal's"
    );
    // The online member of a rolled-forward add is reached too.
    let mut late = app.online(2400, 1, "p").await;
    send(&app, 1, gid, "after the crash").await;
    assert_eq!(late.recv().await["content"], "after the crash");
}

fn app_redis(url: Option<&str>) -> redis::Connection {
    redis_server::connect(url.unwrap_or_else(|| panic!("redis backend")))
}

/// `GET /groups/{gid}` pages in uid order; a bad cursor or limit is a 400 naming it.
#[actix_web::test]
async fn group_members_are_paged_by_cursor_and_limit() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let res = app
            .post(
                "/groups",
                json!({"master": 1, "name": "p", "members": [5, 3, 4, 2]}),
            )
            .await;
        let gid = res.data()["group_id"].as_u64().unwrap();
        let mut pages = Vec::new();
        let mut cursor = String::new();
        loop {
            let g = app
                .get(&format!("/groups/{gid}?limit=2&cursor={cursor}"))
                .await
                .data()
                .clone();
            assert_eq!(g["member_count"], 5);
            let page: Vec<u64> = g["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["uid"].as_u64().unwrap())
                .collect();
            pages.push((page, g["next_cursor"].clone()));
            match g["next_cursor"].as_u64() {
                Some(n) => cursor = n.to_string(),
                None => break,
            }
        }
        assert_eq!(
            pages,
            vec![
                (vec![1, 2], json!(2)),
                (vec![3, 4], json!(4)),
                (vec![5], Value::Null)
            ],
            "{backend:?}"
        );
        let whole = app.get(&format!("/groups/{gid}")).await.data().clone();
        assert_eq!(
            whole["members"].as_array().map(Vec::len),
            Some(5),
            "by default"
        );
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=10001", "limit"),
            ("cursor=abc", "cursor"),
        ] {
            let res = app.get(&format!("/groups/{gid}?{query}")).await;
            res.assert_error(400, "invalid_query");
            assert!(res.message().contains(field), "{query}: {}", res.message());
        }
    }
}

/// Past `limits.member_notification_threshold` a normal group, too, gets one summary in each
/// member's inbox; each leaver gets a `quit_group` of its own, naming itself.
#[actix_web::test]
async fn a_big_change_of_a_normal_group_is_one_summary_and_each_leaver_hears_of_itself() {
    for backend in BACKENDS {
        let (mut s, url) = test_settings(backend);
        s.limits.member_notification_threshold = 2;
        let app = spawn_with(s, url).await;
        let res = app
            .post("/groups", json!({"master": 1, "name": "n", "members": [2]}))
            .await;
        let gid = res.data()["group_id"].as_u64().unwrap();
        let mut master = app.online(1, 1, "p").await;
        let mut four = app.online(4, 1, "p").await;
        members_post(&app, gid, 3..=5).await;
        for ws in [&mut master, &mut four] {
            let n = note(ws).await;
            assert_eq!(
                n["add_members"]["member_ids"],
                json!([3, 4, 5]),
                "{backend:?}"
            );
        }
        app.call(
            "DELETE",
            &format!("/groups/{gid}/members"),
            Some(&app.auth_a()),
            Some(json!([3, 4, 5])),
        )
        .await
        .data();
        assert_eq!(note(&mut master).await["quit_members"]["count"], 3);
        let own = note(&mut four).await;
        assert_eq!(own["quit_group"]["member_id"], 4, "{backend:?}");
        // Stored in each leaver's inbox, as a message of its own.
        let mut five = app.online(5, 1, "p").await;
        let synced = five.sync_all(0).await;
        let contents: Vec<Value> = synced
            .iter()
            .filter_map(|m| serde_json::from_str(m["content"].as_str()?).ok())
            .collect();
        assert_eq!(
            contents
                .last()
                .map(|c| c["quit_group"]["member_id"].clone()),
            Some(json!(5))
        );
        four.expect_silence(Duration::from_millis(100)).await;
    }
}

/// An upgraded group's online members, and members added while online, get its messages
/// live from the timeline.
#[actix_web::test]
async fn members_online_when_a_group_is_upgraded_or_they_join_get_its_messages_live() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let res = app
            .post("/groups", json!({"master": 1, "name": "u", "members": [2]}))
            .await;
        let gid = res.data()["group_id"].as_u64().unwrap();
        let mut two = app.online(2, 3, "web").await;
        let mut six = app.online(6, 1, "p").await;
        app.post(&format!("/groups/{gid}/upgrade"), json!({}))
            .await
            .data();
        members_post(&app, gid, 6..=6).await;
        send(&app, 1, gid, "on the timeline").await;
        for ws in [&mut two, &mut six] {
            let m = loop {
                let m = ws.recv().await;
                if m["kind"] == "group" {
                    break m;
                }
            };
            assert_eq!(m["content"], "on the timeline", "{backend:?}");
            assert!(m["group_seq"].as_u64().is_some(), "{m}");
        }
    }
}
