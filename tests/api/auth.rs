//! SPEC §3.1: server (Basic) and client (Bearer) authentication, IP allow-lists.

use base64::Engine;
use serde_json::json;

use crate::helpers::*;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[actix_web::test]
async fn every_bad_server_credential_is_401() {
    let app = spawn_app(Backend::Memory).await;
    let md5 = im_dispatcher::apps::md5_hex(SECRET_A);
    let bad = [
        None,
        Some(String::new()),
        Some("Basic".to_string()),
        Some("Basic !!!notbase64".to_string()),
        Some(format!("Basic {}", b64("no-colon"))),
        Some(format!("Basic {}", b64(&format!("abc:{md5}")))),
        Some(format!("Basic {}", b64(&format!("999:{md5}")))),
        Some(format!(
            "Basic {}",
            b64(&format!(
                "{APP_A}:{}",
                im_dispatcher::apps::md5_hex("wrong")
            ))
        )),
        // The raw secret instead of its md5.
        Some(format!("Basic {}", b64(&format!("{APP_A}:{SECRET_A}")))),
        // App B's digest under app A's id.
        Some(format!(
            "Basic {}",
            b64(&format!(
                "{APP_A}:{}",
                im_dispatcher::apps::md5_hex(SECRET_B)
            ))
        )),
        Some(format!("Bearer {md5}")),
    ];
    for auth in bad {
        let res = app
            .call(
                "POST",
                "/auth/grant",
                auth.as_deref(),
                Some(json!({"uid": 1})),
            )
            .await;
        res.assert_error(401, "unauthorized");
    }
}

#[actix_web::test]
async fn hex_digest_is_compared_case_insensitively() {
    let app = spawn_app(Backend::Memory).await;
    let upper = im_dispatcher::apps::md5_hex(SECRET_A).to_uppercase();
    let auth = format!("basic {}", b64(&format!("{APP_A}:{upper}")));
    let res = app
        .call("POST", "/auth/grant", Some(&auth), Some(json!({"uid": 1})))
        .await;
    assert!(res.data()["token"].is_string());
}

#[actix_web::test]
async fn every_bad_client_token_is_401() {
    let app = spawn_app(Backend::Memory).await;
    let body = Some(json!({"apns_device_token": "abc"}));
    for auth in [
        None,
        Some("Bearer"),
        Some("Bearer nope"),
        Some("Token abc"),
        Some("Bearer "),
    ] {
        let res = app.call("POST", "/device/bind", auth, body.clone()).await;
        res.assert_error(401, "unauthorized");
    }
    let token = app.grant(5).await;
    let res = app
        .call(
            "POST",
            "/device/bind",
            Some(&format!("Bearer {token}")),
            body,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
}

fn restricted(allowed: &[&str], trusted: &[&str]) -> im_dispatcher::config::Settings {
    let (mut s, _) = test_settings(Backend::Memory);
    s.apps[0].allowed_ips = allowed
        .iter()
        .map(|n| n.parse().unwrap_or_else(|e| panic!("{e}")))
        .collect();
    s.http.trusted_proxies = trusted
        .iter()
        .map(|n| n.parse().unwrap_or_else(|e| panic!("{e}")))
        .collect();
    s
}

#[actix_web::test]
async fn the_ip_allow_list_refuses_other_peers_with_403() {
    let app = spawn_with(restricted(&["10.0.0.0/8"], &[]), None).await;
    let res = app.post("/auth/grant", json!({"uid": 1})).await;
    res.assert_error(403, "ip_not_allowed");
    // From outside the list a wrong secret gets the same answer: it cannot be tested there.
    let wrong = basic(APP_A, "not-the-secret");
    app.call("POST", "/auth/grant", Some(&wrong), Some(json!({"uid": 1})))
        .await
        .assert_error(403, "ip_not_allowed");
    // A forwarded-for header from an untrusted peer is ignored.
    let mut req = app
        .client
        .post(format!("{}/auth/grant", app.base))
        .insert_header(("Authorization", app.auth_a()))
        .insert_header(("X-Real-IP", "10.1.2.3"))
        .insert_header(("X-Forwarded-For", "10.1.2.3"));
    req = req.insert_header(("Content-Type", "application/json"));
    let res = req
        .send_body(r#"{"uid":1}"#)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status().as_u16(), 403);
    // App B has no allow-list.
    let res = app
        .call(
            "POST",
            "/auth/grant",
            Some(&app.auth_b()),
            Some(json!({"uid": 1})),
        )
        .await;
    assert_eq!(res.status, 200);

    let app = spawn_with(restricted(&["127.0.0.1/32"], &[]), None).await;
    assert_eq!(app.post("/auth/grant", json!({"uid": 1})).await.status, 200);
}

#[actix_web::test]
async fn a_trusted_proxy_may_name_the_client_address() {
    let app = spawn_with(restricted(&["10.0.0.0/8"], &["127.0.0.1/32"]), None).await;
    let send = |header: Option<(&'static str, &'static str)>| {
        let mut req = app
            .client
            .post(format!("{}/auth/grant", app.base))
            .insert_header(("Authorization", app.auth_a()));
        if let Some(h) = header {
            req = req.insert_header(h);
        }
        async move {
            req.send_body(r#"{"uid":1}"#)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .status()
                .as_u16()
        }
    };
    assert_eq!(send(Some(("X-Real-IP", "10.1.2.3"))).await, 200);
    assert_eq!(
        send(Some(("X-Forwarded-For", "10.9.9.9, 127.0.0.1"))).await,
        200
    );
    assert_eq!(
        send(Some(("X-Forwarded-For", "10.9.9.9, 192.168.1.1"))).await,
        403
    );
    assert_eq!(send(Some(("X-Real-IP", "192.168.1.1"))).await, 403);
    assert_eq!(send(None).await, 403);
}

#[actix_web::test]
async fn bare_addresses_work_wherever_networks_do() {
    let dir = std::env::temp_dir().join(format!("imd-bare-ips-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("apps.toml");
    std::fs::write(
        &config,
        "[[apps]]\nid = 1\nname = \"local\"\nkey = \"k1\"\nsecret = \"s1\"\nallowed_ips = [\"127.0.0.1\"]\n\
         [[apps]]\nid = 2\nname = \"behind\"\nkey = \"k2\"\nsecret = \"s2\"\nallowed_ips = [\"10.0.0.1\", \"10.9.0.0/16\"]\n",
    )
    .unwrap();
    // The README's own example: bare addresses in an environment list.
    let server = crate::process::Server::start_with(
        &["--config", config.to_str().unwrap()],
        &[("IMD_HTTP__TRUSTED_PROXIES", "10.0.0.2,127.0.0.1".into())],
    );
    let grant = |app: u64, secret: &'static str, real_ip: Option<&'static str>| {
        let url = format!("{}/auth/grant", server.base());
        async move {
            let mut req = awc::Client::new()
                .post(url)
                .insert_header(("Authorization", basic(app, secret)));
            if let Some(ip) = real_ip {
                req = req.insert_header(("X-Real-IP", ip));
            }
            req.send_json(&json!({"uid": 1}))
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(grant(1, "s1", None).await, 200, "127.0.0.1 is listed");
    assert_eq!(grant(2, "s2", None).await, 403, "127.0.0.1 is not");
    assert_eq!(
        grant(2, "s2", Some("10.0.0.1")).await,
        200,
        "via a trusted proxy"
    );
    assert_eq!(
        grant(2, "s2", Some("10.9.8.7")).await,
        200,
        "in the network"
    );
    assert_eq!(grant(2, "s2", Some("10.0.0.3")).await, 403);
    let _ = std::fs::remove_dir_all(&dir);
}
