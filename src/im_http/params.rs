//! The query parameters of the im server's HTTP API (`?appid=7&sender=1&receiver=2`), each
//! checked with an error that names it: the original answered every bad one with
//! `invalid param` (and some with a 500).

use std::sync::Arc;

use actix_web::{HttpRequest, web};

use crate::apps::App;
use crate::domain::{AppId, parse_id};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A request's query parameters, in order.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn of(req: &HttpRequest) -> ApiResult<Params> {
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| Params(q.into_inner()))
            .map_err(|e| ApiError::bad_request("invalid_query", format!("query string: {e}")))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the parameter is there at all.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A required positive id.
    pub fn id(&self, name: &str) -> ApiResult<u64> {
        self.opt_id(name)?
            .ok_or_else(|| ApiError::bad_request("invalid_query", format!("`{name}` is required")))
    }

    /// An optional positive id.
    pub fn opt_id(&self, name: &str) -> ApiResult<Option<u64>> {
        self.get(name)
            .map(|v| parse_id(v).map_err(|why| invalid(name, why)))
            .transpose()
    }

    /// An optional number, 0 allowed (sync keys, message ids).
    pub fn opt_u64(&self, name: &str) -> ApiResult<Option<u64>> {
        self.get(name)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    invalid(name, format!("must be a non-negative integer, got {v:?}"))
                })
            })
            .transpose()
    }

    /// An optional string.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
    }

    /// The configured app named by `appid`.
    pub fn app<'s>(&self, state: &'s AppState) -> ApiResult<&'s Arc<App>> {
        let id = AppId(self.id("appid")?);
        app(state, id, "appid")
    }
}

/// The configured app `id` (named `field` in the request).
pub fn app<'s>(state: &'s AppState, id: AppId, field: &str) -> ApiResult<&'s Arc<App>> {
    state.apps.get(id).ok_or_else(|| {
        ApiError::bad_request(
            "unknown_app",
            format!("`{field}` {id} is not a configured app"),
        )
    })
}

fn invalid(name: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_query", format!("`{name}` {why}"))
}
