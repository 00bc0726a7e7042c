//! In-process benchmarks (no sockets): group fan-out to 1k/10k/100k connected sessions, a super
//! group of 1,000,000 members with 10,000 online beside 10,000 all online, frame encoding,
//! store appends (memory; redis too when `IMD_BENCH_REDIS_URL` is set).
//!
//! `cargo bench --bench dispatch` (release). `cargo test --benches` runs each once as a smoke
//! test with small sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::rt::System;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use im_dispatcher::config::{Settings, StoreKind};
use im_dispatcher::dispatch::frame::{self, Body, Kind, Spliced};
use im_dispatcher::dispatch::outbox::Outbox;
use im_dispatcher::dispatch::{Dispatcher, MemberSpec, NewGroup};
use im_dispatcher::domain::{AppId, GroupId, Platform, Uid, UserKey};
use im_dispatcher::push::PushQueue;
use im_dispatcher::store::{Append, Store};

const APP: AppId = AppId(7);

/// Smoke mode (`cargo test --benches`): tiny sizes.
fn smoke() -> bool {
    std::env::args().any(|a| a == "--test") || cfg!(debug_assertions)
}

fn settings() -> Settings {
    let mut s = Settings::load(None).unwrap_or_else(|e| panic!("{e}"));
    s.store.kind = StoreKind::Memory;
    s.limits.outbound_queue = 1 << 20;
    s
}

/// A dispatcher with one group of `n` members, each with one outbox-only connection.
async fn group_with_connections(n: u64, is_super: bool) -> (Dispatcher, GroupId, Vec<Arc<Outbox>>) {
    group_with_online(n, n, is_super).await
}

/// A dispatcher with one group of `n` members, `online` of them (spread evenly over the uids)
/// with one outbox-only connection each.
async fn group_with_online(
    n: u64,
    online: u64,
    is_super: bool,
) -> (Dispatcher, GroupId, Vec<Arc<Outbox>>) {
    let s = settings();
    let store = Store::open(&s.store, s.limits.inbox_len)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dispatcher = Dispatcher::new(store, PushQueue::disabled(), s.limits.clone(), 0);
    let members = (2..=n)
        .map(|u| MemberSpec {
            uid: Uid(u),
            name: None,
            avatar: None,
        })
        .collect();
    let group = NewGroup {
        group_id: GroupId(0),
        master: Uid(1),
        name: "bench".into(),
        is_super,
        members,
        posted_members: serde_json::Value::Null,
    };
    let gid = dispatcher
        .create_group(APP, group)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut outboxes = Vec::with_capacity(online as usize);
    let step = (n / online.max(1)).max(1);
    for u in (1..=n).step_by(step as usize).take(online as usize) {
        let outbox = Outbox::new(1 << 20);
        dispatcher
            .connect(UserKey::new(APP, Uid(u)), Platform::IOS, outbox.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        outbox.drain(); // the hello: not part of the fan-out being measured
        outboxes.push(outbox);
    }
    (dispatcher, gid, outboxes)
}

fn fanout(c: &mut Criterion) {
    let (super_sizes, normal_sizes): (&[u64], &[u64]) = if smoke() {
        (&[100], &[100])
    } else {
        (&[1_000, 10_000, 100_000], &[1_000])
    };
    fanout_group(c, "fanout_super_group", super_sizes, true);
    fanout_group(c, "fanout_normal_group", normal_sizes, false);
}

/// One message to a super group of 1,000,000 members with 10,000 online, beside the same
/// message to a group of 10,000 all online: what a message costs follows who is online
/// (SPEC §9), so the two should be close.
fn fanout_online(c: &mut Criterion) {
    let cases: &[(u64, u64)] = if smoke() {
        &[(1_000, 100), (100, 100)]
    } else {
        &[(1_000_000, 10_000), (10_000, 10_000)]
    };
    let mut g = c.benchmark_group("fanout_super_group_online");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for &(members, online) in cases {
        let sys = System::new();
        let (dispatcher, gid, outboxes) = sys.block_on(group_with_online(members, online, true));
        g.throughput(Throughput::Elements(online));
        let id = BenchmarkId::from_parameter(format!("{members}_members_{online}_online"));
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                sys.block_on(send_until_queued(&dispatcher, gid, &outboxes, iters))
            })
        });
    }
    g.finish();
}

/// Sends `iters` messages one after the other, each until every outbox has it; the time spent.
async fn send_until_queued(
    dispatcher: &Dispatcher,
    gid: GroupId,
    outboxes: &[Arc<Outbox>],
    iters: u64,
) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        let started = Instant::now();
        dispatcher
            .send_group(APP, Uid(1), gid, "{\"t\":1}", None, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut queued = 0;
        while queued < outboxes.len() {
            actix_web::rt::task::yield_now().await;
            queued += outboxes.iter().map(|o| o.drain()).sum::<usize>();
        }
        spent += started.elapsed();
    }
    spent
}

/// One group message to `n` connected members, until every outbox has its frame (the hubs are
/// tasks on this thread); for a normal group the store append to every inbox is included.
fn fanout_group(c: &mut Criterion, name: &str, sizes: &[u64], is_super: bool) {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for &n in sizes {
        let sys = System::new();
        let (dispatcher, gid, outboxes) = sys.block_on(group_with_connections(n, is_super));
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                sys.block_on(send_until_queued(&dispatcher, gid, &outboxes, iters))
            })
        });
    }
    g.finish();
}

fn encoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    for size in [100usize, 1_000, 10_000] {
        let content = "x".repeat(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("encode_once", size),
            &content,
            |b, content| {
                b.iter(|| {
                    let body = frame::body(&Body {
                        apps: None,
                        device_tag: None,
                        msgid: None,
                        kind: Kind::Group,
                        sender: Some(Uid(1)),
                        receiver: 9,
                        group_id: Some(GroupId(9)),
                        content,
                        timestamp: 1_700_000_000_000,
                    });
                    Spliced::new(42, &body)
                })
            },
        );
        let parts = Spliced::new(42, &content);
        g.bench_with_input(
            BenchmarkId::new("render_per_recipient", size),
            &parts,
            |b, parts| b.iter(|| parts.render(123_456)),
        );
    }
    g.finish();
}

fn store_appends(c: &mut Criterion) {
    let mut backends = vec![("memory", settings())];
    if let Ok(url) = std::env::var("IMD_BENCH_REDIS_URL") {
        let mut s = settings();
        s.store.kind = StoreKind::Redis;
        s.store.redis_url = url;
        backends.push(("redis", s));
    }
    let mut g = c.benchmark_group("store_append");
    for (name, s) in backends {
        let sys = System::new();
        let store = sys
            .block_on(Store::open(&s.store, s.limits.inbox_len))
            .unwrap_or_else(|e| panic!("{e}"));
        for fan in [1usize, 2, 50] {
            let inboxes: Vec<UserKey> = (1..=fan as u64)
                .map(|u| UserKey::new(AppId(99), Uid(u)))
                .collect();
            let body = r#""kind":"peer","sender":1,"receiver":2,"content":"hello","timestamp":1}"#;
            g.throughput(Throughput::Elements(fan as u64));
            g.bench_with_input(BenchmarkId::new(name, fan), &inboxes, |b, inboxes| {
                b.iter_custom(|iters| {
                    sys.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iters {
                            store
                                .append(&Append {
                                    inboxes,
                                    body,
                                    idempotency: None,
                                })
                                .await
                                .unwrap_or_else(|e| panic!("{e}"));
                        }
                        started.elapsed()
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, fanout, fanout_online, encoding, store_appends);
criterion_main!(benches);
