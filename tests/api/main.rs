//! The one integration-test binary: the real server on a free port, real HTTP, a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // production code may not; tests state their assumptions

mod helpers;
mod redis_server;
mod security;

mod auth;
mod binary;
mod cli;
mod compat;
mod conventions;
mod customer_identity;
mod customers;
mod fanout_order;
mod fanout_targets;
mod faults;
mod fuzz;
mod group_batches;
mod groups;
mod health;
mod im_http;
mod limits;
mod loadgen;
mod media;
mod messaging;
mod multinode;
mod multinode_chaos;
mod multinode_live;
mod multinode_push;
mod openapi;
mod pacing;
mod process;
mod push;
mod rooms;
mod rt;
mod slow_clients;
mod store_conformance;
mod store_outcomes;
mod store_properties;
mod super_groups;
mod users;
mod ws_limits;
