//! Several nodes on one Redis (README "Running several nodes"): three real `im-dispatcher
//! serve` processes on loopback ports and one private redis-server, users with devices on
//! different nodes, traffic sent round-robin over the nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::Ws;
use crate::process::{Server, demo_auth};
use crate::redis_server::Dedicated;

pub struct Cluster {
    pub redis: Dedicated,
    pub nodes: Vec<Server>,
}

impl Cluster {
    /// `n` nodes named `n0`, `n1`, … on one private Redis (AOF, fsync always), pushing to the
    /// original's Redis queues.
    pub fn start(n: usize) -> Cluster {
        let redis = Dedicated::start("always");
        let nodes = (0..n).map(|i| Self::node(&redis, i)).collect();
        Cluster { redis, nodes }
    }

    pub fn node(redis: &Dedicated, i: usize) -> Server {
        Self::node_with(redis, i, &[])
    }

    /// `node`, with more settings.
    pub fn node_with(redis: &Dedicated, i: usize, more: &[(&str, String)]) -> Server {
        let mut env = vec![
            ("IMD_STORE__KIND", "redis".to_string()),
            ("IMD_STORE__REDIS_URL", redis.url()),
            ("IMD_NODE__ID", format!("n{i}")),
            ("IMD_PUSH__SINK", "redis".into()),
            ("IMD_HTTP__WORKERS", "1".into()),
            ("IMD_LOG__LEVEL", "warn".into()),
        ];
        env.extend(more.iter().cloned());
        Server::start(&env)
    }

    /// Waits until every node's subscription is up (`/readyz`).
    pub async fn ready(&self) {
        for node in &self.nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let r = awc::Client::new()
                    .get(format!("{}/readyz", node.base()))
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status().as_u16() == 200) {
                    break;
                }
                assert!(Instant::now() < deadline, "node {} not ready", node.addr);
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// POST with the demo app's server credentials; (status, body).
pub async fn post(node: &Server, path: &str, body: Value) -> (u16, Value) {
    call(node, "POST", path, Some(body)).await
}

pub async fn call(node: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = awc::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", node.base()))
        .insert_header(("Authorization", demo_auth()))
        .timeout(Duration::from_secs(10));
    let mut res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status().as_u16();
    let v: Value = res.json().limit(8 << 20).await.unwrap_or(Value::Null);
    (status, v)
}

/// A WebSocket of `uid` on `node` (platform 1 = iOS, 3 = web).
pub async fn device(node: &Server, uid: u64, platform: u8, device: &str) -> Ws {
    let token = node.grant(uid).await;
    crate::helpers::ws_at(&node.addr, &token, platform, device).await
}

/// The close code the connection ends with (frames before it skipped); `None` if it stays
/// open for 5 s.
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match ws.next(Duration::from_secs(5)).await {
            Some(Ok(_)) => continue,
            Some(Err(code)) => return Some(code),
            None => return None,
        }
    }
}

/// Binds a push token for `uid` (a user without one is never pushed).
pub async fn bind(node: &Server, uid: u64) {
    let body = json!({ "apns_device_token": format!("apns-{uid}") });
    let (s, r) = post(node, &format!("/users/{uid}/bind"), body).await;
    assert_eq!(s, 200, "{r}");
}

/// Every `message` frame that arrives within `quiet` of the previous one.
pub async fn drain(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(Ok(v)) = ws.next(quiet).await {
        if v["type"] == "message" {
            out.push(v);
        }
    }
    out
}

/// Inbox messages (with a `seq`) arrived exactly once each, in increasing seq order, and
/// they are exactly `expected` (message ids). Returns a line for the report.
fn check_inbox(name: &str, got: &[Value], expected: &BTreeSet<u64>) -> String {
    let inbox: Vec<&Value> = got.iter().filter(|m| m["seq"].is_u64()).collect();
    let seqs: Vec<u64> = inbox.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "{name}: inbox seqs not strictly increasing: {seqs:?}"
    );
    let ids: Vec<u64> = inbox.iter().filter_map(|m| m["id"].as_u64()).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "{name}: a message arrived twice");
    let missing: Vec<&u64> = expected.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "{name}: acknowledged but not received: {missing:?}"
    );
    let extra: Vec<&u64> = unique.difference(expected).collect();
    assert!(
        extra.is_empty(),
        "{name}: received but not sent to it: {extra:?}"
    );
    format!("{name}: {} received, 0 duplicated", ids.len())
}

/// Every push job in the original's queues: (queue, receivers).
pub fn pushes(redis: &Dedicated) -> Vec<(String, Vec<u64>)> {
    let mut r = redis.connection();
    let mut out = Vec::new();
    for q in ["push_queue", "group_push_queue", "system_push_queue"] {
        let jobs: Vec<String> = r.lrange(q, 0, -1).unwrap_or_default();
        for j in jobs {
            let v: Value = serde_json::from_str(&j).unwrap_or(Value::Null);
            let receivers = match v.get("receivers") {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).collect(),
                _ => v["receiver"].as_u64().into_iter().collect(),
            };
            out.push((q.to_string(), receivers));
        }
    }
    out
}

#[actix_web::test]
async fn three_nodes_deliver_every_message_once_in_seq_order_and_push_only_the_offline() {
    let cluster = Cluster::start(3);
    cluster.ready().await;
    let n = &cluster.nodes;
    for uid in [1, 2, 3] {
        bind(&n[0], uid).await;
    }
    // User 1 on nodes 0 (iOS) and 1 (web); user 2 on node 2 (iOS); user 3 offline.
    let mut d1a = device(&n[0], 1, 1, "1a").await;
    let mut d1b = device(&n[1], 1, 3, "1b").await;
    let mut d2 = device(&n[2], 2, 1, "2").await;
    let (s, g) = post(
        &n[1],
        "/groups",
        json!({"master": 1, "name": "g", "members": [2, 3]}),
    )
    .await;
    assert_eq!(s, 200, "{g}");
    let gid = g["data"]["group_id"].as_u64().unwrap();
    let (s, sg) = post(
        &n[2],
        "/groups",
        json!({"master": 1, "name": "sg", "members": [2, 3], "super": true}),
    )
    .await;
    assert_eq!(s, 200, "{sg}");
    let sgid = sg["data"]["group_id"].as_u64().unwrap();
    let mut expected: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let mut super_ids = BTreeSet::new();
    let rounds = 60;
    let started = Instant::now();
    for i in 0..rounds {
        let node = &n[i % 3];
        let (from, to) = [(1, 2), (2, 1), (2, 3), (1, 3)][i % 4];
        let (s, r) = post(
            node,
            "/messages/peers",
            json!({"sender": from, "receiver": to, "content": format!("p{i}")}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        let id = r["data"]["msg_id"].as_u64().unwrap();
        expected.entry(from).or_default().insert(id);
        expected.entry(to).or_default().insert(id);
        let (s, r) = post(
            node,
            "/messages/groups",
            json!({"sender": from, "receiver": gid, "content": format!("g{i}")}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        let id = r["data"]["msg_id"].as_u64().unwrap();
        for u in [1, 2, 3] {
            expected.entry(u).or_default().insert(id);
        }
        let (s, r) = post(
            node,
            "/messages/groups",
            json!({"sender": from, "receiver": sgid, "content": format!("s{i}")}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        super_ids.insert(r["data"]["msg_id"].as_u64().unwrap());
    }
    let sent_for = started.elapsed();
    let quiet = Duration::from_secs(2);
    let mut lines = vec![format!(
        "3 nodes: {} sent in {sent_for:?} ({rounds} peer, {rounds} group, {rounds} super group), all acknowledged",
        rounds * 3
    )];
    // The group's `create` notification is in every member's inbox too.
    for (name, ws, uid) in [
        ("user 1 on n0", &mut d1a, 1),
        ("user 1 on n1", &mut d1b, 1),
        ("user 2 on n2", &mut d2, 2),
    ] {
        let got = drain(ws, quiet).await;
        let mut want = expected[&uid].clone();
        for m in got
            .iter()
            .filter(|m| m["kind"] == "group_notification" && m["seq"].is_u64())
        {
            want.insert(m["id"].as_u64().unwrap());
        }
        lines.push(check_inbox(name, &got, &want));
        // Super-group messages: each once, in group_seq order, every one of them.
        let sg: Vec<u64> = got
            .iter()
            .filter(|m| m["group_seq"].is_u64() && m["kind"] == "group")
            .filter_map(|m| m["id"].as_u64())
            .collect();
        let unique: BTreeSet<u64> = sg.iter().copied().collect();
        assert_eq!(
            unique.len(),
            sg.len(),
            "{name}: a super-group message twice"
        );
        assert_eq!(unique, super_ids, "{name}: super-group messages");
    }
    for l in &lines {
        eprintln!("{l}");
    }
    // Pushes only for user 3, offline everywhere (users 1 and 2 are online on some node).
    let deadline = Instant::now() + Duration::from_secs(5);
    let jobs = loop {
        let jobs = pushes(&cluster.redis);
        let for3 = jobs.iter().filter(|(_, r)| r.contains(&3)).count();
        if for3 >= rounds / 2 + rounds * 2 || Instant::now() > deadline {
            break jobs;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    let wrong: Vec<&(String, Vec<u64>)> = jobs
        .iter()
        .filter(|(_, r)| r.iter().any(|u| *u == 1 || *u == 2))
        .collect();
    assert!(
        wrong.is_empty(),
        "pushed to a user online on another node: {wrong:?}"
    );
    let for3 = jobs.iter().filter(|(_, r)| r.contains(&3)).count();
    assert_eq!(
        for3,
        rounds / 2 + rounds * 2,
        "every message to user 3 pushed once"
    );
}

#[actix_web::test]
async fn membership_changed_on_one_node_holds_for_sends_on_another() {
    let cluster = Cluster::start(3);
    cluster.ready().await;
    let n = &cluster.nodes;
    let mut d2 = device(&n[2], 2, 1, "2").await;
    let mut d4 = device(&n[1], 4, 1, "4").await;
    for is_super in [false, true] {
        let (_, g) = post(
            &n[0],
            "/groups",
            json!({"master": 1, "name": "g", "members": [2], "super": is_super}),
        )
        .await;
        let gid = g["data"]["group_id"].as_u64().unwrap();
        let send = |i: usize| {
            post(
                &n[2],
                "/messages/groups",
                json!({"sender": 1, "receiver": gid, "content": format!("m{i}")}),
            )
        };
        // Node 2 loads the group (members 1, 2) by sending through it.
        assert_eq!(send(0).await.0, 200);
        // Changed through node 0 and node 1, then sent through node 2.
        let (s, _) = call(&n[0], "DELETE", &format!("/groups/{gid}/members/2"), None).await;
        assert_eq!(s, 200);
        let (s, _) = post(&n[1], &format!("/groups/{gid}/members"), json!([4])).await;
        assert_eq!(s, 200);
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let (s, r) = send(1).await;
        assert_eq!(s, 200, "{r}");
        let id = r["data"]["msg_id"].as_u64().unwrap();
        let got2 = drain(&mut d2, Duration::from_millis(800)).await;
        assert!(
            !got2.iter().any(|m| m["id"] == id),
            "super {is_super}: a removed member got a message sent on another node"
        );
        let got4 = drain(&mut d4, Duration::from_millis(800)).await;
        assert!(
            got4.iter().any(|m| m["id"] == id),
            "super {is_super}: a member added on another node missed a message: {got4:?}"
        );
    }
}

#[actix_web::test]
async fn revoking_a_token_closes_its_sockets_on_every_node() {
    let cluster = Cluster::start(3);
    cluster.ready().await;
    let n = &cluster.nodes;
    let mut devices = Vec::new();
    for (i, node) in n.iter().enumerate() {
        devices.push(device(node, 5, 1, &format!("d{i}")).await);
    }
    let (s, _) = call(&n[1], "DELETE", "/auth/tokens/5", None).await;
    assert_eq!(s, 200);
    for (i, ws) in devices.iter_mut().enumerate() {
        assert_eq!(close_code(ws).await, Some(1008), "the socket on node {i}");
    }
}

#[actix_web::test]
async fn a_node_killed_is_forgotten_within_ten_seconds() {
    let mut cluster = Cluster::start(2);
    cluster.ready().await;
    bind(&cluster.nodes[0], 6).await;
    let _d6 = device(&cluster.nodes[1], 6, 1, "6").await;
    let loc = |c: &Cluster| -> Vec<String> {
        c.redis
            .connection()
            .hkeys("imd:loc:{7:6}")
            .unwrap_or_default()
    };
    assert_eq!(loc(&cluster).len(), 2, "counted where the others look");
    let alive = |c: &Cluster| -> usize {
        let keys: Vec<String> = c
            .redis
            .connection()
            .keys("imd:alive:n1-*")
            .unwrap_or_default();
        keys.len()
    };
    assert_eq!(alive(&cluster), 1);
    cluster.nodes[1].signal("KILL");
    let killed = Instant::now();
    let mut gone = cluster.nodes.remove(1);
    gone.wait(Duration::from_secs(5));
    // Forgotten: the scripts route to it and count it online only while its key lives.
    while alive(&cluster) > 0 {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "still alive after 10 s"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let forgotten = killed.elapsed();
    // Reaped: its entries leave the location hashes.
    while !loc(&cluster).is_empty() {
        let waited = killed.elapsed();
        assert!(
            waited < Duration::from_secs(20),
            "not reaped: {:?}",
            loc(&cluster)
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let reaped = killed.elapsed();
    // Now offline everywhere: a message to user 6 is pushed.
    let (s, _) = post(
        &cluster.nodes[0],
        "/messages/peers",
        json!({"sender": 1, "receiver": 6, "content": "after"}),
    )
    .await;
    assert_eq!(s, 200);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let pushed = pushes(&cluster.redis)
        .iter()
        .any(|(q, r)| q == "push_queue" && r.contains(&6));
    assert!(
        pushed,
        "user 6 is offline everywhere once its node is forgotten"
    );
    eprintln!("a killed node was forgotten {forgotten:?} and reaped {reaped:?} after kill -9");
}

#[test]
fn a_node_id_with_the_memory_store_is_refused_with_one_line() {
    let out = std::process::Command::new(crate::process::BIN)
        .args(["serve", "--node-id", "n1"])
        .env("IMD_STORE__KIND", "memory")
        .env("IMD_HTTP__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("store.kind"), "{err}");
}

#[actix_web::test]
async fn a_lost_invalidation_never_delivers_to_a_removed_member() {
    let cluster = Cluster::start(2);
    cluster.ready().await;
    let n = &cluster.nodes;
    let mut d2 = device(&n[1], 2, 1, "2").await;
    let (_, g) = post(
        &n[0],
        "/groups",
        json!({"master": 1, "name": "g", "members": [2]}),
    )
    .await;
    let gid = g["data"]["group_id"].as_u64().unwrap();
    let send = |text: &'static str| {
        post(
            &n[0],
            "/messages/groups",
            json!({"sender": 1, "receiver": gid, "content": text}),
        )
    };
    assert_eq!(send("before").await.0, 200);
    assert!(
        drain(&mut d2, Duration::from_millis(500))
            .await
            .iter()
            .any(|m| m["content"] == "before")
    );
    // Member 2 removed by a writer whose announcement never arrives: only the stored group
    // and its `ver` change (what the membership script does, without the PUBLISH).
    let mut r = cluster.redis.connection();
    let _: i64 = r.hdel(format!("imd:group:{{7:{gid}}}:members"), 2).unwrap();
    let _: i64 = r.hincr(format!("imd:group:{{7:{gid}}}"), "ver", 1).unwrap();
    let (s, body) = send("after").await;
    assert_eq!(s, 200, "{body}");
    let got = drain(&mut d2, Duration::from_millis(800)).await;
    assert!(
        !got.iter().any(|m| m["content"] == "after"),
        "node 0's stale copy of the group delivered to a removed member"
    );
    let inbox: Vec<String> = r.lrange("imd:inbox:{7:2}", 0, -1).unwrap();
    assert!(
        !inbox.iter().any(|m| m.contains("\"after\"")),
        "stored for a removed member"
    );
}

/// Redis `INFO commandstats` calls per command, and the bytes in and out.
fn redis_counts(redis: &Dedicated) -> (BTreeMap<String, u64>, u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("all")
        .query(&mut redis.connection())
        .unwrap();
    let mut calls = BTreeMap::new();
    let (mut input, mut output) = (0, 0);
    for line in info.lines() {
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            let (name, stats) = rest.split_once(':').unwrap_or_default();
            let n = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            calls.insert(name.to_string(), n);
        }
        let num = |v: &str| v.trim().parse::<u64>().unwrap_or(0);
        if let Some(v) = line.strip_prefix("total_net_input_bytes:") {
            input = num(v);
        }
        if let Some(v) = line.strip_prefix("total_net_output_bytes:") {
            output = num(v);
        }
    }
    (calls, input, output)
}

#[actix_web::test]
async fn redis_cost_per_message_is_one_script_and_one_publish_per_node() {
    let cluster = Cluster::start(3);
    cluster.ready().await;
    let n = &cluster.nodes;
    // Receivers on nodes 1 and 2; everything is sent through node 0.
    let mut devices = Vec::new();
    for uid in 1..=12u64 {
        devices.push(device(&n[1 + (uid as usize % 2)], uid, 1, "d").await);
    }
    let members: Vec<u64> = (2..=50).collect();
    let (_, g) = post(
        &n[0],
        "/groups",
        json!({"master": 1, "name": "g", "members": members}),
    )
    .await;
    let gid = g["data"]["group_id"].as_u64().unwrap();
    let body = json!({"master": 1, "name": "s", "members": members, "super": true});
    let (_, sg) = post(&n[0], "/groups", body).await;
    let sgid = sg["data"]["group_id"].as_u64().unwrap();
    // One message each first: the groups load on node 0.
    post(
        &n[0],
        "/messages/groups",
        json!({"sender": 1, "receiver": gid, "content": "w"}),
    )
    .await;
    post(
        &n[0],
        "/messages/groups",
        json!({"sender": 1, "receiver": sgid, "content": "w"}),
    )
    .await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let count = 100u64;
    let mut report = Vec::new();
    for (case, path, to) in [
        ("peer (receiver on another node)", "/messages/peers", 2),
        (
            "50-member group (12 online on 2 other nodes)",
            "/messages/groups",
            gid,
        ),
        (
            "super group, 50 members (12 online on 2 other nodes)",
            "/messages/groups",
            sgid,
        ),
    ] {
        let (before, inb, outb) = redis_counts(&cluster.redis);
        for i in 0..count {
            let (s, r) = post(
                &n[0],
                path,
                json!({"sender": 1, "receiver": to, "content": format!("c{i}")}),
            )
            .await;
            assert_eq!(s, 200, "{r}");
        }
        let (after, ina, outa) = redis_counts(&cluster.redis);
        let delta = |name: &str| {
            after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)
        };
        let total: u64 = after.keys().map(|k| delta(k)).sum();
        let (evals, publishes) = (delta("evalsha") + delta("eval"), delta("publish"));
        report.push(format!(
            "{case}: {:.1} commands/message ({:.2} scripts, {:.2} PUBLISH), {:.0} bytes in, {:.0} bytes out per message",
            total as f64 / count as f64,
            evals as f64 / count as f64,
            publishes as f64 / count as f64,
            (ina - inb) as f64 / count as f64,
            (outa - outb) as f64 / count as f64
        ));
        // One script per send (and one more for a group's push job: presence on the other
        // nodes); at most one publish per other node (plus heartbeats: 3 nodes, one every 2 s).
        assert!(
            evals <= 2 * count + 5,
            "{case}: {evals} scripts for {count} sends"
        );
        assert!(publishes <= 2 * count + 10, "{case}: {publishes} publishes");
    }
    for line in &report {
        eprintln!("{line}");
    }
}

#[actix_web::test]
async fn a_node_shut_down_gracefully_is_forgotten_at_once() {
    let mut cluster = Cluster::start(2);
    cluster.ready().await;
    let mut d7 = device(&cluster.nodes[1], 7, 1, "7").await;
    cluster.nodes[1].signal("TERM");
    let stopping = Instant::now();
    // Its clients are told to reconnect elsewhere (1001) …
    assert_eq!(close_code(&mut d7).await, Some(1001));
    let status = cluster.nodes[1].wait(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    // … and it leaves nothing behind for the others to wait out.
    let mut r = cluster.redis.connection();
    let alive: Vec<String> = r.keys("imd:alive:n1-*").unwrap();
    let loc: Vec<String> = r.hkeys("imd:loc:{7:7}").unwrap();
    assert!(alive.is_empty() && loc.is_empty(), "{alive:?} {loc:?}");
    eprintln!(
        "a node shut down in {:?} and left no location behind",
        stopping.elapsed()
    );
}

#[actix_web::test]
async fn a_revocation_whose_announcement_was_lost_closes_sockets_at_the_resync() {
    let cluster = Cluster::start(2);
    cluster.ready().await;
    let mut d8 = device(&cluster.nodes[1], 8, 1, "8").await;
    // Revoked behind the nodes' backs (the store changes, nothing is announced) …
    let mut r = cluster.redis.connection();
    let token: String = r.hget("users_7_8", "access_token").unwrap();
    let _: i64 = r.hdel("users_7_8", "access_token").unwrap();
    let _: i64 = r.del(format!("access_token_{token}")).unwrap();
    // … then the subscriptions drop, as when the announcement was lost with them.
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut r)
        .unwrap();
    assert_eq!(
        close_code(&mut d8).await,
        Some(1008),
        "closed by the resync"
    );
}

#[actix_web::test]
async fn connections_per_user_are_counted_over_every_node() {
    let redis = Dedicated::start("always");
    let limit = [("IMD_LIMITS__WS_CONNECTIONS_PER_USER", "2".to_string())];
    let nodes: Vec<Server> = (0..3)
        .map(|i| Cluster::node_with(&redis, i, &limit))
        .collect();
    let cluster = Cluster { redis, nodes };
    cluster.ready().await;
    let n = &cluster.nodes;
    let _a = device(&n[0], 9, 1, "a").await;
    let _b = device(&n[1], 9, 1, "b").await;
    let token = n[2].grant(9).await;
    let url = format!(
        "ws://{}/ws?token={token}&platform_id=1&device_id=c",
        n[2].addr
    );
    let refused = awc::Client::new().ws(url).connect().await;
    let status = match refused {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => s.as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a third connection over three nodes was accepted"),
    };
    assert_eq!(
        status, 429,
        "the limit counts the user's connections on every node"
    );
}
