//! The im HTTP API's sends with a JSON body (reference §6): group notifications, system
//! messages (also in the pre-2022 shape, query `appid&uid` and the raw body as content) and
//! customer messages. Same preparation and send path as the REST API.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::data;
use super::params::{Params, app};
use crate::api::body::{RawBody, parse_json};
use crate::api::messages::{draft, send_stored};
use crate::dispatch::{Content, Draft};
use crate::domain::{AppId, GroupId, MessageKind, Uid};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Most receivers one `/post_system_message` names.
const MAX_RECEIVERS: usize = 1000;

#[derive(Deserialize)]
struct GroupNotification {
    appid: AppId,
    group_id: GroupId,
    notification: Value,
    /// The original added these recipients to the group's members; ours are the members
    /// (and, for a membership change, the member it is about), so they are not needed.
    #[allow(dead_code)]
    members: Option<Value>,
    /// The original's group kind; ours is the group's own.
    #[serde(rename = "super")]
    #[allow(dead_code)]
    is_super: Option<Value>,
}

/// `/post_group_notification` `{appid, group_id, notification, members?, super?}`.
pub async fn group_notification(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    let b: GroupNotification = parse_json(&body.0)?;
    let app = app(&state, b.appid, "appid")?;
    let draft = draft(
        MessageKind::GroupNotification,
        Uid(0),
        b.group_id.0,
        &b.notification,
    );
    let endpoint = "im_group_notification";
    let id = send_stored(&req, &state, app, endpoint, draft, &None)
        .await
        .map_err(|e| rename_content(e, "notification"))?;
    Ok(data(json!({ "msg_id": id })))
}

/// The content refusals name the body's own field.
fn rename_content(e: ApiError, field: &str) -> ApiError {
    ApiError {
        message: e.message.replace("`content`", &format!("`{field}`")),
        ..e
    }
}

#[derive(Deserialize)]
struct SystemMessage {
    appid: AppId,
    receivers: Vec<Uid>,
    content: Value,
}

/// `/post_system_message`: JSON `{appid, receivers: [uid…], content}`, or (the shape the
/// original REST API still sends) `?appid&uid` with the raw body as content. Each receiver's
/// message is stored, delivered and pushed; the first failure stops the rest (those before it
/// stay sent). `{"data":{"msg_ids":[…]}}` in the receivers' order.
pub async fn system(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    let p = Params::of(&req)?;
    let parsed: SystemMessage;
    let (app_id, receivers, content) = if p.has("uid") {
        let app = p.app(&state)?.id;
        (app, vec![Uid(p.id("uid")?)], Content::Raw(&body.0))
    } else {
        parsed = parse_json(&body.0)?;
        if parsed.receivers.is_empty() || parsed.receivers.len() > MAX_RECEIVERS {
            return Err(ApiError::invalid_field(
                "receivers",
                format!("must list 1 to {MAX_RECEIVERS} uids"),
            ));
        }
        let receivers = parsed.receivers.clone();
        (parsed.appid, receivers, Content::Json(&parsed.content))
    };
    let app = app(&state, app_id, "appid")?;
    let mut ids = Vec::with_capacity(receivers.len());
    for uid in receivers {
        let endpoint = format!("im_system:{uid}");
        let draft = Draft {
            msgid: None,
            device_tag: None,
            to_app: None,
            kind: MessageKind::System,
            sender: Uid(0),
            to: uid.0,
            content,
            idempotency: None,
            origin: None,
        };
        ids.push(send_stored(&req, &state, app, &endpoint, draft, &None).await?);
    }
    Ok(data(json!({ "msg_ids": ids })))
}

#[derive(Deserialize)]
struct CustomerMessage {
    sender_appid: AppId,
    sender: Uid,
    receiver_appid: AppId,
    receiver: Uid,
    content: Value,
}

/// `/post_customer_message` `{sender_appid, sender, receiver_appid, receiver, content}`:
/// between a user of any app and one of the help-desk app (`customers.help_desk_app`, the
/// original's `kefu_appid`), or between a customer and their assigned supporter of one app.
pub async fn customer(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    let b: CustomerMessage = parse_json(&body.0)?;
    app(&state, b.receiver_appid, "receiver_appid")?;
    let app = app(&state, b.sender_appid, "sender_appid")?;
    let draft = Draft {
        msgid: None,
        device_tag: None,
        to_app: Some(b.receiver_appid),
        ..draft(MessageKind::Customer, b.sender, b.receiver.0, &b.content)
    };
    let id = send_stored(&req, &state, app, "im_customer", draft, &None).await?;
    Ok(data(json!({ "msg_id": id })))
}
