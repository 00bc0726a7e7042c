//! The HTTP layer: one route table, extractors, one file per resource.
//!
//! Handlers parse and validate, call the store or the dispatcher, and build the response.
//! Nothing here touches Redis or actors directly.

pub mod auth;
pub mod body;
mod customers;
mod groups;
mod health;
pub mod messages;
mod registration;
mod users;
pub mod ws;

use std::time::Instant;

use std::sync::atomic::Ordering;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{HttpRequest, HttpResponse, Resource, web};

use crate::error::ApiError;
use crate::state::AppState;

/// A resource whose unlisted methods answer 405 in the standard envelope.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// CORS for the endpoints browsers call (web chat widgets): `origins` from
/// `http.cors_origins`, `*` = any.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "OPTIONS"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
        ])
        .max_age(21600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// CORS refusals (actix-cors answers them in plain text) in the standard envelope, with the
/// reason (origin, method or header not allowed).
async fn cors_envelope<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let res = next.call(req).await?;
    let refusal = res
        .response()
        .error()
        .and_then(|e| e.as_error::<actix_cors::CorsError>())
        .map(|e| {
            let status = actix_web::ResponseError::status_code(e);
            ApiError::new(status, "cors_rejected", e.to_string())
        });
    Ok(match refusal {
        Some(err) => res
            .into_response(actix_web::ResponseError::error_response(&err))
            .map_into_right_body(),
        None => res.map_into_left_body(),
    })
}

pub use health::metrics;

/// Every route of the service (`/metrics` only when `with_metrics`: it may have its own
/// listener).
pub fn routes(cfg: &mut web::ServiceConfig, cors_origins: &[String], with_metrics: bool) {
    if with_metrics {
        cfg.service(resource("/metrics").route(web::get().to(health::metrics)));
    }
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| {
        ApiError::bad_request("invalid_query", format!("query string: {e}")).into()
    }))
    .app_data(
        web::PathConfig::default().error_handler(|e, _| {
            ApiError::bad_request("invalid_path", format!("path: {e}")).into()
        }),
    )
    // The router tries routes in order and path patterns with parameters by regex: the
    // busiest static routes come first.
    .service(resource("/messages/peers").route(web::post().to(messages::peers)))
    .service(resource("/messages/groups").route(web::post().to(groups::send)))
    .service(resource("/healthz").route(web::get().to(health::healthz)))
    .service(resource("/readyz").route(web::get().to(health::readyz)))
    .service(resource("/auth/grant").route(web::post().to(users::grant)))
    .service(resource("/auth/tokens/{uid}").route(web::delete().to(users::revoke)))
    .service(
        resource("/users/{uid}")
            .route(web::post().to(users::update))
            .route(web::patch().to(users::update)),
    )
    .service(resource("/users/{uid}/bind").route(web::post().to(users::bind)))
    .service(resource("/users/{uid}/unbind").route(web::post().to(users::unbind)))
    .service(resource("/device/bind").route(web::post().to(users::device_bind)))
    .service(resource("/device/unbind").route(web::post().to(users::device_unbind)))
    .service(resource("/ws").route(web::get().to(ws::connect)))
    .service(
        resource("/messages")
            .wrap(cors(cors_origins))
            .wrap(actix_web::middleware::from_fn(cors_envelope))
            .route(web::get().to(messages::history)),
    )
    .service(
        resource("/auth/customer")
            .wrap(cors(cors_origins))
            .wrap(actix_web::middleware::from_fn(cors_envelope))
            .route(web::post().to(registration::register)),
    )
    .service(
        resource("/auth/customers/{uid}/block").route(web::delete().to(registration::lift_block)),
    )
    .service(
        resource("/supporters")
            .wrap(cors(cors_origins))
            .wrap(actix_web::middleware::from_fn(cors_envelope))
            .route(web::get().to(customers::my_supporter)),
    )
    .service(
        resource("/stores/{store_id}/supporters")
            .route(web::post().to(customers::add_supporter))
            .route(web::get().to(customers::list_supporters)),
    )
    .service(
        resource("/stores/{store_id}/supporters/{uid}")
            .route(web::delete().to(customers::remove_supporter)),
    )
    .service(resource("/messages/customers").route(web::post().to(customers::send)))
    .service(resource("/messages/offline").route(web::get().to(messages::offline)))
    .service(resource("/messages/systems").route(web::post().to(messages::systems)))
    .service(resource("/messages/notifications").route(web::post().to(messages::notifications)))
    .service(resource("/messages/groups/notifications").route(web::post().to(groups::notify)))
    .service(resource("/groups").route(web::post().to(groups::create)))
    .service(
        resource("/groups/{gid}")
            .route(web::get().to(groups::info))
            .route(web::patch().to(groups::rename))
            .route(web::delete().to(groups::disband)),
    )
    .service(resource("/groups/{gid}/upgrade").route(web::post().to(groups::upgrade)))
    .service(
        resource("/groups/{gid}/members")
            .route(web::post().to(groups::add_members))
            .route(web::delete().to(groups::remove_members)),
    )
    .service(
        resource("/groups/{gid}/members/{mid}")
            .route(web::delete().to(groups::leave))
            .route(web::patch().to(groups::update_member)),
    );
    for path in CUSTOMER_REGISTER {
        cfg.service(
            resource(path)
                .wrap(cors(cors_origins))
                .wrap(actix_web::middleware::from_fn(cors_envelope))
                .route(web::post().to(registration::register_with_key)),
        );
    }
}

async fn method_not_allowed(req: HttpRequest) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
}

/// Default service: any unknown path.
pub async fn not_found(req: HttpRequest) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!("no route for {} {}", req.method(), req.path()),
    )
}

/// Responder for `ApiError` returned directly by a handler.
impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

/// The original's customer registration, which takes the app key (`Basic`, but not an app
/// server's credentials: every client app carries it).
const CUSTOMER_REGISTER: [&str; 2] = ["/customer/register", "/v2/customer/register"];

/// Whether a request counts against the app servers' in-flight budget: it presents `Basic`
/// credentials on a route that checks them. Presenting them gains a caller without the secret
/// nothing: those routes check credentials before they read a body, and answer 401 at once.
/// The customer registrations read a body whatever `Authorization` says, so they never count.
fn app_server_budget(req: &ServiceRequest) -> bool {
    let path = req.path();
    auth::credentials(req.headers(), "Basic").is_some()
        && path != "/auth/customer"
        && !CUSTOMER_REGISTER.contains(&path)
}

/// Refuses (503 `overloaded`) past `limits.inflight_requests` app-server requests, or past
/// `limits.inflight_public` other requests, at once: two budgets, so clients and unauthenticated
/// callers (whose bodies may trickle in for up to `limits.body_timeout_secs`) can never take
/// the slots app servers need. Health checks and metrics are exempt so the service stays
/// observable under overload.
pub async fn limit_inflight<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    struct Slot(web::Data<AppState>, bool);
    impl Slot {
        fn counter(&self) -> &std::sync::atomic::AtomicUsize {
            if self.1 {
                &self.0.inflight
            } else {
                &self.0.inflight_public
            }
        }
    }
    impl Drop for Slot {
        fn drop(&mut self) {
            self.counter().fetch_sub(1, Ordering::Relaxed);
        }
    }
    let exempt = matches!(req.path(), "/healthz" | "/readyz" | "/metrics");
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state.filter(|_| !exempt) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let server = app_server_budget(&req);
    let limits = &state.settings.limits;
    let limit = if server {
        limits.inflight_requests
    } else {
        limits.inflight_public
    };
    let slot = Slot(state.clone(), server);
    let now = slot.counter().fetch_add(1, Ordering::Relaxed) + 1;
    if now > limit {
        let budget = if server { "server" } else { "public" };
        metrics::counter!("imd_http_overloaded_total", "budget" => budget).increment(1);
        let err = ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in progress; retry shortly",
        );
        let err = ApiError {
            retry_after: Some(1),
            ..err
        };
        let res = actix_web::ResponseError::error_response(&err);
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Request metrics and the one log line per request (path only: query strings may hold tokens).
pub async fn observe<B: MessageBody>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    let mut res = next.call(req).await?;
    let elapsed = start.elapsed();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16();
    let closing = res
        .request()
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.shutting_down.load(Ordering::Relaxed));
    if closing {
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    metrics::counter!("imd_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("imd_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    tracing::info!(%method, path, status, micros = elapsed.as_micros() as u64, "request");
    Ok(res)
}
