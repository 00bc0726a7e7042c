//! The HTTP layer: one route table, extractors, one file per resource.
//!
//! Handlers parse and validate, call the store or the dispatcher, and build the response.
//! Nothing here touches Redis or actors directly.

/// `on!(POST, users::grant)`: a method of a route-table entry and its handler.
macro_rules! on {
    ($method:ident, $handler:path) => {
        (
            actix_web::http::Method::$method,
            (|| actix_web::web::method(actix_web::http::Method::$method).to($handler))
                as $crate::api::MakeRoute,
        )
    };
}

pub mod auth;
pub mod body;
mod customers;
pub mod gobelieve;
mod groups;
mod health;
mod media;
pub mod messages;
pub mod openapi;
mod registration;
mod rooms;
mod users;
pub mod ws;

use std::time::Instant;

use std::sync::atomic::Ordering;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
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

/// Builds one route (method guard + handler); a plain `fn` so an aliased resource can build
/// its own copy.
pub type MakeRoute = fn() -> actix_web::Route;

/// One resource of the route table: its path, the aliases served by the same handlers (the
/// original mounted its client endpoints a second time under `/v2`), and its methods.
pub struct Entry {
    pub path: &'static str,
    pub aliases: &'static [&'static str],
    pub methods: Vec<(Method, MakeRoute)>,
    /// Browser-facing: wrapped in CORS (`http.cors_origins`).
    pub cors: bool,
}

impl Entry {
    fn new(path: &'static str, methods: Vec<(Method, MakeRoute)>) -> Entry {
        Entry {
            path,
            aliases: &[],
            methods,
            cors: false,
        }
    }

    fn alias(self, aliases: &'static [&'static str]) -> Entry {
        Entry { aliases, ..self }
    }

    fn cors(self) -> Entry {
        Entry { cors: true, ..self }
    }

    /// The path and its aliases.
    pub fn paths(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.path).chain(self.aliases.iter().copied())
    }
}

/// Every route of the service, as data: registered by `routes`, listed by `route_list` (the
/// OpenAPI completeness test walks it, so a route added here without an `#[utoipa::path]`
/// annotation listed in `openapi::ApiDoc` fails the tests). `/metrics` only when
/// `with_metrics`: it may have its own listener.
pub fn table(with_metrics: bool) -> Vec<Entry> {
    let mut t = Vec::with_capacity(48);
    if with_metrics {
        t.push(Entry::new("/metrics", vec![on!(GET, health::metrics)]));
    }
    // The router tries routes in order and path patterns with parameters by regex: the
    // busiest static routes come first.
    t.extend([
        Entry::new("/messages/peers", vec![on!(POST, messages::peers)]),
        Entry::new("/messages/groups", vec![on!(POST, groups::send)]),
        Entry::new("/healthz", vec![on!(GET, health::healthz)]),
        Entry::new("/readyz", vec![on!(GET, health::readyz)]),
        Entry::new("/openapi.json", vec![on!(GET, openapi::serve)]),
        Entry::new("/auth/grant", vec![on!(POST, users::grant)]),
        Entry::new("/auth/tokens/{uid}", vec![on!(DELETE, users::revoke)]),
        Entry::new(
            "/users/{uid}",
            vec![on!(POST, users::update), on!(PATCH, users::update)],
        ),
        Entry::new("/users/{uid}/bind", vec![on!(POST, users::bind)]),
        Entry::new("/users/{uid}/unbind", vec![on!(POST, users::unbind)]),
        Entry::new("/device/bind", vec![on!(POST, users::device_bind)]).alias(&["/v2/device/bind"]),
        Entry::new("/device/unbind", vec![on!(POST, users::device_unbind)])
            .alias(&["/v2/device/unbind"]),
        Entry::new("/ws", vec![on!(GET, ws::connect)]),
        Entry::new("/messages", vec![on!(GET, messages::history)]).cors(),
        Entry::new("/messages/dequeue", vec![on!(POST, messages::dequeue)]).cors(),
        Entry::new("/auth/customer", vec![on!(POST, registration::register)]).cors(),
        Entry::new(
            "/auth/customers/{uid}/block",
            vec![on!(DELETE, registration::lift_block)],
        ),
        // Also in CUSTOMER_REGISTER (never an app server's request, whatever it carries).
        Entry::new(
            "/customer/register",
            vec![on!(POST, registration::register_with_key)],
        )
        .alias(&["/v2/customer/register"])
        .cors(),
        Entry::new("/supporters", vec![on!(GET, customers::my_supporter)])
            .alias(&["/v2/supporters"])
            .cors(),
        Entry::new(
            "/stores/{store_id}/supporters",
            vec![
                on!(POST, customers::add_supporter),
                on!(GET, customers::list_supporters),
            ],
        ),
        Entry::new(
            "/stores/{store_id}/supporters/{uid}",
            vec![on!(DELETE, customers::remove_supporter)],
        ),
        Entry::new("/messages/customers", vec![on!(POST, customers::send)]),
        Entry::new("/messages/offline", vec![on!(GET, messages::offline)]),
        Entry::new("/messages/systems", vec![on!(POST, messages::systems)]),
        Entry::new("/messages/rooms", vec![on!(POST, rooms::send)]),
        Entry::new(
            "/messages/notifications",
            vec![on!(POST, messages::notifications)],
        ),
        Entry::new(
            "/messages/groups/notifications",
            vec![on!(POST, groups::notify)],
        ),
        Entry::new("/groups", vec![on!(POST, groups::create)]),
        Entry::new(
            "/groups/{gid}",
            vec![
                on!(GET, groups::info),
                on!(PATCH, groups::rename),
                on!(DELETE, groups::disband),
            ],
        ),
        Entry::new("/groups/{gid}/upgrade", vec![on!(POST, groups::upgrade)]),
        Entry::new(
            "/groups/{gid}/members",
            vec![
                on!(POST, groups::add_members),
                on!(DELETE, groups::remove_members),
            ],
        ),
        Entry::new(
            "/groups/{gid}/members/{mid}",
            vec![
                on!(DELETE, groups::leave),
                on!(PATCH, groups::update_member),
            ],
        ),
    ]);
    t.extend(media::routes());
    t
}

/// Every (method, path) the service answers, aliases included.
pub fn route_list(with_metrics: bool) -> Vec<(Method, &'static str)> {
    table(with_metrics)
        .iter()
        .flat_map(|e| {
            e.paths()
                .flat_map(|p| e.methods.iter().map(move |(m, _)| (m.clone(), p)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Registers the route table (see `table`).
pub fn routes(cfg: &mut web::ServiceConfig, cors_origins: &[String], with_metrics: bool) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| {
        ApiError::bad_request("invalid_query", format!("query string: {e}")).into()
    }))
    .app_data(
        web::PathConfig::default().error_handler(|e, _| {
            ApiError::bad_request("invalid_path", format!("path: {e}")).into()
        }),
    );
    for entry in table(with_metrics) {
        for path in entry.paths() {
            let mut r = resource(path);
            for (_, make) in &entry.methods {
                r = r.route(make());
            }
            if entry.cors {
                cfg.service(
                    r.wrap(cors(cors_origins))
                        .wrap(actix_web::middleware::from_fn(cors_envelope)),
                );
            } else {
                cfg.service(r);
            }
        }
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
/// Every request of the im HTTP API's (private) listener counts.
fn app_server_budget(req: &ServiceRequest) -> bool {
    let path = req.path();
    if req.app_data::<crate::im_http::Listener>().is_some() {
        return true;
    }
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
