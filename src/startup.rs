//! Builds the shared state, binds the listener (port 0 allowed) and runs the HTTP server.
//! Shared by the binary and the tests, so tests exercise exactly what production runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_http::{HttpService, KeepAlive};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_factory, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::api;
use crate::apps::Apps;
use crate::config::{Settings, redacted};
use crate::dispatch::Dispatcher;
use crate::domain::AppId;
use crate::push::PushQueue;
use crate::ratelimit::RateLimiter;
use crate::state::AppState;
use crate::store::Store;

pub struct Application {
    addr: SocketAddr,
    /// The GoBelieve binary protocol's TCP listener, when `binary.listen` is set.
    binary_addr: Option<SocketAddr>,
    server: Server,
    /// The separate listeners (`/metrics` when `http.metrics_listen` is set, the im HTTP API
    /// when `im_http.listen` is), started and stopped with the main one.
    side: Vec<Server>,
    metrics_addr: Option<SocketAddr>,
    im_http_addr: Option<SocketAddr>,
    state: web::Data<AppState>,
}

impl Application {
    /// Opens the store and binds `http.listen`; the server starts when `run*` is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let _ = crate::telemetry::metrics();
        let settings = Arc::new(settings);
        let store = open_store(&settings).await?;
        if settings.apps.is_empty() {
            tracing::warn!("no [[apps]] configured: every authenticated request will be refused");
        }
        let listener = std::net::TcpListener::bind(settings.http.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.http.listen))?;
        let addr = listener.local_addr()?;
        let workers = match settings.http.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let state = app_state(&settings, store, workers).await?;
        let binary = bind_binary(&settings.binary.listen)?;
        let binary_addr = binary.as_ref().and_then(|l| l.local_addr().ok());
        let server = main_server(&settings, listener, workers, state.clone())?;
        let server = match binary {
            Some(listener) => listen_binary(server, listener, state.clone())?,
            None => server,
        }
        .run();
        tracing::info!("listening on {addr}");
        if let Some(at) = binary_addr {
            tracing::info!("GoBelieve binary protocol on {at}");
        }
        let (metrics, metrics_addr) = match settings.http.metrics_listen.as_str() {
            "" => (None, None),
            at => metrics_server(at).map(|(s, a)| (Some(s), a))?,
        };
        let mut side: Vec<Server> = metrics.into_iter().collect();
        let im_http_addr = match settings.im_http.listen.as_str() {
            "" => None,
            at => {
                let (server, bound) = crate::im_http::server(state.clone(), at, workers)?;
                side.push(server);
                Some(bound)
            }
        };
        Ok(Application {
            addr,
            binary_addr,
            server,
            side,
            metrics_addr,
            im_http_addr,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the binary protocol's TCP listener is, when `binary.listen` is set.
    pub fn binary_addr(&self) -> Option<SocketAddr> {
        self.binary_addr
    }

    /// Where `/metrics` is served when it has its own listener.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the im HTTP API is served, when `im_http.listen` is set.
    pub fn im_http_addr(&self) -> Option<SocketAddr> {
        self.im_http_addr
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped through its handle.
    pub async fn run(self) -> std::io::Result<()> {
        let side = start_side(self.side);
        let r = self.server.await;
        stop_side(side).await;
        r
    }

    /// Serves until SIGINT/SIGTERM, then stops accepting, lets in-flight requests finish and
    /// exits.
    pub async fn run_until_signal(self, signal: ShutdownSignal) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let side = start_side(self.side);
        let server = actix_web::rt::spawn(self.server);
        let signal = signal.recv().await;
        tracing::info!(
            signal,
            "shutting down: no new connections, finishing in-flight requests"
        );
        self.state.shutting_down.store(true, Ordering::SeqCst);
        handle.pause().await;
        let grace = Duration::from_secs(self.state.settings.http.shutdown_timeout_secs);
        self.state.dispatcher.close_connections().await;
        let stop = handle.stop(true);
        if tokio::time::timeout(grace + Duration::from_secs(5), stop)
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; exiting");
        }
        // Closing connections end after their close handshake (at most a second each).
        let closing = grace.min(Duration::from_secs(2));
        self.state.dispatcher.stop_connections(closing).await;
        self.state.dispatcher.flush_push(grace).await;
        self.state.store.leave().await;
        let _ = server.await;
        stop_side(side).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the store and says in the log what it is and whether it answers.
async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::open(&settings.store, settings.limits.inbox_len).await?;
    match store.kind() {
        "memory" => tracing::warn!(
            "store: memory — nothing (tokens, groups, messages) survives a restart; \
             set store.kind = \"redis\" for production"
        ),
        kind => match store.ping().await {
            Ok(()) => {
                tracing::info!(store = kind, url = %redacted(&settings.store.redis_url), "store: redis reachable")
            }
            Err(e) => {
                tracing::error!(store = kind, error = %e, "store: redis unreachable at start-up; requests get 503 until it answers")
            }
        },
    }
    Ok(store)
}

/// What every request handler shares: the dispatcher (joined to the other nodes when the store
/// is Redis), the push queue, media, apps and limits.
async fn app_state(
    settings: &Arc<Settings>,
    store: Store,
    workers: usize,
) -> anyhow::Result<web::Data<AppState>> {
    let push = PushQueue::start(&settings.push, store.clone(), &settings.store.redis_url);
    tracing::info!(sink = ?settings.push.sink, "push sink");
    let dispatcher = Dispatcher::new(store.clone(), push, settings.limits.clone(), workers);
    dispatcher.set_connection_nice(settings.http.connection_nice);
    if settings.customers.help_desk_app != 0 {
        let apps = settings.apps.iter().map(|a| AppId(a.id));
        dispatcher.set_help_desk(AppId(settings.customers.help_desk_app), apps);
    }
    if store.kind() == "redis" {
        let node = node_name(&settings.node.id);
        dispatcher.join_cluster(&node, &settings.node.pubsub_url)?;
        store.announce_node().await;
    }
    let media = crate::media::Media::new(&settings.media, workers);
    media.log_startup();
    Ok(web::Data::new(AppState {
        apps: Apps::new(&settings.apps, settings.limits.app_sends_per_sec),
        store,
        dispatcher,
        media,
        register_limiter: RateLimiter::per_minute(settings.customers.register_per_minute),
        inflight: Default::default(),
        inflight_public: Default::default(),
        shutting_down: Default::default(),
        settings: settings.clone(),
    }))
}

/// The main listener: every route, plus WebSocket upgrades handed to `api::ws`. actix-web's
/// HttpServer cannot take an upgrade hook, so the server is assembled from its parts.
fn main_server(
    settings: &Settings,
    listener: std::net::TcpListener,
    workers: usize,
    app_state: web::Data<AppState>,
) -> std::io::Result<actix_server::ServerBuilder> {
    let cors_origins = settings.http.cors_origins.clone();
    let metrics_apart = !settings.http.metrics_listen.is_empty();
    actix_server::Server::build()
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(settings.http.shutdown_timeout_secs)
        .backlog(4096)
        .max_concurrent_connections(25_000)
        .listen("im-dispatcher", listener, move || {
            let origins = cors_origins.clone();
            let upgrade_state = app_state.clone();
            let app = App::new()
                .app_data(app_state.clone())
                .wrap(from_fn(api::limit_inflight))
                .wrap(from_fn(api::observe))
                .configure(move |cfg| api::routes(cfg, &origins, !metrics_apart))
                .default_service(web::to(api::not_found))
                .into_factory()
                .map_err(|e| e.error_response());
            HttpService::build()
                .tcp_nodelay(true)
                .keep_alive(KeepAlive::Timeout(Duration::from_secs(5)))
                .client_request_timeout(Duration::from_secs(5))
                .upgrade(fn_factory(move || {
                    let state = upgrade_state.clone();
                    async move {
                        Ok::<_, ()>(fn_service(move |(req, framed)| {
                            api::ws::upgrade(state.clone(), req, framed)
                        }))
                    }
                }))
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })
}

/// `GET /metrics` alone on `at` (`http.metrics_listen`), started with the main server.
fn metrics_server(at: &str) -> anyhow::Result<(Server, Option<SocketAddr>)> {
    let server = HttpServer::new(|| {
        App::new()
            .route("/metrics", web::get().to(api::metrics))
            .default_service(web::to(api::not_found))
    })
    .workers(1)
    .disable_signals()
    .bind(at)
    .map_err(|e| anyhow::anyhow!("cannot listen on http.metrics_listen {at}: {e}"))?;
    let bound = server.addrs().first().copied();
    tracing::info!(
        "metrics on {}",
        bound.map_or(at.to_string(), |a| a.to_string())
    );
    Ok((server.run(), bound))
}

/// The node's name: the configured one (or `node`) with a random incarnation, so a restarted
/// process never inherits what Redis still says about its previous life.
fn node_name(id: &str) -> String {
    let mut b = [0u8; 3];
    if getrandom::fill(&mut b).is_err() {
        b = (crate::domain::now_millis() as u32).to_le_bytes()[..3]
            .try_into()
            .unwrap_or([0; 3]);
    }
    let base = if id.is_empty() { "node" } else { id };
    format!("{base}-{:02x}{:02x}{:02x}", b[0], b[1], b[2])
}

/// The separate listeners, running.
type Running = Vec<(
    ServerHandle,
    actix_web::rt::task::JoinHandle<std::io::Result<()>>,
)>;

fn start_side(side: Vec<Server>) -> Running {
    side.into_iter()
        .map(|s| (s.handle(), actix_web::rt::spawn(s)))
        .collect()
}

async fn stop_side(running: Running) {
    for (handle, task) in running {
        handle.stop(false).await;
        let _ = task.await;
    }
}

/// The binary protocol's TCP listener (`binary.listen`; empty: none).
fn bind_binary(at: &str) -> anyhow::Result<Option<std::net::TcpListener>> {
    if at.is_empty() {
        return Ok(None);
    }
    std::net::TcpListener::bind(at)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("cannot listen on binary.listen {at}: {e}"))
}

/// Serves the binary protocol on `listener`: accepted by the HTTP server's workers, each
/// connection then runs on a connection thread beside its delivery hub (`Dispatcher::adopt`).
fn listen_binary(
    server: actix_server::ServerBuilder,
    listener: std::net::TcpListener,
    state: web::Data<AppState>,
) -> std::io::Result<actix_server::ServerBuilder> {
    server.listen("gobelieve-binary", listener, move || {
        let state = state.clone();
        fn_service(move |io: tokio::net::TcpStream| {
            api::gobelieve::serve_tcp(state.clone(), io);
            async { Ok::<_, ()>(()) }
        })
    })
}

/// SIGINT/SIGTERM, listened for from the moment this is created (before anything is logged
/// as listening, so an early signal is never the default "terminate at once").
pub struct ShutdownSignal {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    pub fn install() -> std::io::Result<ShutdownSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignal {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignal {})
    }

    async fn recv(mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => "SIGINT",
                _ = self.term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
