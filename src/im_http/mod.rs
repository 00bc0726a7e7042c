//! The original im server's own HTTP API (reference §6: `/post_peer_message`,
//! `/load_latest_message`, …) on a listener of its own, `im_http.listen`, off by default, so a
//! deployment that keeps its own gobelieve_api can replace just the im server.
//!
//! Like the original it has **no authentication** and answers any HTTP method: bind it to a
//! private address. Unlike the original, every send takes the REST API's path (membership,
//! mute, the app's send budget, idempotency by `Idempotency-Key`, push), a bad parameter is a
//! 4xx naming it, and a failed store is a 503, never a silent 200. Successes are
//! `{"data":…}`, failures the REST API's error envelope; requests are logged and counted as the
//! REST API's are (`imd_http_requests_total{route}`). These routes are not in the REST
//! API's route table or OpenAPI document: README "The im server's HTTP API" lists them.

mod json_sends;
mod params;
mod read;
mod send;

use std::net::SocketAddr;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::state::AppState;

/// `{"data": …}`, the original im server's success shape.
fn data(v: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": v }))
}

/// Every route, any method (as the original's `http.HandleFunc`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/post_peer_message", web::route().to(send::peer))
        .route("/post_group_message", web::route().to(send::group))
        .route("/post_notification", web::route().to(send::notification))
        .route("/post_room_message", web::route().to(send::room))
        .route("/post_realtime_message", web::route().to(send::realtime))
        .route(
            "/post_group_notification",
            web::route().to(json_sends::group_notification),
        )
        .route("/post_system_message", web::route().to(json_sends::system))
        .route(
            "/post_customer_message",
            web::route().to(json_sends::customer),
        )
        .route("/get_offline_count", web::route().to(read::offline_count))
        .route("/load_latest_message", web::route().to(read::latest))
        .route("/load_history_message", web::route().to(read::history))
        .route("/summary", web::route().to(read::summary));
}

/// Binds `at` and builds the server with `workers` threads (started by the caller); its
/// bound address.
/// Marks requests of this listener: its callers are the deployment's own servers (its
/// gobelieve_api), so they take the app servers' in-flight budget (`limits.inflight_requests`).
pub(crate) struct Listener;

pub fn server(
    state: web::Data<AppState>,
    at: &str,
    workers: usize,
) -> anyhow::Result<(Server, SocketAddr)> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(Listener)
            .wrap(actix_web::middleware::from_fn(crate::api::limit_inflight))
            .wrap(actix_web::middleware::from_fn(crate::api::observe))
            .configure(routes)
            .default_service(web::to(crate::api::not_found))
    })
    .workers(workers)
    .disable_signals()
    .bind(at)
    .map_err(|e| anyhow::anyhow!("cannot listen on im_http.listen {at}: {e}"))?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("im_http.listen {at}: no address bound"))?;
    tracing::info!("im HTTP API (no authentication) on {bound}");
    Ok((server.run(), bound))
}
