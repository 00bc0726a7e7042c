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

/// The group messages (by content) a connection receives until `quiet` passes without one.
async fn contents(ws: &mut Ws, quiet: Duration) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(Ok(m)) = ws.next(quiet).await {
        if m["kind"] == "group" {
            got.push(m["content"].as_str().unwrap_or_default().to_string());
        }
    }
    got
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
                contents(ws, Duration::from_millis(300)).await,
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
                contents(ws, Duration::from_millis(300)).await,
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
