//! Heap bytes held by idle state, counted exactly with a counting allocator (RSS cannot tell
//! a loaded group from memory its predecessors freed):
//! - a loaded, idle group actor with S members (target: 1 KiB + 16 bytes a member);
//! - an idle connection's dispatcher side (session, outbox, hub registration; the socket task
//!   and the kernel's buffers are not included — `loadgen idle` measures the whole process).
//!
//! `cargo bench --bench memory` prints the figures; `cargo test --benches` runs it small.

#![allow(unsafe_code)] // the counting allocator below, nothing else

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use actix_web::rt::System as ActixSystem;
use im_dispatcher::config::{Settings, StoreKind};
use im_dispatcher::dispatch::Dispatcher;
use im_dispatcher::dispatch::outbox::Outbox;
use im_dispatcher::domain::{AppId, GroupId, Platform, Uid, UserKey};
use im_dispatcher::push::PushQueue;
use im_dispatcher::store::{GroupRecord, MemberRecord, Store};

/// Bytes currently allocated by the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const APP: AppId = AppId(7);

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

async fn settle() {
    // Let spawned actors start and finish their loads.
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
}

async fn dispatcher() -> Dispatcher {
    let mut s = Settings::load(None).unwrap_or_else(|e| panic!("{e}"));
    s.store.kind = StoreKind::Memory;
    let store = Store::open(&s.store, s.limits.inbox_len)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Dispatcher::new(store, PushQueue::disabled(), s.limits.clone(), 1)
}

/// Bytes per loaded group actor of `size` members.
async fn group_actor(groups: u64, size: u64) -> f64 {
    let d = dispatcher().await;
    for g in 1..=groups {
        let members = (1..=size)
            .map(|u| MemberRecord::new(Uid(g * 100_000 + u), 1_700_000_000, 0))
            .collect();
        let record = GroupRecord {
            id: GroupId(g),
            app: APP,
            name: format!("g{g}"),
            master: Uid(g * 100_000 + 1),
            is_super: false,
            members,
        };
        d.store()
            .create_group(&record)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Warm up one load (first-use allocations: arbiter queues, metrics handles, …).
    d.group_info(APP, GroupId(1), 0, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    settle().await;
    let before = live();
    for g in 2..=groups {
        d.group_info(APP, GroupId(g), 0, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    settle().await;
    (live() - before) as f64 / (groups - 1) as f64
}

/// Bytes per idle connection's dispatcher side (one user each).
async fn connection(n: u64) -> f64 {
    let d = dispatcher().await;
    let mut keep = Vec::new();
    let o = Outbox::new(1024);
    d.connect(UserKey::new(APP, Uid(1)), Platform::IOS, o.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    o.drain(); // a real connection writes its hello at once
    keep.push(o);
    settle().await;
    let before = live();
    for u in 2..=n {
        let o = Outbox::new(1024);
        d.connect(UserKey::new(APP, Uid(u)), Platform::IOS, o.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        o.drain();
        keep.push(o);
    }
    settle().await;
    (live() - before) as f64 / (n - 1) as f64
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test") || cfg!(debug_assertions);
    let (groups, conns) = if smoke { (20, 50) } else { (2_000, 10_000) };
    let sys = ActixSystem::new();
    for size in [10u64, 100, 1_000] {
        let per = sys.block_on(group_actor(groups, size));
        let target = 1024 + 16 * size;
        println!(
            "group actor, {size:>5} members: {per:>8.0} bytes (target {target}){}",
            if per <= target as f64 { "" } else { "  OVER" }
        );
    }
    let per = sys.block_on(connection(conns));
    println!("idle connection, dispatcher side: {per:.0} bytes (session, outbox, hub entry)");
}
