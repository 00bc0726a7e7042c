//! Typed settings: `config/default.toml` (compiled in), then an optional `--config` file, then
//! `IMD_<SECTION>__<KEY>` environment variables.
//!
//! Every struct denies unknown fields so a misspelt key is an error instead of a silently
//! ignored setting. `Settings::load` turns any problem into one readable line.

use std::net::SocketAddr;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use ipnet::IpNet;
use serde::Deserialize;

/// The committed defaults, so the binary runs from any working directory.
const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub im_http: ImHttpSettings,
    pub store: StoreSettings,
    #[serde(default)]
    pub node: NodeSettings,
    pub push: PushSettings,
    pub log: LogSettings,
    pub limits: Limits,
    pub customers: CustomerSettings,
    pub media: MediaSettings,
    pub binary: BinarySettings,
    #[serde(default)]
    pub apps: Vec<AppSettings>,
}

/// The GoBelieve binary protocol's TCP listener (README "GoBelieve binary protocol").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinarySettings {
    /// Address of the TCP listener (the original's port is 23000); empty = off.
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSettings {
    /// Customer uids start above this.
    pub uid_base: u64,
    /// POST /auth/customer per client IP per minute; 0 = unlimited.
    pub register_per_minute: u32,
    /// Latest `expires` a signed registration may name, seconds from now.
    pub max_signature_ttl_secs: u64,
    /// The help-desk app (the original's `kefu_appid`): its users may exchange customer
    /// messages with the users of every other app. 0 = none (customer messages stay within
    /// one app).
    #[serde(default)]
    pub help_desk_app: u64,
}

impl CustomerSettings {
    /// Customer uids are `uid_base + n`, n ≥ 1; the app's own users are below.
    pub fn is_customer(&self, uid: crate::domain::Uid) -> bool {
        uid.0 > self.uid_base
    }
}

/// Uploaded media (README "Media").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// The local storage directory.
    pub dir: std::path::PathBuf,
    /// Largest upload, bytes.
    pub max_upload: usize,
    /// Uploads per user per minute; 0 = unlimited.
    pub uploads_per_minute: u32,
    /// ffmpeg program name (looked up in PATH) or path; empty = none.
    pub ffmpeg: String,
    /// Base URL of `src_url`; empty = from the request.
    pub public_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// 0 = one per core.
    pub workers: usize,
    /// Peers whose forwarding headers are believed (IPs or CIDRs).
    #[serde(deserialize_with = "ip_nets")]
    pub trusted_proxies: Vec<IpNet>,
    pub shutdown_timeout_secs: u64,
    /// Allowed CORS origins of the browser-facing endpoints; "*" = any.
    pub cors_origins: Vec<String>,
    /// A separate address for GET /metrics; empty = the main listener.
    pub metrics_listen: String,
    /// Nice value (0–19) of the connection threads while their delivery is heavy, below the
    /// request workers' 0 (`dispatch/pace.rs`); at the process's own nice while it is light.
    pub connection_nice: u8,
}

/// The original im server's HTTP API on its own listener (README "The im server's HTTP API").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImHttpSettings {
    /// Address to serve it on; empty = off. No authentication: a private address only.
    pub listen: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub kind: StoreKind,
    pub redis_url: String,
    pub pool_size: u32,
    pub timeout_ms: u64,
}

/// This node among the nodes sharing one Redis (README "Running several nodes").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// The node's name (`serve --node-id`); empty = random.
    pub id: String,
    /// Where the node's pub/sub subscriber connects; empty = `store.redis_url`.
    #[serde(default)]
    pub pubsub_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushSinkKind {
    Redis,
    Webhook,
    Log,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    pub sink: PushSinkKind,
    pub redis_url: String,
    pub webhook_url: String,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub queue_capacity: usize,
    pub webhook_max_attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// SPEC §8 limits plus the WebSocket and actor knobs that bound memory and time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub request_body: usize,
    /// Body of `POST /groups` and the member endpoints (big member lists).
    pub members_body: usize,
    /// A membership change of more members than this is announced with one summary.
    pub member_notification_threshold: usize,
    pub content: usize,
    pub normal_group_members: usize,
    pub super_group_members: usize,
    pub inbox_len: u64,
    pub outbound_queue: usize,
    pub ws_idle_timeout_secs: u64,
    /// Idle limit of binary-protocol connections: SDKs ping only every 180 s.
    pub binary_idle_timeout_secs: u64,
    pub ws_ping_interval_secs: u64,
    pub ws_max_frame: usize,
    pub ws_max_bad_frames: u32,
    pub sync_batch: usize,
    pub idempotency_ttl_secs: u64,
    pub actor_idle_secs: u64,
    pub ws_connections_per_user: usize,
    pub ws_max_connections: usize,
    pub inflight_requests: usize,
    pub inflight_public: usize,
    pub body_timeout_secs: u64,
    pub app_sends_per_sec: u32,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    pub id: u64,
    pub name: String,
    pub key: String,
    pub secret: String,
    #[serde(default)]
    pub store_id: u64,
    #[serde(default, deserialize_with = "ip_nets")]
    pub allowed_ips: Vec<IpNet>,
    /// Sends per second; `None` = `limits.app_sends_per_sec`.
    #[serde(default)]
    pub sends_per_sec: Option<u32>,
    /// How customers of this app's help desk prove who they are.
    #[serde(default)]
    pub customer_registration: CustomerRegistration,
}

/// How a customer registration (`POST /auth/customer`, `POST /customer/register`) is trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerRegistration {
    /// The app server vouches for the customer id: the registration carries `expires` and
    /// `signature` = hex HMAC-SHA256 of `customer:<appid>:<customer_id>:<expires>` keyed with
    /// the app secret.
    #[default]
    Signed,
    /// The original's behaviour: the customer id alone is the credential, so it must be an
    /// unguessable random value.
    Unsigned,
}

/// Secrets stay out of debug output (and so out of logs).
impl std::fmt::Debug for AppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSettings")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("store_id", &self.store_id)
            .field("allowed_ips", &self.allowed_ips)
            .field("customer_registration", &self.customer_registration)
            .finish_non_exhaustive()
    }
}

/// A list of networks where a bare address (`10.0.0.1`, `::1`) stands for itself (/32, /128).
fn ip_nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{s:?} is not an IP address or a CIDR network (e.g. 10.0.0.1 or 10.0.0.0/8)"
                    ))
                })
        })
        .collect()
}

/// A configuration problem, phrased for one log line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Settings {
    /// Defaults, then `path` (which must exist when given), then `IMD_*` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = Config::builder();
        match path {
            None => builder = builder.add_source(File::from_str(DEFAULTS, FileFormat::Toml)),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                // A file that lists its own apps replaces the demo app; merging element-wise
                // into it could leave the demo's public secret on a real app.
                let base = if text.contains("[[apps]]") {
                    strip_apps(DEFAULTS)
                } else {
                    DEFAULTS.to_string()
                };
                builder = builder
                    .add_source(File::from_str(&base, FileFormat::Toml))
                    .add_source(File::from_str(&text, FileFormat::Toml));
            }
        }
        // Only IMD_<SECTION>__<KEY> are settings; other IMD_* variables (IMD_TEST_REDIS_URL,
        // IMD_CHAOS_SCALE, …) belong to tools and must not be mistaken for unknown keys.
        let settings_env: std::collections::HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| {
                k.strip_prefix("IMD_")
                    .is_some_and(|rest| rest.contains("__"))
            })
            .collect();
        let builder = builder.add_source(
            Environment::with_prefix("IMD")
                .source(Some(settings_env))
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("http.trusted_proxies")
                .with_list_parse_key("http.cors_origins"),
        );
        let settings: Settings = builder
            .build()
            .map_err(cfg_err)?
            .try_deserialize()
            .map_err(cfg_err)?;
        settings.validate()?;
        Ok(settings)
    }

    /// `load`, with `serve --node-id` over `node.id`.
    pub fn load_with_node(
        path: Option<&Path>,
        node_id: Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut settings = Self::load(path)?;
        if let Some(id) = node_id {
            settings.node.id = id;
            settings.validate()?;
        }
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        self.validate_store_and_push()?;
        self.validate_limits()?;
        if !crate::telemetry::valid_level(&self.log.level) {
            return fail(format!(
                "log.level {:?} is not a valid level or filter",
                self.log.level
            ));
        }
        let binary = &self.binary.listen;
        if !binary.is_empty() && binary.parse::<SocketAddr>().is_err() {
            return fail(format!(
                "binary.listen must be empty (off) or an address like 0.0.0.0:23000, got {binary:?}"
            ));
        }
        if !self.http.metrics_listen.is_empty()
            && self.http.metrics_listen.parse::<SocketAddr>().is_err()
        {
            return fail(format!(
                "http.metrics_listen {:?} is not an ip:port",
                self.http.metrics_listen
            ));
        }
        if self.http.connection_nice > 19 {
            return fail(format!(
                "http.connection_nice must be 0 to 19 (a nice value), got {}",
                self.http.connection_nice
            ));
        }
        self.validate_media()?;
        self.validate_node()?;
        self.validate_apps()?;
        // Redis computes base + counter in Lua numbers (doubles): stay where they are exact.
        if self.customers.uid_base > (1 << 53) - (1 << 32) {
            return fail(
                "customers.uid_base must be at most 2^53 - 2^32 (customer uids must stay exact)"
                    .into(),
            );
        }
        let desk = self.customers.help_desk_app;
        if desk != 0 && !self.apps.iter().any(|a| a.id == desk) {
            return fail(format!(
                "customers.help_desk_app {desk} is not one of the [[apps]]"
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// `[store]` and `[push]`: pool, timeout, URLs, batch sizes.
    fn validate_store_and_push(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.store.pool_size == 0 {
            return fail("store.pool_size must be at least 1".into());
        }
        if self.store.timeout_ms == 0 {
            return fail("store.timeout_ms must be at least 1".into());
        }
        let bad_redis_url = |url: &str| redis::Client::open(url).is_err();
        if self.store.kind == StoreKind::Redis && bad_redis_url(&self.store.redis_url) {
            return fail(format!(
                "store.redis_url must be a redis://[:password@]host[:port][/db] URL, got {:?}",
                redacted(&self.store.redis_url)
            ));
        }
        if self.push.sink == PushSinkKind::Redis
            && !self.push.redis_url.is_empty()
            && bad_redis_url(&self.push.redis_url)
        {
            return fail(format!(
                "push.redis_url must be a redis://[:password@]host[:port][/db] URL or empty (the store's), got {:?}",
                redacted(&self.push.redis_url)
            ));
        }
        if self.push.sink == PushSinkKind::Webhook && !self.push.webhook_url.starts_with("http") {
            return fail(
                "push.webhook_url must be an http(s) URL when push.sink = \"webhook\"".into(),
            );
        }
        if self.push.batch_size == 0 || self.push.queue_capacity == 0 {
            return fail("push.batch_size and push.queue_capacity must be at least 1".into());
        }
        Ok(())
    }

    /// `[limits]`: every bound at least 1, the binary idle limit above the SDKs' ping.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        let l = &self.limits;
        for (name, v) in [
            ("limits.request_body", l.request_body),
            ("limits.content", l.content),
            ("limits.normal_group_members", l.normal_group_members),
            ("limits.super_group_members", l.super_group_members),
            ("limits.outbound_queue", l.outbound_queue),
            ("limits.ws_max_frame", l.ws_max_frame),
            ("limits.sync_batch", l.sync_batch),
            ("limits.ws_connections_per_user", l.ws_connections_per_user),
            ("limits.ws_max_connections", l.ws_max_connections),
            ("limits.inflight_requests", l.inflight_requests),
            ("limits.inflight_public", l.inflight_public),
            ("limits.body_timeout_secs", l.body_timeout_secs as usize),
        ] {
            if v == 0 {
                return fail(format!("{name} must be at least 1"));
            }
        }
        if l.idempotency_ttl_secs == 0 {
            return fail("limits.idempotency_ttl_secs must be at least 1".into());
        }
        if l.binary_idle_timeout_secs < 190 {
            return fail(
                "limits.binary_idle_timeout_secs must be at least 190: GoBelieve SDKs ping every 180 s"
                    .into(),
            );
        }
        if l.inbox_len == 0 || l.ws_idle_timeout_secs == 0 || l.ws_ping_interval_secs == 0 {
            return fail(
                "limits.inbox_len, limits.ws_idle_timeout_secs and limits.ws_ping_interval_secs must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// `[[apps]]`: ids positive and unique, store ids unique, key and secret set.
    fn validate_apps(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        let (mut seen, mut stores) = (
            std::collections::HashSet::new(),
            std::collections::HashSet::new(),
        );
        for app in &self.apps {
            if app.id == 0 || app.id > i64::MAX as u64 {
                return fail(format!(
                    "apps: id {} must be a positive 63-bit integer",
                    app.id
                ));
            }
            if !seen.insert(app.id) {
                return fail(format!("apps: id {} is listed twice", app.id));
            }
            // Supporters are kept per store id: two apps sharing one would share a help desk.
            if app.store_id != 0 && !stores.insert(app.store_id) {
                return fail(format!(
                    "apps: store_id {} belongs to two apps; each help desk has one app",
                    app.store_id
                ));
            }
            if app.secret.is_empty() || app.key.is_empty() {
                return fail(format!(
                    "apps: app {} needs a non-empty key and secret",
                    app.id
                ));
            }
        }
        Ok(())
    }

    fn validate_node(&self) -> Result<(), ConfigError> {
        let id = &self.node.id;
        if id.is_empty() {
            return Ok(());
        }
        if self.store.kind == StoreKind::Memory {
            return Err(ConfigError(format!(
                "node.id {id:?} is set but store.kind is \"memory\": several nodes share one Redis, set store.kind = \"redis\""
            )));
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if id.len() > 40 || !id.chars().all(ok) {
            return Err(ConfigError(format!(
                "node.id must be at most 40 letters, digits, '-', '_' or '.', got {id:?}"
            )));
        }
        Ok(())
    }

    fn validate_media(&self) -> Result<(), ConfigError> {
        let m = &self.media;
        if m.max_upload == 0 {
            return Err(ConfigError("media.max_upload must be at least 1".into()));
        }
        let url = &m.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError(format!(
                "media.public_url must be an http(s) URL or empty, got {url:?}"
            )));
        }
        if m.dir.as_os_str().is_empty() {
            return Err(ConfigError("media.dir must name a directory".into()));
        }
        Ok(())
    }
}

fn cfg_err(e: config::ConfigError) -> ConfigError {
    ConfigError(e.to_string())
}

/// The defaults without their `[[apps]]` tables (everything from the first one on).
fn strip_apps(text: &str) -> String {
    match text.find("\n[[apps]]") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// A URL without its user info (password), for logs and error messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
