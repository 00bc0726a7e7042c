//! `spawn_app`: the real server on 127.0.0.1:0 against a chosen store, and a client for it.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;
use base64::Engine;
use im_dispatcher::config::{AppSettings, CustomerRegistration, Settings, StoreKind};
use im_dispatcher::startup::Application;
use im_dispatcher::state::AppState;
use serde_json::Value;

use crate::redis_server;

/// App A: the one most tests act as.
pub const APP_A: u64 = 7;
pub const SECRET_A: &str = "secret-a";
/// App B: a second tenant for isolation checks.
pub const APP_B: u64 = 8;
pub const SECRET_B: &str = "secret-b";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

pub const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Redis];

pub fn basic(app: u64, secret: &str) -> String {
    let digest = im_dispatcher::apps::md5_hex(secret);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{app}:{digest}"))
    )
}

/// The original's client credentials, `Basic base64("<appid>:<appkey>")` (customer
/// registration).
pub fn basic_key(app: u64, key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{app}:{key}"))
    )
}

/// The signature an app server puts on a customer registration (README "Customer service"):
/// hex HMAC-SHA256 of `customer:<appid>:<customer_id>:<expires>`, keyed with the app secret.
pub fn customer_signature(secret: &str, app: u64, customer_id: &str, expires: u64) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    mac.update(format!("customer:{app}:{customer_id}:{expires}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A registration body for app A's customer, signed by app A's server, valid for ten minutes.
pub fn signed_registration(customer_id: &str) -> Value {
    let expires = im_dispatcher::domain::now_secs() + 600;
    serde_json::json!({
        "appid": APP_A,
        "customer_id": customer_id,
        "expires": expires,
        "signature": customer_signature(SECRET_A, APP_A, customer_id, expires),
    })
}

/// Help-desk (store) id of app A in `help_desk_app` (app B's is 200).
pub const HELP_DESK: u64 = 100;

/// A memory-store server whose apps run help desks `HELP_DESK` (A) and 200 (B).
pub async fn help_desk_app() -> TestApp {
    let (mut s, url) = test_settings(Backend::Memory);
    s.apps[0].store_id = HELP_DESK;
    s.apps[1].store_id = 200;
    spawn_with(s, url).await
}

/// A customer of app A's help desk, registered after supporter 500 joined it: (token, uid).
pub async fn customer_with_supporter(app: &TestApp) -> (String, u64) {
    app.post(
        &format!("/stores/{HELP_DESK}/supporters"),
        serde_json::json!({"uid": 500, "name": "agent"}),
    )
    .await
    .data();
    app.register_customer("shopper").await
}

/// Settings for a test server: port 0, two apps, the given store.
pub fn test_settings(backend: Backend) -> (Settings, Option<String>) {
    let mut s = Settings::load(None).unwrap_or_else(|e| panic!("default settings: {e}"));
    s.http.listen = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    s.binary.listen = "127.0.0.1:0".into();
    s.http.workers = 2;
    s.http.shutdown_timeout_secs = 1;
    s.log.level = "warn".into();
    s.media.dir = fresh_media_dir();
    s.apps = vec![
        AppSettings {
            id: APP_A,
            name: "a".into(),
            key: "key-a".into(),
            secret: SECRET_A.into(),
            store_id: 0,
            allowed_ips: vec![],
            sends_per_sec: None,
            customer_registration: CustomerRegistration::Signed,
        },
        AppSettings {
            id: APP_B,
            name: "b".into(),
            key: "key-b".into(),
            secret: SECRET_B.into(),
            store_id: 0,
            allowed_ips: vec![],
            sends_per_sec: None,
            customer_registration: CustomerRegistration::Signed,
        },
    ];
    let redis = match backend {
        Backend::Memory => {
            s.store.kind = StoreKind::Memory;
            None
        }
        Backend::Redis => {
            let url = redis_server::fresh_db();
            s.store.kind = StoreKind::Redis;
            s.store.redis_url = url.clone();
            s.push.redis_url = url.clone();
            Some(url)
        }
    };
    (s, redis)
}

/// A media directory of its own for each test server (removed when the server is dropped).
fn fresh_media_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("imd-test-media-{}-{n}", std::process::id()))
}

pub struct TestApp {
    pub base: String,
    /// Where the server listens (WebSocket clients and raw sockets need it).
    #[allow(dead_code)]
    pub addr: std::net::SocketAddr,
    pub state: web::Data<AppState>,
    /// URL of this test's private Redis database (redis backend only).
    pub redis_url: Option<String>,
    /// The separate metrics listener, if configured.
    #[allow(dead_code)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The GoBelieve binary protocol's TCP listener, if configured.
    #[allow(dead_code)]
    pub binary_addr: Option<std::net::SocketAddr>,
    /// The im HTTP API's listener, if configured (`im_http.listen`).
    #[allow(dead_code)]
    pub im_http_addr: Option<std::net::SocketAddr>,
    pub client: awc::Client,
    handle: ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; the returned future only waits for completion.
        drop(self.handle.stop(false));
        let media = &self.state.settings.media.dir;
        if media.starts_with(std::env::temp_dir()) {
            let _ = std::fs::remove_dir_all(media);
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let (settings, redis_url) = test_settings(backend);
    spawn_with(settings, redis_url).await
}

pub async fn spawn_with(settings: Settings, redis_url: Option<String>) -> TestApp {
    // Log lines go through the test harness's capture, shown only for failing tests.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(settings.log.level.as_str())
        .try_init();
    let app = Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("build: {e:#}"));
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let binary_addr = app.binary_addr();
    let im_http_addr = app.im_http_addr();
    let state = app.state();
    let handle = app.handle();
    actix_web::rt::spawn(app.run());
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .disable_redirects()
        .finish();
    TestApp {
        base: format!("http://{addr}"),
        addr,
        state,
        redis_url,
        metrics_addr,
        binary_addr,
        im_http_addr,
        client,
        handle,
    }
}

/// A response as a test sees it.
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub body: Value,
    pub headers: awc::http::header::HeaderMap,
}

impl Res {
    /// `data` of a success envelope, asserting it is one.
    pub fn data(&self) -> &Value {
        assert_eq!(
            self.status, 200,
            "expected 200, got {} {}",
            self.status, self.body
        );
        assert_eq!(self.body["meta"]["code"], 0, "{}", self.body);
        &self.body["data"]
    }

    /// Asserts an error envelope with this status and error code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["meta"]["code"], status, "{}", self.body);
        assert_eq!(self.body["meta"]["error"], error, "{}", self.body);
        assert!(
            self.body["meta"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error needs a message: {}",
            self.body
        );
    }

    pub fn message(&self) -> String {
        self.body["meta"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl TestApp {
    /// Registers app A's customer `customer_id` (signed by app A's server): (token, uid).
    pub async fn register_customer(&self, customer_id: &str) -> (String, u64) {
        let body = Some(signed_registration(customer_id));
        let res = self.call("POST", "/auth/customer", None, body).await;
        let data = res.data();
        let token = data["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {data}"));
        let uid = data["client_id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no uid: {data}"));
        (token.to_string(), uid)
    }

    pub fn auth_a(&self) -> String {
        basic(APP_A, SECRET_A)
    }

    pub fn auth_b(&self) -> String {
        basic(APP_B, SECRET_B)
    }

    /// Sends a request with a raw body and optional Authorization header.
    pub async fn raw(&self, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> Res {
        self.raw_at(&self.base, method, path, auth, body).await
    }

    /// A request to the im HTTP API's listener (which must be configured), raw body.
    #[allow(dead_code)]
    pub async fn im(&self, method: &str, path: &str, body: &[u8]) -> Res {
        let addr = self
            .im_http_addr
            .unwrap_or_else(|| panic!("im_http.listen is not set"));
        self.raw_at(&format!("http://{addr}"), method, path, None, body)
            .await
    }

    async fn raw_at(
        &self,
        base: &str,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &[u8],
    ) -> Res {
        let method =
            awc::http::Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut req = self.client.request(method, format!("{base}{path}"));
        if let Some(auth) = auth {
            req = req.insert_header(("Authorization", auth));
        }
        let req = req.insert_header(("Content-Type", "application/json"));
        let mut res = req
            .send_body(body.to_vec())
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let bytes = res
            .body()
            .limit(64 << 20)
            .await
            .unwrap_or_else(|e| panic!("{path} body: {e}"));
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Res {
            status: res.status().as_u16(),
            body,
            headers: res.headers().clone(),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, path, auth, &bytes).await
    }

    /// As app A's server.
    pub async fn post(&self, path: &str, body: Value) -> Res {
        self.call("POST", path, Some(&self.auth_a()), Some(body))
            .await
    }

    #[allow(dead_code)]
    pub async fn get(&self, path: &str) -> Res {
        self.call("GET", path, Some(&self.auth_a()), None).await
    }

    /// A token for uid of app A.
    pub async fn grant(&self, uid: u64) -> String {
        self.grant_as(&self.auth_a(), uid).await
    }

    /// A token for uid of the app whose server credentials are `auth` (`auth_a`, `auth_b`).
    pub async fn grant_as(&self, auth: &str, uid: u64) -> String {
        let body = serde_json::json!({ "uid": uid, "user_name": format!("user{uid}") });
        let res = self
            .call("POST", "/auth/grant", Some(auth), Some(body))
            .await;
        res.data()["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {}", res.body))
            .to_string()
    }

    /// Binds a device token for uid of app A: a user without one gets no push job.
    #[allow(dead_code)]
    pub async fn bind_token(&self, uid: u64) {
        self.post(
            &format!("/users/{uid}/bind"),
            serde_json::json!({ "apns_device_token": format!("apns-{uid}") }),
        )
        .await
        .data();
    }

    /// A blocking connection to this test's Redis database.
    pub fn redis(&self) -> redis::Connection {
        let url = self
            .redis_url
            .as_deref()
            .unwrap_or_else(|| panic!("not a redis-backed app"));
        redis_server::connect(url)
    }
}

/// Everything the server sends on a raw connection until it closes it (panics if it does not
/// within `WAIT`), as text.
pub async fn read_until_closed(io: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut text = Vec::new();
    tokio::time::timeout(WAIT, io.read_to_end(&mut text))
        .await
        .unwrap_or_else(|_| panic!("the server did not close the connection within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("read: {e}"));
    String::from_utf8_lossy(&text).into_owned()
}

/// A WebSocket client of the test server.
pub struct Ws {
    framed: actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
    /// The `hello` frame received on connect.
    pub hello: Value,
}

pub const WAIT: Duration = Duration::from_secs(10);

impl TestApp {
    /// Connects with `?token=`, platform and device; waits for `hello`.
    pub async fn ws(&self, token: &str, platform: u8, device: &str) -> Ws {
        ws_at(&self.addr.to_string(), token, platform, device).await
    }

    /// A user of app A with a token and one connection (platform 1 = iOS unless given).
    pub async fn online(&self, uid: u64, platform: u8, device: &str) -> Ws {
        let token = self.grant(uid).await;
        self.ws(&token, platform, device).await
    }
}

/// A WebSocket to the server at `addr` with `?token=`, platform and device; waits for
/// `hello`.
pub async fn ws_at(addr: &str, token: &str, platform: u8, device: &str) -> Ws {
    let url = format!("ws://{addr}/ws?token={token}&platform_id={platform}&device_id={device}");
    let (res, framed) = awc::Client::new()
        .ws(url)
        .max_frame_size(8 << 20)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("ws connect: {e}"));
    assert_eq!(res.status().as_u16(), 101);
    Ws::from_framed(framed).await
}

impl Ws {
    /// Wraps a connection as it is (no `hello` expected).
    #[allow(dead_code)]
    pub fn from_raw(framed: actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>) -> Ws {
        Ws {
            framed,
            hello: Value::Null,
        }
    }

    /// Wraps a connection made elsewhere; waits for `hello`.
    #[allow(dead_code)]
    pub async fn from_framed(framed: actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>) -> Ws {
        let mut ws = Ws {
            framed,
            hello: Value::Null,
        };
        let hello = ws.recv().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        ws.hello = hello;
        ws
    }

    pub async fn send(&mut self, v: Value) {
        use futures_util::SinkExt;
        self.framed
            .send(awc::ws::Message::Text(v.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("ws send: {e}"));
    }

    pub async fn send_raw(&mut self, msg: awc::ws::Message) {
        use futures_util::SinkExt;
        let _ = self.framed.send(msg).await;
    }

    /// Writes bytes to the socket as they are: hand-built frames the codec would refuse to
    /// produce (text that is not UTF-8, reserved opcodes, unmasked frames). False once the
    /// server has closed the connection.
    pub async fn send_wire(&mut self, bytes: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt;
        let io = self.framed.io_mut();
        io.write_all(bytes).await.is_ok() && io.flush().await.is_ok()
    }

    /// The next frame: Ok(JSON text) or Err(close code), skipping pings.
    pub async fn next(&mut self, within: Duration) -> Option<Result<Value, u16>> {
        use futures_util::StreamExt;
        loop {
            let frame = tokio::time::timeout(within, self.framed.next())
                .await
                .ok()?;
            match frame {
                Some(Ok(awc::ws::Frame::Text(b))) => {
                    return Some(Ok(serde_json::from_slice(&b)
                        .unwrap_or_else(|e| panic!("bad JSON frame {e}: {b:?}"))));
                }
                Some(Ok(awc::ws::Frame::Close(reason))) => {
                    return Some(Err(reason.map_or(1005, |r| u16::from(r.code))));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Err(1006)),
            }
        }
    }

    /// The next JSON frame (panics on timeout or close).
    pub async fn recv(&mut self) -> Value {
        match self.next(WAIT).await {
            Some(Ok(v)) => v,
            Some(Err(code)) => panic!("connection closed with {code} while waiting for a frame"),
            None => panic!("no frame within {WAIT:?}"),
        }
    }

    /// The next frame of `type` (other frames are returned too, in order, before it).
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// The contents of the group messages received until `quiet` passes without a frame.
    pub async fn group_contents(&mut self, quiet: Duration) -> Vec<String> {
        let mut got = Vec::new();
        while let Some(Ok(m)) = self.next(quiet).await {
            if m["kind"] == "group" {
                got.push(m["content"].as_str().unwrap_or_default().to_string());
            }
        }
        got
    }

    /// Asserts no JSON frame arrives for `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Some(Ok(v)) = self.next(d).await {
            panic!("unexpected frame {v}");
        }
    }

    /// Syncs from `after` until `more` is false; returns every message frame that arrived
    /// meanwhile, synced or live, in arrival order.
    pub async fn sync_all(&mut self, mut after: u64) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            self.send(serde_json::json!({"type": "sync", "after": after}))
                .await;
            loop {
                let v = self.recv().await;
                match v["type"].as_str() {
                    Some("message") => out.push(v),
                    Some("sync_end") => {
                        after = v["seq"].as_u64().unwrap_or(0);
                        if v["more"] == true {
                            break;
                        }
                        return out;
                    }
                    _ => {}
                }
            }
        }
    }

    #[allow(dead_code)]
    pub async fn close(mut self) {
        use futures_util::SinkExt;
        let _ = self.framed.send(awc::ws::Message::Close(None)).await;
    }
}
