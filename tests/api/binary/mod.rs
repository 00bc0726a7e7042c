//! The GoBelieve binary protocol (README "GoBelieve binary protocol"), with a client written
//! from the reference in `client.rs`: over TCP and over a WebSocket, every command, each
//! version's byte layout; JSON and binary clients of one user together; bad and fuzzed frames.

mod client;
mod customer;
mod fuzz;
mod groups;
mod live;
mod peer;
mod push;
mod sync;
