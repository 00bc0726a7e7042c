//! Issue "Reliability and security", items 1 and 5: a numbered stream goes through a fault and
//! every message that was acknowledged (HTTP 200) arrives exactly once, in order.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::{process, redis_server};

/// Stream sizes are multiplied by `IMD_CHAOS_SCALE` (default 1; `scripts/chaos` raises it).
pub fn scale(n: u32) -> u32 {
    n * std::env::var("IMD_CHAOS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u32)
        .max(1)
}

/// Sends `n:<i>` from user 2 to user 1 for each i; returns the numbers that got a 200.
async fn send_numbers(
    base: &str,
    auth: &str,
    range: std::ops::Range<u32>,
    timeout: Duration,
) -> (Vec<u32>, Vec<Duration>) {
    let client = awc::Client::builder().timeout(timeout).finish();
    let (mut acked, mut refusals) = (Vec::new(), Vec::new());
    for i in range {
        let started = Instant::now();
        let res = client
            .post(format!("{base}/messages/peers"))
            .insert_header(("Authorization", auth))
            .send_json(&json!({"sender": 2, "receiver": 1, "content": format!("n:{i}")}))
            .await;
        match res {
            Ok(r) if r.status().as_u16() == 200 => acked.push(i),
            Ok(r) => {
                assert_eq!(r.status().as_u16(), 503, "a store outage is a 503");
                refusals.push(started.elapsed());
            }
            Err(_) => refusals.push(started.elapsed()),
        }
    }
    (acked, refusals)
}

/// User 1's inbox by sync: the numbers, in seq order.
async fn synced_numbers(addr: &str, token: &str) -> Vec<u32> {
    let (_, framed) = awc::Client::new()
        .ws(format!("ws://{addr}/ws?token={token}"))
        .connect()
        .await
        .unwrap();
    let mut ws = Ws::from_framed(framed).await;
    ws.sync_all(0)
        .await
        .iter()
        .filter_map(|m| m["content"].as_str()?.strip_prefix("n:")?.parse().ok())
        .collect()
}

fn assert_exactly_once_in_order(acked: &[u32], received: &[u32]) {
    let unique: HashSet<u32> = received.iter().copied().collect();
    assert_eq!(unique.len(), received.len(), "no duplicates: {received:?}");
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "in send order: {received:?}"
    );
    let missing: Vec<u32> = acked
        .iter()
        .filter(|n| !unique.contains(n))
        .copied()
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

#[actix_web::test]
async fn acknowledged_messages_survive_a_sigkill_of_the_service() {
    let redis = redis_server::Dedicated::start("always");
    let env = [
        ("IMD_STORE__KIND", "redis".to_string()),
        ("IMD_STORE__REDIS_URL", redis.url()),
        ("IMD_LOG__LEVEL", "warn".into()),
    ];
    let mut server = process::Server::start(&env);
    let auth = process::demo_auth();
    let (a, b, c) = (scale(150), scale(400), scale(450));
    let (mut acked, _) = send_numbers(&server.base(), &auth, 0..a, Duration::from_secs(5)).await;
    // Kill it while a stream is in flight.
    let (base, auth2) = (server.base(), auth.clone());
    let in_flight = actix_web::rt::spawn(async move {
        send_numbers(&base, &auth2, a..b, Duration::from_secs(2)).await
    });
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    server.signal("KILL");
    server.wait(Duration::from_secs(5));
    let (more, lost_requests) = in_flight.await.unwrap();
    acked.extend(more);
    let server = process::Server::start(&env);
    let (after, _) = send_numbers(&server.base(), &auth, b..c, Duration::from_secs(5)).await;
    acked.extend(after);
    let token = {
        let mut r = awc::Client::new()
            .post(format!("{}/auth/grant", server.base()))
            .insert_header(("Authorization", auth.clone()))
            .send_json(&json!({"uid": 1}))
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["data"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let received = synced_numbers(&server.addr, &token).await;
    eprintln!(
        "SIGKILL: {c} sent, {} acknowledged, {} refused or cut off, {} received",
        acked.len(),
        lost_requests.len(),
        received.len()
    );
    assert!(!lost_requests.is_empty(), "the kill happened mid-stream");
    assert_exactly_once_in_order(&acked, &received);
}

#[actix_web::test]
async fn acknowledged_messages_survive_a_redis_restart_under_load() {
    let mut redis = redis_server::Dedicated::start("always");
    let (mut s, _) = test_settings(Backend::Memory);
    s.store.kind = im_dispatcher::config::StoreKind::Redis;
    s.store.redis_url = redis.url();
    s.store.timeout_ms = 500;
    let app = spawn_with(s, None).await;
    let auth = app.auth_a();
    let token = app.grant(1).await;
    let (a, b, c) = (scale(100), scale(100) + 20, scale(200) + 20);
    let (mut acked, _) = send_numbers(&app.base, &auth, 0..a, Duration::from_secs(5)).await;
    redis.kill();
    let (during, refusals) = send_numbers(&app.base, &auth, a..b, Duration::from_secs(5)).await;
    assert!(
        during.is_empty(),
        "nothing is acknowledged while the store is down"
    );
    assert!(
        refusals.iter().all(|d| *d < Duration::from_secs(2)),
        "refused quickly: {refusals:?}"
    );
    redis.restart();
    // The service reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.call("GET", "/readyz", None, None).await.status != 200 {
        assert!(Instant::now() < deadline, "did not reconnect to redis");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let (after, _) = send_numbers(&app.base, &auth, b..c, Duration::from_secs(5)).await;
    acked.extend(after);
    let received = synced_numbers(&app.addr.to_string(), &token).await;
    eprintln!(
        "redis restart: {c} sent, {} acknowledged, {} refused with 503, {} received",
        acked.len(),
        refusals.len(),
        received.len()
    );
    assert_eq!(acked.len() as u32, c - 20);
    assert_exactly_once_in_order(&acked, &received);
}

#[actix_web::test]
async fn a_graceful_shutdown_under_load_loses_nothing_and_closes_sockets_with_1001() {
    let url = redis_server::fresh_db();
    let env = [
        ("IMD_STORE__KIND", "redis".to_string()),
        ("IMD_STORE__REDIS_URL", url.clone()),
        ("IMD_PUSH__SINK", "redis".into()),
        ("IMD_PUSH__FLUSH_INTERVAL_MS", "2000".into()),
        ("IMD_PUSH__BATCH_SIZE", "100000".into()),
        ("IMD_LOG__LEVEL", "warn".into()),
    ];
    let mut server = process::Server::start(&env);
    let auth = process::demo_auth();
    let client = awc::Client::new();
    let mut r = client
        .post(format!("{}/auth/grant", server.base()))
        .insert_header(("Authorization", auth.clone()))
        .send_json(&json!({"uid": 3}))
        .await
        .unwrap();
    let t3 = r.json::<Value>().await.unwrap()["data"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, framed) = client
        .ws(format!("ws://{}/ws?token={t3}", server.addr))
        .connect()
        .await
        .unwrap();
    let mut watcher = Ws::from_framed(framed).await;
    // The offline receiver has a phone: each message is a push job.
    let bound = client
        .post(format!("{}/users/1/bind", server.base()))
        .insert_header(("Authorization", auth.clone()))
        .send_json(&json!({"apns_device_token": "apns-1"}))
        .await
        .unwrap();
    assert_eq!(bound.status().as_u16(), 200);
    let (base, auth2) = (server.base(), auth.clone());
    let total = scale(3000);
    let load = actix_web::rt::spawn(async move {
        send_numbers(&base, &auth2, 0..total, Duration::from_secs(5)).await
    });
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    assert_eq!(
        watcher.next(WAIT).await,
        Some(Err(1001)),
        "clients are told to reconnect elsewhere"
    );
    let status = server.wait(Duration::from_secs(20));
    assert!(status.success(), "exit 0: {status:?}");
    let (acked, _) = load.await.unwrap();
    assert!(
        !acked.is_empty() && (acked.len() as u32) < total,
        "stopped mid-stream: {}",
        acked.len()
    );
    // Push jobs queued for the offline receiver were flushed before exit: one for every
    // acknowledged message (and perhaps one whose answer the shutdown cut off: stored, not
    // acknowledged).
    let jobs: Vec<String> = redis::cmd("LRANGE")
        .arg("push_queue")
        .arg(0)
        .arg(-1)
        .query(&mut redis_server::connect(&url))
        .unwrap();
    let pushed: HashSet<u32> = jobs
        .iter()
        .filter_map(|j| {
            serde_json::from_str::<Value>(j).ok()?["content"]
                .as_str()?
                .strip_prefix("n:")?
                .parse()
                .ok()
        })
        .collect();
    let unpushed: Vec<u32> = acked
        .iter()
        .filter(|n| !pushed.contains(n))
        .copied()
        .collect();
    assert!(
        unpushed.is_empty(),
        "acknowledged but never pushed: {unpushed:?}"
    );
    let pushed = pushed.len();
    let server = process::Server::start(&env);
    let mut r = client
        .post(format!("{}/auth/grant", server.base()))
        .insert_header(("Authorization", auth))
        .send_json(&json!({"uid": 1}))
        .await
        .unwrap();
    let t1 = r.json::<Value>().await.unwrap()["data"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let received = synced_numbers(&server.addr, &t1).await;
    eprintln!(
        "graceful shutdown: {} acknowledged, {} received, {pushed} push jobs flushed",
        acked.len(),
        received.len()
    );
    assert_exactly_once_in_order(&acked, &received);
    assert!(
        pushed <= received.len(),
        "a push job only for a stored message"
    );
}

/// One raw HTTP/1.1 exchange on a kept-alive socket: the response head, lower-cased.
fn exchange(sock: &mut std::net::TcpStream, request: &str) -> String {
    use std::io::{Read, Write};
    sock.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            sock.read(&mut byte).unwrap(),
            1,
            "response cut off: {head:?}"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body).unwrap();
    head
}

#[actix_web::test]
async fn a_shutdown_answers_keep_alive_requests_with_connection_close_and_exits_without_waiting_out_the_grace()
 {
    let mut server = process::Server::start(&[
        ("IMD_HTTP__SHUTDOWN_TIMEOUT_SECS", "30".into()),
        ("IMD_LOG__LEVEL", "warn".into()),
    ]);
    let mut sock = std::net::TcpStream::connect(&server.addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = exchange(&mut sock, &get("/readyz"));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "kept alive: {head}");
    // A second kept-alive client that will ask for a WebSocket once the shutdown began.
    let mut late = std::net::TcpStream::connect(&server.addr).unwrap();
    late.set_read_timeout(Some(WAIT)).unwrap();
    let grant = format!(
        "POST /auth/grant HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{{\"uid\": 5}}",
        process::demo_auth()
    );
    let mut grant_body = String::new();
    {
        use std::io::{Read, Write};
        late.write_all(grant.as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        while !grant_body.contains("\"token\"") || !grant_body.ends_with('}') {
            let n = late.read(&mut buf).unwrap();
            assert!(n > 0, "grant answered: {grant_body}");
            grant_body.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let token = grant_body
        .split("\"token\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();

    let started = Instant::now();
    server.signal("TERM");
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    // A request on the kept-alive connection is still answered, told to go elsewhere, and the
    // connection is closed after it: the client reconnects instead of being cut off later.
    let head = exchange(&mut sock, &get("/readyz"));
    assert!(
        head.starts_with("http/1.1 503"),
        "not ready while stopping: {head}"
    );
    assert!(head.contains("connection: close"), "{head}");
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut sock, &mut rest);
    assert!(rest.is_empty(), "closed after the response");
    // A WebSocket asked for now would miss the 1001 sweep: refused, go elsewhere.
    let upgrade = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let head = exchange(&mut late, &upgrade);
    assert!(
        head.starts_with("http/1.1 503"),
        "no new WebSocket while stopping: {head}"
    );
    let status = server.wait(Duration::from_secs(10));
    assert!(status.success(), "exit 0: {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exited once its connections were done, not at the 30 s deadline"
    );
}
