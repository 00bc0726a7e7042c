//! Faults under several nodes (README "Running several nodes", `scripts/chaos` runs them
//! bigger): a numbered stream from user 10 to user 11 sent round-robin over three nodes, each
//! send retried on the next node with its idempotency key until acknowledged, while user 11's
//! devices on two nodes collect what arrives live (reconnecting to another node and syncing
//! when theirs goes away). Every acknowledged message must reach every device exactly once,
//! and be stored once. Each case prints sent / acknowledged / received / duplicated.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::Ws;
use crate::multinode::Cluster;
use crate::process::Server;

fn scale(n: usize) -> usize {
    crate::faults::scale(n as u32) as usize
}

async fn connect(addr: &str, token: &str, platform: u8, device: &str) -> Option<Ws> {
    let url = format!("ws://{addr}/ws?token={token}&platform_id={platform}&device_id={device}");
    let connect = awc::Client::new().ws(url).max_frame_size(8 << 20).connect();
    let (_, framed) = tokio::time::timeout(Duration::from_secs(3), connect)
        .await
        .ok()?
        .ok()?;
    Some(Ws::from_framed(framed).await)
}

/// What one device saw: content → times received.
type Seen = Rc<RefCell<BTreeMap<String, usize>>>;

/// Collects user 11's messages on a device, starting on `addrs[first]`, moving to the next
/// address (and syncing from its last seq) whenever the connection is lost, until `stop`.
fn collect(
    addrs: Vec<String>,
    token: String,
    platform: u8,
    first: usize,
    stop: Rc<Cell<bool>>,
) -> Seen {
    let seen: Seen = Rc::default();
    let out = seen.clone();
    actix_web::rt::spawn(async move {
        let device = format!("dev{first}");
        let mut node = first;
        let mut last = 0u64;
        let record = |m: &Value, last: &mut u64| {
            if let (Some(c), Some(seq)) = (m["content"].as_str(), m["seq"].as_u64()) {
                *out.borrow_mut().entry(c.to_string()).or_default() += 1;
                *last = (*last).max(seq);
            }
        };
        let mut ws = connect(&addrs[node], &token, platform, &device).await;
        loop {
            let Some(w) = ws.as_mut() else {
                if stop.get() {
                    return;
                }
                node = (node + 1) % addrs.len();
                actix_web::rt::time::sleep(Duration::from_millis(200)).await;
                ws = connect(&addrs[node], &token, platform, &device).await;
                if let Some(w) = ws.as_mut() {
                    for m in w.sync_all(last).await {
                        record(&m, &mut last);
                    }
                }
                continue;
            };
            match w.next(Duration::from_millis(700)).await {
                Some(Ok(m)) if m["type"] == "message" => record(&m, &mut last),
                Some(Ok(_)) => {}
                Some(Err(_)) => ws = None,
                None if stop.get() => return,
                None => {}
            }
        }
    });
    seen
}

/// Sends `n` numbered messages round-robin, each retried on the next node with its key;
/// returns the contents acknowledged.
async fn send_stream(addrs: Vec<String>, n: usize, pad: usize, pause: Duration) -> Vec<String> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(3))
        .finish();
    let mut acked = Vec::new();
    for i in 0..n {
        let content = format!("n:{i}:{}", "x".repeat(pad));
        for attempt in 0..20 {
            let base = &addrs[(i + attempt) % addrs.len()];
            let r = client
                .post(format!("http://{base}/messages/peers"))
                .insert_header(("Authorization", crate::process::demo_auth()))
                .insert_header(("Idempotency-Key", format!("k{i}")))
                .send_json(&json!({"sender": 10, "receiver": 11, "content": content}))
                .await;
            if r.is_ok_and(|r| r.status().as_u16() == 200) {
                acked.push(content.clone());
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        actix_web::rt::time::sleep(pause).await;
    }
    acked
}

/// Sum of a counter over every node's /metrics.
async fn metric(nodes: &[Server], name: &str) -> u64 {
    let mut total = 0;
    for node in nodes {
        let Ok(mut r) = awc::Client::new()
            .get(format!("{}/metrics", node.base()))
            .send()
            .await
        else {
            continue;
        };
        let body = r.body().limit(8 << 20).await.unwrap_or_default();
        total += String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
    }
    total
}

/// Runs the stream with `fault` going on beside it (told through `sending` when the stream
/// is done); checks and reports.
async fn run<F>(case: &str, cluster: &mut Cluster, n: usize, pad: usize, fault: F)
where
    F: AsyncFnOnce(&mut Cluster, Rc<Cell<bool>>),
{
    cluster.ready().await;
    let addrs: Vec<String> = cluster.nodes.iter().map(|s| s.addr.clone()).collect();
    let token = cluster.nodes[0].grant(11).await;
    let stop = Rc::new(Cell::new(false));
    let devices = [
        collect(addrs.clone(), token.clone(), 1, 1, stop.clone()),
        collect(addrs.clone(), token.clone(), 3, 2, stop.clone()),
    ];
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let sending = Rc::new(Cell::new(true));
    let flag = sending.clone();
    let sender = actix_web::rt::spawn(async move {
        let acked = send_stream(addrs, n, pad, Duration::from_millis(5)).await;
        flag.set(false);
        acked
    });
    fault(cluster, sending).await;
    let acked = sender.await.unwrap_or_default();
    cluster.ready().await;
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    stop.set(true);
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    let mut lines = Vec::new();
    for (i, seen) in devices.iter().enumerate() {
        let seen = seen.borrow();
        let missing: Vec<&String> = acked.iter().filter(|c| !seen.contains_key(*c)).collect();
        let duplicated = seen.values().filter(|n| **n > 1).count();
        if !missing.is_empty() {
            for node in &cluster.nodes {
                eprintln!("--- {}\n{}", node.addr, node.log_text());
            }
        }
        lines.push(format!(
            "device {i}: {} received, {duplicated} duplicated, {} missing",
            seen.len(),
            missing.len()
        ));
        assert!(
            missing.is_empty(),
            "{case}: device {i} missed {}: {:?}",
            missing.len(),
            missing
                .iter()
                .take(5)
                .map(|c| c.split(':').take(2).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        assert_eq!(duplicated, 0, "{case}: device {i} got duplicates");
    }
    // Stored once each (retries with their key stored nothing more).
    let probe = cluster
        .nodes
        .last()
        .map(|s| s.addr.clone())
        .unwrap_or_default();
    let mut ws = connect(&probe, &token, 1, "audit")
        .await
        .expect("audit connection");
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for m in ws.sync_all(0).await {
        if let Some(c) = m["content"].as_str() {
            *stored.entry(c.to_string()).or_default() += 1;
        }
    }
    assert!(stored.values().all(|n| *n == 1), "{case}: stored twice");
    let (gaps, resyncs, probes) = (
        metric(&cluster.nodes, "imd_seq_gaps_filled_total").await,
        metric(&cluster.nodes, "imd_resyncs_total").await,
        metric(&cluster.nodes, "imd_pubsub_probe_restarts_total").await,
    );
    eprintln!(
        "{case}: {n} sent, {} acknowledged, {} stored; {}; gaps repaired {gaps}, resyncs {resyncs}, probe restarts {probes}",
        acked.len(),
        stored.len(),
        lines.join("; ")
    );
}

#[actix_web::test]
async fn kill_9_of_a_node_mid_stream_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::start(3);
    run(
        "kill -9 of node 1",
        &mut cluster,
        scale(150),
        0,
        async |c, _| {
            actix_web::rt::time::sleep(Duration::from_millis(400)).await;
            c.nodes[1].signal("KILL");
            c.nodes[1].wait(Duration::from_secs(5));
            c.nodes[1] = Cluster::node(&c.redis, 1);
        },
    )
    .await;
}

#[actix_web::test]
async fn redis_restarted_with_aof_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::start(3);
    run(
        "redis restart (AOF)",
        &mut cluster,
        scale(150),
        0,
        async |c, _| {
            actix_web::rt::time::sleep(Duration::from_millis(400)).await;
            c.redis.kill();
            actix_web::rt::time::sleep(Duration::from_millis(700)).await;
            c.redis.restart();
        },
    )
    .await;
}

#[actix_web::test]
async fn pubsub_connections_killed_in_a_loop_lose_and_duplicate_nothing() {
    let mut cluster = Cluster::start(3);
    run(
        "CLIENT KILL TYPE pubsub loop",
        &mut cluster,
        scale(150),
        0,
        async |c, sending| {
            let mut r = c.redis.connection();
            while sending.get() {
                actix_web::rt::time::sleep(Duration::from_millis(250)).await;
                let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query(&mut r);
            }
        },
    )
    .await;
}

#[actix_web::test]
async fn a_tiny_pubsub_output_buffer_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::start(3);
    let mut r = cluster.redis.connection();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 16kb 8kb 1")
        .query(&mut r)
        .unwrap();
    run(
        "pubsub output buffer 16kb",
        &mut cluster,
        scale(120),
        6000,
        async |_, _| {},
    )
    .await;
}

/// A loopback TCP proxy to Redis that can freeze: connections made before `freeze` stop
/// forwarding (both ways) without closing; later ones work.
struct Proxy {
    port: u16,
    frozen_below: Arc<AtomicU64>,
    next: Arc<AtomicU64>,
}

impl Proxy {
    fn start(to: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen_below, next) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(1)));
        let (f, n) = (frozen_below.clone(), next.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let id = n.fetch_add(1, Ordering::SeqCst);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let f = f.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            if id < f.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(50));
                                continue; // frozen: neither read nor write, never close
                            }
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(k) => {
                                    if to.write_all(&buf[..k]).is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            }
        });
        Proxy {
            port,
            frozen_below,
            next,
        }
    }

    fn freeze(&self) {
        self.frozen_below
            .store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[actix_web::test]
async fn a_frozen_subscriber_is_probed_and_made_again() {
    let mut cluster = Cluster::start(3);
    let proxy = Proxy::start(cluster.redis.port);
    let url = format!("redis://127.0.0.1:{}/0", proxy.port);
    cluster.nodes[1] = Cluster::node_with(&cluster.redis, 1, &[("IMD_NODE__PUBSUB_URL", url)]);
    let started = std::time::Instant::now();
    run(
        "frozen subscriber (node 1)",
        &mut cluster,
        scale(300),
        0,
        async |c, _| {
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            proxy.freeze();
            let frozen = std::time::Instant::now();
            while metric(&c.nodes[1..2], "imd_pubsub_probe_restarts_total").await == 0 {
                let waited = frozen.elapsed();
                assert!(
                    waited < Duration::from_secs(15),
                    "the frozen subscription went unnoticed"
                );
                actix_web::rt::time::sleep(Duration::from_millis(200)).await;
            }
            eprintln!(
                "frozen subscriber noticed {:?} after the freeze",
                frozen.elapsed()
            );
        },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[actix_web::test]
async fn super_group_messages_survive_pubsub_connections_killed_in_a_loop() {
    let cluster = Cluster::start(3);
    cluster.ready().await;
    let n = &cluster.nodes;
    let body = json!({"master": 20, "name": "sg", "members": [21, 22], "super": true});
    let (_, g) = crate::multinode::post(&n[0], "/groups", body).await;
    let gid = g["data"]["group_id"].as_u64().unwrap();
    let mut devices = [
        crate::multinode::device(&n[1], 21, 1, "a").await,
        crate::multinode::device(&n[2], 22, 1, "b").await,
    ];
    let sending = Rc::new(Cell::new(true));
    let flag = sending.clone();
    let addrs: Vec<String> = n.iter().map(|s| s.addr.clone()).collect();
    let count = scale(150);
    let sender = actix_web::rt::spawn(async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(3))
            .finish();
        let mut acked = Vec::new();
        for i in 0..count {
            for attempt in 0..20 {
                let r = client
                    .post(format!(
                        "http://{}/messages/groups",
                        addrs[(i + attempt) % 3]
                    ))
                    .insert_header(("Authorization", crate::process::demo_auth()))
                    .insert_header(("Idempotency-Key", format!("s{i}")))
                    .send_json(&json!({"sender": 20, "receiver": gid, "content": format!("s:{i}")}))
                    .await;
                if r.is_ok_and(|r| r.status().as_u16() == 200) {
                    acked.push(format!("s:{i}"));
                    break;
                }
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        flag.set(false);
        acked
    });
    let mut r = cluster.redis.connection();
    let mut got: [BTreeMap<String, usize>; 2] = Default::default();
    while sending.get() {
        let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut r);
        for (ws, seen) in devices.iter_mut().zip(got.iter_mut()) {
            while let Some(Ok(m)) = ws.next(Duration::from_millis(60)).await {
                if let Some(c) = m["content"].as_str().filter(|_| m["group_seq"].is_u64()) {
                    *seen.entry(c.to_string()).or_default() += 1;
                }
            }
        }
    }
    let acked = sender.await.unwrap();
    cluster.ready().await;
    for (ws, seen) in devices.iter_mut().zip(got.iter_mut()) {
        while let Some(Ok(m)) = ws.next(Duration::from_secs(3)).await {
            if let Some(c) = m["content"].as_str().filter(|_| m["group_seq"].is_u64()) {
                *seen.entry(c.to_string()).or_default() += 1;
            }
        }
    }
    let resyncs = metric(&cluster.nodes, "imd_resyncs_total").await;
    for (i, seen) in got.iter().enumerate() {
        let missing = acked.iter().filter(|c| !seen.contains_key(*c)).count();
        let duplicated = seen.values().filter(|n| **n > 1).count();
        eprintln!(
            "super group, CLIENT KILL TYPE pubsub loop: {count} sent, {} acknowledged; device {i}: {} received, {duplicated} duplicated, {missing} missing; resyncs {resyncs}",
            acked.len(),
            seen.iter().filter(|(c, _)| c.starts_with("s:")).count()
        );
        assert_eq!((missing, duplicated), (0, 0), "device {i}");
    }
}
