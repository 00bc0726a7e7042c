//! The connection threads' nice follows delivery (`dispatch/pace.rs`), seen from outside the
//! real process: the process's own nice (0 here) while delivery is light, `http.connection_nice`
//! (19) after a burst, back at the next light message — or 19 for good where the process may
//! not go back.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::*;
use crate::process;

const MEMBERS: u64 = 200;

/// The nice value of every thread of process `pid`.
fn thread_nices(pid: u32) -> Vec<i32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/task: {e}"));
    let nice = |stat: String| {
        let fields = stat.rsplit_once(')').map(|(_, rest)| rest.to_owned())?;
        fields.split_whitespace().nth(16)?.parse().ok()
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter_map(nice)
        .collect()
}

fn some_at_19(server: &process::Server) -> bool {
    thread_nices(server.child.id()).contains(&19)
}

/// Waits up to 5 s for `cond`.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

async fn post_group_message(server: &process::Server, gid: u64, content: String) -> u16 {
    let res = awc::Client::new()
        .post(format!("{}/messages/groups", server.base()))
        .insert_header(("Authorization", process::demo_auth()))
        .send_json(&json!({"sender": 1, "receiver": gid, "content": content}))
        .await;
    res.map_or(0, |r| r.status().as_u16())
}

/// `count` messages to `gid`, 32 at a time; all answered 200.
async fn burst(server: &process::Server, gid: u64, count: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(32) {
        let sends = chunk
            .iter()
            .map(|i| post_group_message(server, gid, format!("b{i}")));
        assert!(
            join_all(sends).await.iter().all(|s| *s == 200),
            "burst sends"
        );
    }
}

async fn next_group_message(ws: &mut Ws) -> serde_json::Value {
    loop {
        let m = ws.recv().await;
        if m["kind"] == "group" {
            return m;
        }
    }
}

#[actix_web::test]
async fn connection_threads_keep_the_process_nice_while_delivery_is_light_and_lower_after_a_burst()
{
    let level = "warn,im_dispatcher::dispatch::conn_threads=info";
    let server = process::Server::start(&[("IMD_LOG__LEVEL", level.into())]);
    let mut members = Vec::new();
    for uid in 2..=MEMBERS + 1 {
        members.push(ws_at(&server.addr, &server.grant(uid).await, 1, "d").await);
    }
    let mode = |s: &process::Server| {
        let log = s.log_text();
        log.lines()
            .find(|l| l.contains("connection threads:"))
            .map(str::to_owned)
    };
    assert!(eventually(|| mode(&server).is_some()).await, "no mode line");
    let adaptive = mode(&server).is_some_and(|l| l.contains("while it is behind"));
    eprintln!("pacing: adaptive {adaptive}");
    let res = awc::Client::new()
        .post(format!("{}/groups", server.base()))
        .insert_header(("Authorization", process::demo_auth()))
        .send_json(&json!({"master": 1, "name": "p", "super": true,
            "members": (2..=MEMBERS + 1).collect::<Vec<_>>()}))
        .await;
    let mut res = res.unwrap_or_else(|e| panic!("create: {e}"));
    let v: serde_json::Value = res.json().await.unwrap_or_else(|e| panic!("create: {e}"));
    let gid = v["data"]["group_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{v}"));

    assert_eq!(post_group_message(&server, gid, "light".into()).await, 200);
    for ws in members.iter_mut() {
        assert_eq!(next_group_message(ws).await["content"], "light");
    }
    if !adaptive {
        // May not go back to 0 (no CAP_SYS_NICE): the connection threads sit at 19.
        assert!(
            some_at_19(&server),
            "fixed mode: the connection threads at 19"
        );
        return;
    }
    assert!(!some_at_19(&server), "light delivery at the process's nice");

    // A burst makes delivery heavy; idle afterwards (every member has read it all), the
    // threads stay where it left them.
    let mut lowered = false;
    for n in 1..=5 {
        burst(&server, gid, 200).await;
        for ws in members.iter_mut() {
            for _ in 0..200 {
                next_group_message(ws).await;
            }
        }
        if some_at_19(&server) {
            eprintln!("pacing: at 19 after {n} bursts");
            lowered = true;
            break;
        }
    }
    assert!(
        lowered,
        "a burst to {MEMBERS} members lowers a connection thread to 19"
    );

    // A light message after a quiet window brings them back.
    actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(post_group_message(&server, gid, "again".into()).await, 200);
    assert!(
        eventually(|| !some_at_19(&server)).await,
        "back after a quiet window and a light round"
    );
}
