//! Liveness, readiness and metrics (no auth).

use actix_web::{HttpResponse, web};

use super::openapi::answers::{Health, Ready};
use super::openapi::schemas::Envelope;
use crate::error::{ApiError, ApiResult, ok};
use crate::state::AppState;

/// GET /healthz: the process is up and serving.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "success", body = Envelope<Health>)),
)]
pub async fn healthz() -> HttpResponse {
    ok(serde_json::json!({ "status": "ok" }))
}

/// GET /readyz: the store answers and (several nodes) the pub/sub link is up; 503 otherwise.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "success", body = Envelope<Ready>)),
)]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    if state
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this instance is shutting down; use another",
        ));
    }
    state.store.ping().await?;
    if state.dispatcher.pubsub_up() == Some(false) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "pubsub_down",
            "the pub/sub link to the other nodes is down (being made again)",
        ));
    }
    Ok(ok(serde_json::json!({
        "status": "ready",
        "store": state.store.kind(),
        "node": state.store.node(),
    })))
}

/// GET /metrics: Prometheus text exposition.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", security(()),
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
    ),
)]
pub async fn metrics() -> ApiResult<HttpResponse> {
    let handle = crate::telemetry::metrics()
        .ok_or_else(|| ApiError::internal("metrics recorder unavailable"))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render()))
}
