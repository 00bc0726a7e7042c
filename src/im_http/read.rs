//! The im HTTP API's reads (reference §6): offline counts, a user's latest messages and one
//! page of history, in the original's shapes, and the process summary.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::data;
use super::params::Params;
use crate::domain::{MessageKind, UserKey};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::device_key;

/// Most messages `/load_latest_message` returns (what the original REST API asks for).
const LATEST_MAX: usize = 1024;

/// The user named by `appid` and `uid`.
fn user(p: &Params, state: &AppState) -> ApiResult<UserKey> {
    let app = p.app(state)?;
    Ok(UserKey::new(app.id, crate::domain::Uid(p.id("uid")?)))
}

/// `/get_offline_count?appid&uid[&sync_key][&platform_id&device_id]` → `{"data":{"count"}}`:
/// inbox messages after `sync_key` when given, else after the device's acknowledged position.
pub async fn offline_count(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let p = Params::of(&req)?;
    let user = user(&p, &state)?;
    let count = match p.opt_u64("sync_key")? {
        Some(key) => {
            let newest = state.store.latest_seq(user).await?;
            newest
                .saturating_sub(key)
                .min(state.settings.limits.inbox_len)
        }
        None => {
            let platform = p.opt_u64("platform_id")?.unwrap_or(0);
            let platform = u8::try_from(platform).map_err(|_| {
                ApiError::bad_request("invalid_query", "`platform_id` must be 0 to 255")
            })?;
            let device = device_key(platform, p.text("device_id").unwrap_or(""));
            state.store.unread_count(user, &device).await?
        }
    };
    Ok(data(json!({ "count": count })))
}

/// `/load_latest_message?appid&uid&limit` → the user's newest peer, group and customer
/// messages (at most `limit`, cut to 1024), oldest first, in the original's shape.
pub async fn latest(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let p = Params::of(&req)?;
    let user = user(&p, &state)?;
    let limit = (p.id("limit")? as usize).min(LATEST_MAX);
    let records = state.store.inbox_latest(user, None, limit).await?;
    let chat = |m: &Value| matches!(m["command"].as_u64(), Some(4 | 8 | 64));
    let items: Vec<Value> = records
        .iter()
        .filter_map(|r| original(r, user))
        .filter(chat)
        .collect();
    Ok(data(Value::Array(items)))
}

/// `/load_history_message?appid&uid&last_id` → one sync page of the user's messages after
/// `last_id` (a seq; 0 = from the start), oldest first, in the original's shape.
pub async fn history(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let p = Params::of(&req)?;
    let user = user(&p, &state)?;
    let after = p.opt_u64("last_id")?.unwrap_or(0);
    let store = &state.store;
    let newest = store.latest_seq(user).await?;
    let page = state.settings.limits.sync_batch.max(1);
    let records = store.inbox_after(user, after, newest, page).await?;
    let items: Vec<Value> = records.iter().filter_map(|r| original(r, user)).collect();
    Ok(data(Value::Array(items)))
}

/// The original's command number of a stored kind (reference §7.3).
fn command(kind: MessageKind) -> Option<u64> {
    Some(match kind {
        MessageKind::Peer => 4,
        MessageKind::GroupNotification => 7,
        MessageKind::Group => 8,
        MessageKind::System => 21,
        MessageKind::Customer => 64,
        _ => return None,
    })
}

/// A stored record as the original listed it: `{id, command, sender, receiver, timestamp,
/// content}` (`id` = the inbox seq, the original's queue position; `timestamp` in seconds),
/// plus `sender_appid` / `receiver_appid` for customer messages.
fn original(record: &str, user: UserKey) -> Option<Value> {
    let v: Value = serde_json::from_str(record).ok()?;
    let kind = MessageKind::parse(v["kind"].as_str()?)?;
    let id = |f: &str| v[f].as_u64().unwrap_or(0);
    let mut item = json!({
        "id": id("seq"),
        "command": command(kind)?,
        "sender": id("sender"),
        "receiver": id("receiver"),
        "timestamp": id("timestamp") / 1000,
        "content": v["content"],
    });
    if kind == MessageKind::Customer {
        let app = |f: &str| v[f].as_u64().unwrap_or(user.app.0);
        item["sender_appid"] = json!(app("sender_app"));
        item["receiver_appid"] = json!(app("receiver_app"));
    }
    Some(item)
}

/// `/summary` → this process's counters: connections, users with a loaded session.
pub async fn summary(state: web::Data<AppState>) -> HttpResponse {
    let d = &state.dispatcher;
    data(json!({
        "connection_count": d.connection_count(),
        "client_count": d.session_count(),
    }))
}
