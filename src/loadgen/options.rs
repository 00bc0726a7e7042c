//! Command-line options of `im-dispatcher loadgen`: the options every scenario shares and one
//! argument struct per scenario.
//!
//! The same types are the library's input: `main.rs` parses them with clap and tests build them
//! directly (`Common::new(url)` plus a scenario struct), so the command line and in-process runs
//! cannot drift apart. Every run is bounded by a count or a duration (SPEC: a load generator
//! must stop by itself); defaults are sized for a 2-core laptop.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

/// What to run and against which server.
#[derive(Args, Debug, Clone)]
pub struct LoadOptions {
    /// Server, credentials, output and client-side knobs.
    #[command(flatten)]
    pub common: Common,
    /// The scenario and its sizes.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options shared by every scenario (accepted before or after the scenario name).
#[derive(Args, Debug, Clone, Serialize)]
#[command(next_help_heading = "Common options")]
pub struct Common {
    /// Base URL of the server (HTTP; the WebSocket URL is derived from it).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Where the WebSocket clients connect, when not `--url`: other nodes of the same Redis
    /// (sends go through one node, deliveries are measured on others), comma-separated to
    /// spread the clients over several by uid.
    #[arg(long, global = true, value_name = "URL,…", value_delimiter = ',')]
    pub ws_url: Vec<String>,
    /// App id for server authentication.
    #[arg(long, global = true, default_value_t = 7)]
    pub app: u64,
    /// App secret for server authentication (sent as its MD5 hex).
    #[arg(long, global = true, default_value = "demo-secret")]
    #[serde(skip)]
    pub secret: String,
    /// Print exactly one JSON line with the report and nothing else on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Server process to sample RSS and CPU time of (from /proc) before and after the run.
    #[arg(long, global = true, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// More processes whose CPU time is added to the server's (the other nodes of the same
    /// Redis, the redis-server itself): the report's CPU per message and per delivery is then
    /// summed over all of them.
    #[arg(long, global = true, value_name = "PID,…", value_delimiter = ',')]
    pub also_pids: Vec<u32>,
    /// First uid this run uses; give runs disjoint ranges so they do not collide.
    #[arg(long, global = true, default_value_t = 1_000_000)]
    pub uid_base: u64,
    /// Client threads, each with its own runtime (default: one per core).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Source addresses 127.0.0.1..=127.0.0.N used round-robin (loopback targets only), so
    /// more connections fit than one address has ephemeral ports.
    #[arg(long, global = true, default_value_t = 8)]
    pub source_ips: u8,
    /// Token grants and WebSocket handshakes in flight at once.
    #[arg(long, global = true, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Seconds to wait for outstanding deliveries after the last send, or after the last one
    /// that arrived: a server still delivering a backlog is waited for, a stalled one is not.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub drain: f64,
    /// Timeout in seconds of one HTTP request, WebSocket handshake or hello frame.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub request_timeout: f64,
    /// Receivers speak the GoBelieve binary protocol (version 2, as the native SDKs) instead
    /// of JSON: over TCP to this address (the server's `binary.listen`), or `ws` for binary
    /// frames on `/ws`, as the JS SDK.
    #[arg(long, global = true, value_name = "ADDR|ws")]
    pub binary: Option<String>,
    /// With `--binary`: the share of receivers (by uid, 0–1) on the binary protocol; the rest
    /// stay on JSON, so both kinds receive side by side.
    #[arg(long, global = true, default_value_t = 1.0)]
    pub binary_share: f64,
}

impl Common {
    /// The defaults, aimed at `url`.
    pub fn new(url: impl Into<String>) -> Common {
        Common {
            url: url.into(),
            ws_url: Vec::new(),
            also_pids: Vec::new(),
            app: 7,
            secret: "demo-secret".into(),
            json: false,
            server_pid: None,
            uid_base: 1_000_000,
            threads: None,
            source_ips: 8,
            connect_concurrency: 64,
            drain: 10.0,
            request_timeout: 10.0,
            binary: None,
            binary_share: 1.0,
        }
    }

    pub fn drain(&self) -> Duration {
        secs(self.drain)
    }

    pub fn request_timeout(&self) -> Duration {
        secs(self.request_timeout)
    }
}

/// A duration from (possibly fractional, possibly nonsense) seconds.
pub fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::ZERO)
}

/// The load to generate.
#[derive(Subcommand, Debug, Clone, Serialize)]
#[serde(untagged)] // the report names the scenario; its parameters go beside it
pub enum Scenario {
    /// Random sender→receiver pairs over HTTP at a target rate; receivers on WebSocket.
    Peer(PeerArgs),
    /// HTTP send throughput: keep-alive connections posting peer messages back to back.
    Api(ApiArgs),
    /// One group with many online members; messages sent to it as fast as HTTP accepts.
    Fanout(FanoutArgs),
    /// Many groups, all members online, random members sending.
    Groups(GroupsArgs),
    /// Connection churn: clients connecting and disconnecting in a loop.
    Connect(ConnectArgs),
    /// Idle connections held open (pings answered) to measure per-connection server memory.
    Idle(IdleArgs),
    /// Loaded group actors: server memory per group of a given size.
    Actors(ActorsArgs),
    /// One huge super group built through the API, some members online (iOS and web), a few
    /// messages: build time, live latency and cost, push receivers per second, server RSS.
    Supergroup(SuperGroupArgs),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Peer(_) => "peer",
            Scenario::Api(_) => "api",
            Scenario::Fanout(a) if a.super_group => "fanout_super",
            Scenario::Fanout(_) => "fanout",
            Scenario::Groups(_) => "groups",
            Scenario::Connect(_) => "connect",
            Scenario::Idle(_) => "idle",
            Scenario::Actors(_) => "actors",
            Scenario::Supergroup(_) => "supergroup",
        }
    }
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct PeerArgs {
    /// Sender/receiver pairs (receivers are connected; senders only send over HTTP).
    #[arg(long, default_value_t = 100)]
    pub pairs: u64,
    /// Target total send rate in messages per second (0: as fast as possible).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Messages to send in total (with neither this nor --duration: 10 s).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds to send for.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Concurrent HTTP senders (one keep-alive connection each).
    #[arg(long, default_value_t = 16)]
    pub senders: usize,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ApiArgs {
    /// Keep-alive HTTP connections, each sending back to back.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Distinct (unconnected) receivers the messages go to.
    #[arg(long, default_value_t = 1000)]
    pub receivers: u64,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct FanoutArgs {
    /// Members of the group, all connected.
    #[arg(long, default_value_t = 10_000)]
    pub members: u64,
    /// Messages sent to the group.
    #[arg(long, default_value_t = 200)]
    pub messages: u64,
    /// Concurrent HTTP senders (random members).
    #[arg(long, default_value_t = 32)]
    pub senders: usize,
    /// Target send rate in messages per second (0: as fast as HTTP accepts them). A low rate
    /// measures one message's latency without queueing behind the previous ones.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Make it a super group (one timeline instead of per-member inboxes).
    #[arg(long = "super")]
    #[serde(rename = "super")]
    pub super_group: bool,
    /// Upper bound in seconds on the sending phase.
    #[arg(long, default_value_t = 120.0)]
    pub duration: f64,
    /// Also post this many peer messages per second between two users outside the group, on
    /// a connection of their own, while the fan-out runs (0: none); their HTTP latency is
    /// reported as "unrelated peer send".
    #[arg(long, default_value_t = 0.0)]
    pub probe_rate: f64,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct GroupsArgs {
    /// Number of groups.
    #[arg(long, default_value_t = 200)]
    pub groups: u64,
    /// Members per group (distinct users, all connected).
    #[arg(long, default_value_t = 50)]
    pub size: u64,
    /// Target total send rate in messages per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Messages to send in total.
    #[arg(long, default_value_t = 10_000)]
    pub messages: u64,
    /// Upper bound in seconds on the sending phase.
    #[arg(long, default_value_t = 120.0)]
    pub duration: f64,
    /// Concurrent HTTP senders.
    #[arg(long, default_value_t = 16)]
    pub senders: usize,
    /// Create groups as super groups.
    #[arg(long = "super")]
    #[serde(rename = "super")]
    pub super_group: bool,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ConnectArgs {
    /// Clients connecting and disconnecting concurrently.
    #[arg(long, default_value_t = 50)]
    pub clients: u64,
    /// Seconds to churn for.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ActorsArgs {
    /// Groups to create (each loads its actor on the server).
    #[arg(long, default_value_t = 1_000)]
    pub groups: u64,
    /// Members per group (distinct users; nobody connects).
    #[arg(long, default_value_t = 100)]
    pub size: u64,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct IdleArgs {
    /// Idle WebSocket connections to hold (one user each).
    #[arg(long, default_value_t = 19_000)]
    pub connections: u64,
    /// Seconds to hold them once all are connected.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct SuperGroupArgs {
    /// Members of the super group (built through the API).
    #[arg(long, default_value_t = 1_000_000)]
    pub members: u64,
    /// Members connected, spread evenly over the membership (the first is the master).
    #[arg(long, default_value_t = 10_000)]
    pub online: u64,
    /// Share of the online members on the web (platform 3, `mute` off: online, yet push
    /// receivers by SPEC §6); the others are on iOS.
    #[arg(long, default_value_t = 0.5)]
    pub web_share: f64,
    /// Members per build request (`POST /groups`, then `POST /groups/{gid}/members`).
    #[arg(long, default_value_t = 100_000)]
    pub batch: u64,
    /// Messages sent to the group, by online iOS members.
    #[arg(long, default_value_t = 10)]
    pub messages: u64,
    /// Messages per second over all senders (0: each as soon as the sender's previous one
    /// is answered).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Concurrent HTTP senders (one keep-alive connection each).
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Longest wait, in seconds, for the server's push sink to write the messages' receivers.
    #[arg(long, default_value_t = 60.0)]
    pub push_wait: f64,
    /// After the measured phase, remove this many members (the last ones) in one request,
    /// timed (0: none).
    #[arg(long, default_value_t = 0)]
    pub remove: u64,
}
