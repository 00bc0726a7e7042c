//! The load generator against a real test server: each scenario on a tiny scale, checked the
//! way a user reads a report — everything sent arrived exactly once, with latencies measured.
//!
//! The group scenarios need the group API (POST /groups, /messages/groups); until that lands
//! they fail with the server's 404 in the error.

use im_dispatcher::loadgen::{
    self, ActorsArgs, ApiArgs, Common, ConnectArgs, FanoutArgs, GroupsArgs, IdleArgs, LoadOptions,
    PeerArgs, Report, Scenario, SuperGroupArgs,
};

use crate::helpers::*;

fn options(app: &TestApp, scenario: Scenario) -> LoadOptions {
    let mut common = Common::new(app.base.clone());
    common.app = APP_A;
    common.secret = SECRET_A.into();
    common.json = true;
    common.threads = Some(2);
    common.source_ips = 2;
    common.drain = 5.0;
    common.request_timeout = 5.0;
    LoadOptions { common, scenario }
}

async fn run(app: &TestApp, scenario: Scenario) -> Report {
    let report = loadgen::run(options(app, scenario))
        .await
        .unwrap_or_else(|e| panic!("loadgen: {e:#}"));
    // A report is always one JSON line.
    let line = serde_json::to_string(&report).unwrap();
    assert!(!line.contains('\n'));
    report
}

/// Every acknowledged message reached every expected receiver once, with latencies.
#[track_caller]
fn assert_all_delivered(r: &Report, sent: u64, per_message: u64) {
    assert_eq!(r.messages_sent, sent, "{r:#?}");
    assert_eq!(r.send_failures, 0, "{r:#?}");
    assert_eq!(r.deliveries_expected, sent * per_message, "{r:#?}");
    assert_eq!(r.deliveries_received, r.deliveries_expected, "{r:#?}");
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:#?}");
    assert_eq!(r.connections_dropped, 0, "{r:#?}");
    let latency = r.latency_us.unwrap_or_else(|| panic!("no latency: {r:#?}"));
    assert_eq!(latency.count, r.deliveries_received);
    assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    assert!(r.deliveries_per_sec.is_some_and(|d| d > 0.0), "{r:#?}");
}

#[actix_web::test]
async fn peer_messages_all_arrive_once_with_latencies() {
    let app = spawn_app(Backend::Memory).await;
    let r = run(
        &app,
        Scenario::Peer(PeerArgs {
            pairs: 3,
            rate: 0.0,
            messages: Some(30),
            duration: None,
            senders: 2,
        }),
    )
    .await;
    assert_eq!(r.scenario, "peer");
    assert_eq!(r.clients_connected, 3);
    assert_all_delivered(&r, 30, 1);
    assert!(r.http.requests_per_sec.is_some());
    assert!(r.client.as_ref().is_some_and(|c| c.rss_bytes > 0), "{r:#?}");
}

#[actix_web::test]
async fn a_paced_peer_run_stops_at_its_duration() {
    let app = spawn_app(Backend::Memory).await;
    let r = run(
        &app,
        Scenario::Peer(PeerArgs {
            pairs: 2,
            rate: 40.0,
            messages: None,
            duration: Some(0.5),
            senders: 2,
        }),
    )
    .await;
    // 40/s for 0.5 s: the messages due at 0, 25, …, 475 ms.
    assert_eq!(r.messages_sent, 20, "{r:#?}");
    assert_all_delivered(&r, r.messages_sent, 1);
}

#[actix_web::test]
async fn api_reports_request_rate_and_latency_without_errors() {
    let app = spawn_app(Backend::Memory).await;
    let r = run(
        &app,
        Scenario::Api(ApiArgs {
            connections: 2,
            duration: 0.5,
            receivers: 10,
        }),
    )
    .await;
    assert!(r.messages_sent > 0, "{r:#?}");
    assert_eq!(r.http.requests, r.messages_sent);
    assert!(r.http.errors.is_empty(), "{r:#?}");
    assert!(r.http.requests_per_sec.is_some_and(|x| x > 0.0));
    let l = r.http.latency_us.unwrap_or_else(|| panic!("{r:#?}"));
    assert_eq!(l.count, r.http.requests);
}

#[actix_web::test]
async fn api_counts_refused_requests_by_status() {
    let app = spawn_app(Backend::Memory).await;
    let mut opts = options(
        &app,
        Scenario::Api(ApiArgs {
            connections: 1,
            duration: 0.2,
            receivers: 10,
        }),
    );
    opts.common.secret = "wrong".into();
    let r = loadgen::run(opts).await.unwrap();
    assert_eq!(r.messages_sent, 0);
    assert!(r.http.errors.get("401").is_some_and(|n| *n > 0), "{r:#?}");
    assert!(!r.errors.is_empty());
}

#[actix_web::test]
async fn connect_churns_without_failures() {
    let app = spawn_app(Backend::Memory).await;
    let r = run(
        &app,
        Scenario::Connect(ConnectArgs {
            clients: 3,
            duration: 0.5,
        }),
    )
    .await;
    assert!(r.clients_connected >= 3, "{r:#?}");
    assert_eq!(r.connect_failures, 0, "{r:#?}");
    assert!(r.connects_per_sec.is_some_and(|c| c > 0.0));
    assert!(r.connect_latency_us.is_some());
}

#[actix_web::test]
async fn idle_holds_connections_and_samples_the_server() {
    let app = spawn_app(Backend::Memory).await;
    let mut opts = options(
        &app,
        Scenario::Idle(IdleArgs {
            connections: 5,
            hold: 0.3,
        }),
    );
    // The server runs in this process.
    opts.common.server_pid = Some(std::process::id());
    let r = loadgen::run(opts).await.unwrap();
    assert_eq!((r.clients_connected, r.connect_failures), (5, 0), "{r:#?}");
    assert_eq!(r.connections_dropped, 0);
    let server = r
        .server
        .as_ref()
        .unwrap_or_else(|| panic!("no server sample: {r:#?}"));
    assert!(server.rss_before_bytes > 0 && server.rss_after_bytes > 0);
    assert!(server.rss_per_connection_bytes.is_some());
}

/// Options aimed at a server process of the test's own, sampled by pid.
fn own_server(server: &crate::process::Server) -> Common {
    let mut common = Common::new(server.base());
    common.json = true;
    common.threads = Some(2);
    common.source_ips = 1;
    common.server_pid = Some(server.child.id());
    common
}

#[actix_web::test]
async fn actors_loads_groups_and_samples_the_server_per_group() {
    // A server process of its own: the scenario waits for its `imd_group_actors` gauge, which
    // in this test process would count every other test's groups too.
    let server = crate::process::Server::start(&[
        ("IMD_LIMITS__ACTOR_IDLE_SECS", "1".to_string()),
        ("IMD_LOG__LEVEL", "warn".to_string()),
    ]);
    let common = own_server(&server);
    let opts = LoadOptions {
        common,
        scenario: Scenario::Actors(ActorsArgs { groups: 4, size: 5 }),
    };
    let r = loadgen::run(opts)
        .await
        .unwrap_or_else(|e| panic!("loadgen: {e:#}"));
    assert!(r.errors.is_empty(), "{r:#?}");
    let s = r
        .server
        .as_ref()
        .unwrap_or_else(|| panic!("no server sample: {r:#?}"));
    assert!(s.rss_per_group_bytes.is_some());
    assert_eq!(s.rss_per_group_target_bytes, Some(1024 + 16 * 5));
}

/// The big-super-group scenario at a tiny size, against a server process of its own (the
/// scenario reads the server's `imd_push_receivers_total`, which in this test process would
/// count other tests' pushes too) with the redis store and push sink.
#[actix_web::test]
async fn supergroup_builds_in_batches_delivers_to_the_online_and_counts_push_receivers() {
    let url = crate::redis_server::fresh_db();
    let server = crate::process::Server::start(&[
        ("IMD_STORE__KIND", "redis".to_string()),
        ("IMD_STORE__REDIS_URL", url),
        ("IMD_PUSH__SINK", "redis".to_string()),
        ("IMD_PUSH__FLUSH_INTERVAL_MS", "5".to_string()),
        ("IMD_LOG__LEVEL", "warn".to_string()),
    ]);
    let common = own_server(&server);
    let scenario = Scenario::Supergroup(SuperGroupArgs {
        members: 500,
        online: 20,
        web_share: 0.5,
        batch: 150,
        messages: 3,
        rate: 0.0,
        senders: 1,
        push_wait: 20.0,
        remove: 100,
    });
    let r = loadgen::run(LoadOptions { common, scenario })
        .await
        .unwrap_or_else(|e| panic!("loadgen: {e:#}"));
    assert_eq!(r.scenario, "supergroup");
    assert_all_delivered(&r, 3, 20);
    let g = r
        .super_group
        .as_ref()
        .unwrap_or_else(|| panic!("no super-group report: {r:#?}"));
    assert_eq!(
        (g.members, g.online, g.web, g.build_requests),
        (500, 20, 10, 4)
    );
    // Every offline member, once per message; the online web members bound no token.
    assert_eq!(g.push_receivers, 3 * (500 - 20), "{r:#?}");
    assert!(g.push_receivers_per_sec.is_some_and(|r| r > 0.0), "{r:#?}");
    assert!(g.remove_request_secs.is_some(), "{r:#?}");
    let s = r.server.as_ref().unwrap_or_else(|| panic!("{r:#?}"));
    assert!(
        s.rss_peak_bytes
            .is_some_and(|p| p >= s.rss_before_bytes.min(s.rss_after_bytes))
    );
}

#[actix_web::test]
async fn an_unreachable_server_is_a_clear_error() {
    let mut common = Common::new("http://127.0.0.1:1");
    common.request_timeout = 1.0;
    let opts = LoadOptions {
        common,
        scenario: Scenario::Idle(IdleArgs {
            connections: 1,
            hold: 0.1,
        }),
    };
    let r = loadgen::run(opts).await.unwrap();
    assert_eq!(r.connect_failures, 1);
    assert!(r.errors.iter().any(|e| e.contains("/auth/grant")), "{r:#?}");
}

// Group scenarios: they need the group endpoints (being built on another branch).

#[actix_web::test]
async fn fanout_reaches_every_member_of_a_group() {
    let app = spawn_app(Backend::Memory).await;
    let r = run(&app, Scenario::Fanout(fanout(false))).await;
    assert_eq!(r.scenario, "fanout");
    assert_all_delivered(&r, 10, 6);
    assert_eq!(r.last_member_latency_us.map(|l| l.count), Some(10));
}

#[actix_web::test]
async fn fanout_reaches_every_member_of_a_super_group() {
    let app = spawn_app(Backend::Memory).await;
    let r = run(&app, Scenario::Fanout(fanout(true))).await;
    assert_eq!(r.scenario, "fanout_super");
    assert_all_delivered(&r, 10, 6);
    assert_eq!(r.last_member_latency_us.map(|l| l.count), Some(10));
}

fn fanout(super_group: bool) -> FanoutArgs {
    FanoutArgs {
        members: 6,
        messages: 10,
        senders: 2,
        rate: 0.0,
        super_group,
        duration: 10.0,
        probe_rate: 0.0,
    }
}

#[actix_web::test]
async fn fanout_with_a_probe_times_unrelated_peer_sends_while_it_runs() {
    let app = spawn_app(Backend::Memory).await;
    // 10 messages at 20/s: half a second of fan-out, with peer sends at 40/s beside it.
    let a = FanoutArgs {
        rate: 20.0,
        probe_rate: 40.0,
        ..fanout(true)
    };
    let r = run(&app, Scenario::Fanout(a)).await;
    assert_all_delivered(&r, 10, 6);
    let probe = r.probe_latency_us.expect("the probe's sends are reported");
    assert!(
        probe.count >= 10,
        "{} probe sends in half a second at 40/s",
        probe.count
    );
    assert_eq!(r.probe_failures, 0, "errors: {:?}", r.errors);
    assert_eq!(r.foreign_frames, 0, "the probe's receiver is not a member");
}

#[actix_web::test]
async fn groups_deliver_to_every_member_of_each_group() {
    let app = spawn_app(Backend::Memory).await;
    let r = run(
        &app,
        Scenario::Groups(GroupsArgs {
            groups: 3,
            size: 4,
            rate: 0.0,
            messages: 24,
            duration: 10.0,
            senders: 2,
            super_group: false,
        }),
    )
    .await;
    assert_eq!(r.clients_connected, 12);
    assert_all_delivered(&r, 24, 4);
}

#[actix_web::test]
async fn the_cli_prints_exactly_one_json_line() {
    let app = spawn_app(Backend::Memory).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_im-dispatcher"))
        .args(["loadgen", "api", "--connections", "1", "--duration", "0.3"])
        .args(["--url", &app.base, "--secret", SECRET_A, "--json"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["scenario"], "api");
    assert!(
        report["messages_sent"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
}

/// `options`, with binary-protocol receivers (`--binary`): TCP to the test server's binary
/// listener, or `ws`.
async fn run_binary(app: &TestApp, scenario: Scenario, tcp: bool) -> Report {
    let mut opts = options(app, scenario);
    opts.common.binary = Some(match (tcp, app.binary_addr) {
        (true, Some(addr)) => addr.to_string(),
        _ => "ws".into(),
    });
    loadgen::run(opts)
        .await
        .unwrap_or_else(|e| panic!("loadgen: {e:#}"))
}

#[actix_web::test]
async fn binary_clients_get_every_fanout_and_peer_message_over_tcp_and_ws() {
    let app = spawn_app(Backend::Memory).await;
    for (super_group, tcp) in [(false, true), (true, false), (true, true)] {
        let r = run_binary(&app, Scenario::Fanout(fanout(super_group)), tcp).await;
        assert_all_delivered(&r, 10, 6);
    }
    let peer = Scenario::Peer(PeerArgs {
        pairs: 3,
        rate: 0.0,
        messages: Some(30),
        duration: None,
        senders: 2,
    });
    let r = run_binary(&app, peer, true).await;
    assert_eq!(r.clients_connected, 3);
    assert_all_delivered(&r, 30, 1);
    // Half the members on the binary protocol, half on JSON: every one gets every message.
    let mut opts = options(&app, Scenario::Fanout(fanout(true)));
    opts.common.binary = app.binary_addr.map(|a| a.to_string());
    opts.common.binary_share = 0.5;
    let r = loadgen::run(opts)
        .await
        .unwrap_or_else(|e| panic!("loadgen: {e:#}"));
    assert_all_delivered(&r, 10, 6);
    // Idle binary connections over TCP, held and released (the per-connection memory figure).
    let idle = Scenario::Idle(IdleArgs {
        connections: 5,
        hold: 0.3,
    });
    let r = run_binary(&app, idle, true).await;
    assert_eq!((r.clients_connected, r.connect_failures), (5, 0), "{r:#?}");
    assert_eq!(r.connections_dropped, 0);
}
