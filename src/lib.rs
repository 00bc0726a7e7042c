//! im-dispatcher: the server side of a GoBelieve-compatible instant-messaging system in one
//! process — the REST API app servers call, and the actor-based dispatcher that stores messages,
//! fans them out to WebSocket connections and turns them into push jobs.
//!
//! Layers (see README "Architecture"): `api` (HTTP only) → `dispatch` (actors, behind a handle)
//! → `store` (memory or Redis) and `push` (sinks).

pub mod api;
pub mod apps;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod error;
pub mod im_http;
pub mod loadgen;
pub mod media;
pub mod push;
pub mod ratelimit;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
