//! Issue "Reliability and security", item 2: overload is bounded by configuration and degrades
//! with 429/503, never with unbounded memory or a crash.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;
use crate::{process, redis_server};

fn ws_status(err: Option<awc::error::WsClientError>) -> u16 {
    match err {
        Some(awc::error::WsClientError::InvalidResponseStatus(s)) => s.as_u16(),
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
}

#[actix_web::test]
async fn a_user_may_hold_only_so_many_connections_and_the_process_only_so_many() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.limits.ws_connections_per_user = 2;
    s.limits.ws_max_connections = 3;
    let app = spawn_with(s, None).await;
    let t1 = app.grant(1).await;
    let a = app.ws(&t1, 1, "a").await;
    let _b = app.ws(&t1, 1, "b").await;
    let err = awc::Client::new()
        .ws(format!("ws://{}/ws?token={t1}", app.addr))
        .connect()
        .await
        .err();
    assert_eq!(ws_status(err), 429, "a third connection of the same user");
    let _c = app.online(2, 1, "c").await;
    let t3 = app.grant(3).await;
    let err = awc::Client::new()
        .ws(format!("ws://{}/ws?token={t3}", app.addr))
        .connect()
        .await
        .err();
    assert_eq!(ws_status(err), 503, "a fourth connection of the process");
    // Closing one frees its slot.
    a.close().await;
    let deadline = Instant::now() + WAIT;
    loop {
        if awc::Client::new()
            .ws(format!("ws://{}/ws?token={t3}", app.addr))
            .connect()
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn refused_connections_leave_nothing_registered_on_the_worker() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.limits.ws_connections_per_user = 1;
    let app = spawn_with(s, None).await;
    let token = app.grant(1).await;
    let first = app.ws(&token, 1, "a").await;
    for _ in 0..20 {
        let err = awc::Client::new()
            .ws(format!("ws://{}/ws?token={token}", app.addr))
            .connect()
            .await
            .err();
        assert_eq!(ws_status(err), 429);
    }
    let dispatcher = &app.state.dispatcher;
    assert_eq!(
        dispatcher.hub_connections(),
        1,
        "only the open connection is registered with a delivery hub"
    );
    first.close().await;
    let deadline = Instant::now() + WAIT;
    // The socket loop unregisters, then gives back its slot.
    while dispatcher.hub_connections() > 0 || dispatcher.connection_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the closed connection stayed registered"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn sends_past_the_apps_rate_get_429_with_retry_after() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.limits.app_sends_per_sec = 5;
    s.apps[1].sends_per_sec = Some(0); // app B: unlimited
    let app = spawn_with(s, None).await;
    let mut codes = Vec::new();
    for i in 0..8 {
        let res = app
            .post(
                "/messages/peers",
                json!({"sender": 1, "receiver": 2, "content": format!("{i}")}),
            )
            .await;
        if res.status == 429 {
            res.assert_error(429, "rate_limited");
            assert!(res.headers.contains_key("retry-after"));
        }
        codes.push(res.status);
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 5, "{codes:?}");
    let mut ws = app.online(1, 1, "p").await;
    ws.send(json!({"type": "send", "kind": "peer", "to": 2, "content": "x", "ref": "r"}))
        .await;
    let e = ws.recv().await;
    assert_eq!(
        (e["error"].as_str(), e["ref"].as_str()),
        (Some("rate_limited"), Some("r"))
    );
    for _ in 0..20 {
        let res = app
            .call(
                "POST",
                "/messages/peers",
                Some(&app.auth_b()),
                Some(json!({"sender": 1, "receiver": 2, "content": "x"})),
            )
            .await;
        assert_eq!(res.status, 200, "another app has its own budget");
    }
}

#[actix_web::test]
async fn requests_past_the_in_flight_bound_get_503_while_health_answers() {
    let redis = redis_server::Dedicated::start("everysec");
    let (mut s, _) = test_settings(Backend::Memory);
    s.store.kind = im_dispatcher::config::StoreKind::Redis;
    s.store.redis_url = redis.url();
    s.limits.inflight_requests = 2;
    let app = spawn_with(s, None).await;
    assert_eq!(app.post("/auth/grant", json!({"uid": 1})).await.status, 200);
    // Redis stops answering for a while: requests pile up in flight.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query(&mut redis.connection())
        .unwrap();
    let mut pending = Vec::new();
    for uid in 0..6 {
        let (base, auth) = (app.base.clone(), app.auth_a());
        pending.push(actix_web::rt::spawn(async move {
            let res = awc::Client::new()
                .post(format!("{base}/auth/grant"))
                .insert_header(("Authorization", auth))
                .send_json(&json!({"uid": uid + 10}))
                .await
                .unwrap();
            res.status().as_u16()
        }));
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200, "health answers under overload");
    let mut codes = Vec::new();
    for p in pending {
        codes.push(p.await.unwrap());
    }
    codes.sort_unstable();
    assert_eq!(
        codes,
        vec![200, 200, 503, 503, 503, 503],
        "two in flight, the rest refused at once"
    );
}

#[actix_web::test]
async fn a_burst_over_capacity_degrades_without_memory_growth_or_a_crash() {
    let server = process::Server::start(&[
        ("IMD_LOG__LEVEL", "warn".into()),
        ("IMD_LIMITS__APP_SENDS_PER_SEC", "500".into()),
        ("IMD_LIMITS__INFLIGHT_REQUESTS", "16".into()),
    ]);
    let base = server.base();
    let auth = process::demo_auth();
    let warm = awc::Client::new();
    for _ in 0..200 {
        warm.post(format!("{base}/messages/notifications"))
            .insert_header(("Authorization", auth.clone()))
            .send_json(&json!({"receiver": 2, "content": "warm"}))
            .await
            .unwrap();
    }
    let baseline = server.rss();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..64u64 {
        let (base, auth) = (base.clone(), auth.clone());
        tasks.push(actix_web::rt::spawn(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish();
            let (mut ok, mut limited, mut other) = (0u32, 0u32, 0u32);
            let big = "z".repeat(8_000);
            for i in 0..150u64 {
                // Notifications to offline users: accepted ones store nothing, so RSS shows
                // only what the server buffers.
                let body = json!({"receiver": 1000 + (c * 150 + i) % 50, "content": big});
                match client
                    .post(format!("{base}/messages/notifications"))
                    .insert_header(("Authorization", auth.clone()))
                    .send_json(&body)
                    .await
                {
                    Ok(r) if r.status().as_u16() == 200 => ok += 1,
                    Ok(r) if matches!(r.status().as_u16(), 429 | 503) => limited += 1,
                    _ => other += 1,
                }
            }
            (ok, limited, other)
        }));
    }
    let mut peak = baseline;
    let probe = awc::Client::new();
    while tasks.iter().any(|t| !t.is_finished()) {
        let res = probe.get(format!("{base}/healthz")).send().await;
        assert!(
            res.is_ok_and(|r| r.status().as_u16() == 200),
            "healthz must answer throughout"
        );
        peak = peak.max(server.rss());
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut ok, mut limited, mut other) = (0, 0, 0);
    for t in tasks {
        let (o, l, x) = t.await.unwrap();
        (ok, limited, other) = (ok + o, limited + l, other + x);
    }
    eprintln!(
        "burst: {ok} accepted, {limited} refused (429/503), {other} failed in {:?}; RSS {} MiB → peak {} MiB",
        started.elapsed(),
        baseline >> 20,
        peak >> 20
    );
    assert_eq!(other, 0, "every request was answered with 200, 429 or 503");
    assert!(limited > 0, "the burst exceeded the configured capacity");
    // 9,600 requests of 8 KB (77 MB offered) must not be buffered.
    assert!(
        peak < baseline + 48 * 1024 * 1024,
        "RSS grew from {baseline} to {peak}"
    );
    let health = probe.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[actix_web::test]
async fn a_refused_upgrade_says_when_to_retry() {
    use tokio::io::AsyncWriteExt;
    let (mut s, _) = test_settings(Backend::Memory);
    s.limits.ws_connections_per_user = 1;
    let app = spawn_with(s, None).await;
    let token = app.grant(1).await;
    let _first = app.ws(&token, 1, "a").await;
    let mut io = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await.unwrap();
    let text = read_until_closed(&mut io).await.to_lowercase();
    assert!(text.starts_with("http/1.1 429"), "{text}");
    assert!(text.contains("\r\nretry-after: 1\r\n"), "{text}");
    assert!(text.contains("too_many_connections"), "{text}");
}
