//! Bad input (issue "Reliability and security", item 3): generated JSON bodies of every shape,
//! bodies that are not JSON, random paths, methods and query strings against every endpoint that
//! takes them, and generated WebSocket frames.
//!
//! The properties: the server answers every request with a success or a 4xx in the documented
//! envelope (`meta.code` = the status), never a 5xx, and keeps serving (`/healthz` after every
//! batch); every bad frame gets an `error` frame or a close code (1008 past the bad-frame limit,
//! 1009 over the size limit), never silence, and a fresh connection afterwards works.
//!
//! proptest generates the inputs but is synchronous, so each property draws its cases from a
//! `TestRunner` with a fixed seed (the same inputs on every run; `PROPTEST_RNG_SEED` explores
//! others) and sends them with the test's runtime. A failing case is shrunk through its
//! `ValueTree` before it is reported.

mod bodies;
mod endpoints;
pub(crate) mod frames;
mod http;
mod values;
mod ws;

use std::time::Instant;

use futures_util::StreamExt;
use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::json;

use self::endpoints::Auth;
use self::frames::WsInput;
use self::http::{Creds, Request};
use crate::helpers::*;

/// Seed of every fuzz property, unless `PROPTEST_RNG_SEED` is set.
const SEED: u64 = 0x1A7E_5EED;
/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// Cases between two liveness checks.
const BATCH: usize = 250;
/// Most candidates tried while shrinking a failing case.
const SHRINK_STEPS: usize = 300;
/// App A's customer-service store in the fuzzed servers.
pub const STORE: u64 = 100;
/// Limits of the fuzzed servers: small, so that oversized inputs are cheap to send.
pub const BODY_LIMIT: usize = 64 * 1024;
pub const CONTENT_LIMIT: usize = 4 * 1024;
pub const FRAME_LIMIT: usize = 16 * 1024;

/// A runner drawing the same cases on every run.
pub fn runner(cases: usize) -> (TestRunner, RngSeed) {
    let defaults = Config::default();
    let rng_seed = match defaults.rng_seed {
        RngSeed::Random => RngSeed::Fixed(SEED),
        given => given,
    };
    let config = Config {
        cases: cases as u32,
        rng_seed,
        ..defaults
    };
    (TestRunner::new(config), rng_seed)
}

/// Simplifies a failing case as far as it keeps failing (proptest's shrinking loop, with an
/// async check); returns the simplest failing input and why it fails.
pub async fn shrink<T: ValueTree>(
    tree: &mut T,
    mut why: String,
    check: impl AsyncFn(&T::Value) -> Result<(), String>,
) -> (T::Value, String) {
    let mut failing = tree.current();
    if !tree.simplify() {
        return (failing, why);
    }
    for _ in 0..SHRINK_STEPS {
        let candidate = tree.current();
        match check(&candidate).await {
            Err(e) => {
                failing = candidate;
                why = e;
                if !tree.simplify() {
                    break;
                }
            }
            Ok(()) => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    (failing, why)
}

/// A server under fuzzing with its fixtures: users 1..=12 with tokens, groups 1 (normal), 2
/// (super) and 3, supporter 11 of app A's store, a customer.
struct Target {
    app: TestApp,
    /// User 1's token.
    client: String,
    customer: String,
}

impl Target {
    async fn spawn(backend: Backend) -> Target {
        let (mut s, url) = test_settings(backend);
        s.apps[0].store_id = STORE;
        s.apps[1].store_id = 200;
        // Unsigned registration, so fuzzed bodies get past the signature check (the signed
        // path is tested in customer_identity.rs).
        s.apps[0].customer_registration = im_dispatcher::config::CustomerRegistration::Unsigned;
        s.customers.register_per_minute = 1_000_000;
        s.limits.request_body = BODY_LIMIT;
        s.limits.content = CONTENT_LIMIT;
        s.limits.ws_max_frame = FRAME_LIMIT;
        s.im_http.listen = "127.0.0.1:0".into();
        let app = spawn_with(s, url).await;
        let mut tokens = Vec::new();
        for uid in 1..=12 {
            tokens.push(app.grant(uid).await);
        }
        for (gid, is_super, members) in [
            (1, false, json!([2, 3, 4, 5, 6])),
            (2, true, json!([1, 3, 5, 7, 9, 11])),
            (3, false, json!([4, {"uid": 12, "name": "twelve"}])),
        ] {
            let body = json!({"group_id": gid, "master": gid, "name": format!("g{gid}"),
                              "super": is_super, "members": members});
            app.post("/groups", body).await.data();
        }
        app.post(
            &format!("/stores/{STORE}/supporters"),
            json!({"uid": 11, "name": "agent"}),
        )
        .await
        .data();
        let customer = app
            .call(
                "POST",
                "/auth/customer",
                None,
                Some(json!({"appid": APP_A, "customer_id": "fuzz-customer"})),
            )
            .await
            .data()["token"]
            .as_str()
            .unwrap()
            .to_string();
        Target {
            client: tokens.swap_remove(0),
            customer,
            app,
        }
    }

    fn header(&self, r: &Request) -> Option<String> {
        match (&r.creds, r.auth) {
            (Creds::Omitted, _) | (Creds::Proper, Auth::Public) => None,
            (Creds::Header(h), _) => Some(h.clone()),
            (Creds::Proper, Auth::Server) => Some(self.app.auth_a()),
            (Creds::Proper, Auth::Client) => Some(format!("Bearer {}", self.client)),
            (Creds::Proper, Auth::Customer) => Some(format!("Bearer {}", self.customer)),
            (Creds::Proper, Auth::AppKey) => Some(basic_key(APP_A, "key-a")),
        }
    }

    /// The status of a request whose answer passes the verdict.
    async fn check(&self, r: &Request) -> Result<u16, String> {
        let res = http::send(&self.app, self.header(r).as_deref(), r).await?;
        http::verdict(r, &res).map(|()| res.status)
    }

    async fn assert_alive(&self) {
        let res = self.app.call("GET", "/healthz", None, None).await;
        assert_eq!(res.data()["status"], "ok");
    }

    /// Sends `cases` requests drawn from `strategy`, `CONCURRENCY` at a time, checking
    /// liveness after every batch; panics with the first failing case, shrunk.
    async fn fuzz(&self, name: &str, strategy: BoxedStrategy<Request>, cases: usize) -> usize {
        let started = Instant::now();
        let (mut runner, seed) = runner(cases);
        let mut done = 0;
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        while done < cases {
            let trees: Vec<_> = (0..BATCH.min(cases - done))
                .map(|_| strategy.new_tree(&mut runner).unwrap())
                .collect();
            let results: Vec<(usize, Result<u16, String>)> =
                futures_util::stream::iter(trees.iter().enumerate())
                    .map(|(i, tree)| async move { (i, self.check(&tree.current()).await) })
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await;
            let mut failures = Vec::new();
            for (i, result) in results {
                match result {
                    Ok(status) => *statuses.entry(status).or_default() += 1,
                    Err(why) => failures.push((i, why)),
                }
            }
            if let Some((i, why)) = failures.into_iter().min_by_key(|f| f.0) {
                let mut tree = trees.into_iter().nth(i).unwrap();
                let check = async |r: &Request| self.check(r).await.map(drop);
                let (case, why) = shrink(&mut tree, why, check).await;
                panic!(
                    "{name}: case {} (seed {seed}) failed: {why}\n{}",
                    done + i + 1,
                    case.describe()
                );
            }
            self.assert_alive().await;
            done += trees.len();
        }
        println!(
            "fuzz {name}: {done} cases (seed {seed}) in {:.1} s; statuses {statuses:?}",
            started.elapsed().as_secs_f64()
        );
        done
    }
}

#[actix_web::test]
async fn json_bodies_of_every_shape_get_the_envelope_and_never_a_5xx() {
    let mut total = 0;
    for (backend, cases) in [(Backend::Redis, 6_000), (Backend::Memory, 4_000)] {
        let target = Target::spawn(backend).await;
        let name = format!("json bodies ({backend:?})");
        total += target.fuzz(&name, http::json_request(), cases).await;
    }
    assert_eq!(total, 10_000);
}

#[actix_web::test]
async fn bodies_that_are_not_json_get_the_envelope_and_never_a_5xx() {
    let target = Target::spawn(Backend::Memory).await;
    let done = target.fuzz("raw bodies", http::raw_request(), 3_000).await;
    assert_eq!(done, 3_000);
}

#[actix_web::test]
async fn random_paths_methods_and_queries_get_the_envelope_and_never_a_5xx() {
    let target = Target::spawn(Backend::Redis).await;
    let done = target
        .fuzz("paths and queries", http::path_or_query_request(), 3_000)
        .await;
    assert_eq!(done, 3_000);
}

#[actix_web::test]
async fn the_im_http_api_answers_random_queries_and_bodies_with_data_or_a_4xx_never_a_5xx() {
    let target = Target::spawn(Backend::Redis).await;
    let done = target.fuzz("im HTTP API", http::im_request(), 2_000).await;
    assert_eq!(done, 2_000);
}

/// Sends one input, then the sentinel `ping` (not after an oversized frame: the server has
/// closed by then).
async fn send_input(conn: &mut Ws, input: &WsInput, expect: ws::Expect) {
    use awc::ws::Message;
    match input {
        WsInput::Text(t) => conn.send_raw(Message::Text(t.clone().into())).await,
        WsInput::Binary(b) => conn.send_raw(Message::Binary(b.clone().into())).await,
        WsInput::Ping(b) => conn.send_raw(Message::Ping(b.clone().into())).await,
        WsInput::Pong(b) => conn.send_raw(Message::Pong(b.clone().into())).await,
        WsInput::Oversize(n) => conn.send_raw(Message::Text("x".repeat(*n).into())).await,
        WsInput::Wire(bytes) | WsInput::Fragmented(bytes) => {
            conn.send_wire(bytes).await;
        }
    }
    if expect != ws::Expect::TooBig {
        conn.send_raw(Message::Text(r#"{"type":"ping"}"#.into()))
            .await;
    }
}

#[actix_web::test]
async fn bad_websocket_frames_get_an_error_or_a_close_code_and_the_server_keeps_serving() {
    const CASES: usize = 3_000;
    let target = Target::spawn(Backend::Redis).await;
    let max_bad = target.app.state.settings.limits.ws_max_bad_frames;
    let started = Instant::now();
    let (mut runner, seed) = runner(CASES);
    let strategy = frames::ws_input();
    let connect = async || target.app.ws(&target.client, 1, "fuzz").await;
    let mut conn = connect().await;
    let (mut bad, mut connections, mut closes) = (0, 1, Vec::new());
    let (mut errors, mut acks, mut sync_ends) = (0, 0, 0);
    let mut recent: Vec<WsInput> = Vec::new();
    for case in 1..=CASES {
        let input = strategy.new_tree(&mut runner).unwrap().current();
        let expect = ws::expect(&input);
        if expect == ws::Expect::Error {
            bad += 1;
        }
        send_input(&mut conn, &input, expect).await;
        recent.push(input);
        let verdict = match ws::answer(&mut conn, expect).await {
            Ok(answer) => {
                errors += answer.errors.len();
                acks += answer.acks;
                sync_ends += answer.sync_ends;
                if matches!(expect, ws::Expect::ErrorOrClose | ws::Expect::SilentOrError) {
                    bad += answer.errors.len() as u32;
                }
                ws::judge(expect, &answer, bad, max_bad).map(|()| answer.closed)
            }
            Err(e) => Err(e),
        };
        match verdict {
            Ok(None) => {}
            Ok(Some(code)) => {
                closes.push(code);
                conn = connect().await;
                (bad, connections) = (0, connections + 1);
                recent.clear();
            }
            Err(why) => {
                let shown: Vec<String> = recent
                    .iter()
                    .rev()
                    .take(5)
                    .map(|i| format!("{i:?}"))
                    .collect();
                panic!(
                    "ws case {case} (seed {seed}): {why}\nthis connection's last inputs, newest (failing) first:\n{}",
                    shown.join("\n")
                )
            }
        }
        if case % BATCH == 0 {
            target.assert_alive().await;
        }
    }
    let mut fresh = connect().await;
    fresh.send(json!({"type": "ping"})).await;
    assert_eq!(fresh.recv().await["type"], "pong");
    target.assert_alive().await;
    let count = |code| closes.iter().filter(|c| **c == code).count();
    println!(
        "fuzz websocket frames: {CASES} cases (seed {seed}) in {:.1} s on {connections} \
         connections ({} closed with 1008, {} with 1009); answers: {errors} errors, {acks} acks, \
         {sync_ends} sync_ends",
        started.elapsed().as_secs_f64(),
        count(1008),
        count(1009),
    );
    assert!(
        count(1008) > 0 && count(1009) > 0,
        "the inputs reach both close codes"
    );
}
