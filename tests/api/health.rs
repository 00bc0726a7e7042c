use crate::helpers::*;

#[actix_web::test]
async fn healthz_and_readyz_answer_on_both_stores() {
    for backend in BACKENDS {
        let app = spawn_app(backend).await;
        let res = app.call("GET", "/healthz", None, None).await;
        assert_eq!(res.data()["status"], "ok");
        let res = app.call("GET", "/readyz", None, None).await;
        assert_eq!(res.data()["status"], "ready");
        let kind = if backend == Backend::Redis {
            "redis"
        } else {
            "memory"
        };
        assert_eq!(res.data()["store"], kind);
    }
}

#[actix_web::test]
async fn a_dead_redis_gives_503_quickly_not_a_hang() {
    let (mut settings, _) = test_settings(Backend::Memory);
    settings.store.kind = im_dispatcher::config::StoreKind::Redis;
    // Nothing listens on port 1.
    settings.store.redis_url = "redis://127.0.0.1:1/0".into();
    // Longer than the reconnect attempts (~0.3 s), which report the refusal: a timeout could
    // not tell "refused" from "stalled".
    settings.store.timeout_ms = 1000;
    let app = spawn_with(settings, None).await;
    let started = std::time::Instant::now();
    let res = app.call("GET", "/readyz", None, None).await;
    res.assert_error(503, "store_unavailable");
    let res = app.post("/auth/grant", serde_json::json!({"uid": 1})).await;
    res.assert_error(503, "store_unavailable");
    assert!(res.headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Liveness does not depend on the store.
    let res = app.call("GET", "/healthz", None, None).await;
    assert_eq!(res.status, 200);
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app(Backend::Memory).await;
    app.post("/auth/grant", serde_json::json!({"uid": 1})).await;
    app.call("GET", "/no/such/route", None, None).await;
    let res = app.call("GET", "/metrics", None, None).await;
    assert_eq!(res.status, 200);
    let text = res.body.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("imd_http_requests_total{route=\"/auth/grant\",status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("imd_http_requests_total{route=\"unmatched\",status=\"404\"}"),
        "{text}"
    );
    assert!(
        text.contains("imd_http_request_duration_seconds_bucket"),
        "{text}"
    );
}
