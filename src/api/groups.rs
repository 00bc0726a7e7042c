//! SPEC §4.2 group management and the group rows of §4.3 (all server auth).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ServerAuth;
use super::body::{JsonBody, MembersDoc, check_name, path_id};
use super::messages::{dispatch_error, draft, send_stored};
use super::openapi::IdempotencyKey;
use super::openapi::answers::{Added, GroupCreated, GroupInfo, MsgId, Removed, Upgraded};
use super::openapi::schemas::{AddMembers, Envelope, Null, RemoveMembers};
use crate::dispatch::{MemberSpec, NewGroup};
use crate::domain::{Flag, GroupId, MessageKind, Uid};
use crate::error::{ApiError, ApiResult, ok, ok_empty};
use crate::state::AppState;
use crate::store::MemberPatch;

fn gid(req: &HttpRequest) -> ApiResult<GroupId> {
    path_id(req, "gid", GroupId::parse)
}

fn opt_string(v: Option<&Value>, field: &str) -> ApiResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            check_name(field, s.as_str())?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(ApiError::invalid_field(field, "must be a string")),
    }
}

/// A member given as a uid (number or decimal string) or as `{uid, name?, avatar?}`.
fn parse_member(v: &Value, path: &str) -> ApiResult<MemberSpec> {
    let uid = |v: &Value, path: &str| {
        serde_json::from_value::<Uid>(v.clone()).map_err(|e| ApiError::invalid_field(path, e))
    };
    match v {
        Value::Number(_) | Value::String(_) => Ok(MemberSpec {
            uid: uid(v, path)?,
            name: None,
            avatar: None,
        }),
        Value::Object(o) => {
            let id = o.get("uid").ok_or_else(|| {
                ApiError::bad_request("missing_field", format!("`{path}.uid` is required"))
            })?;
            Ok(MemberSpec {
                uid: uid(id, &format!("{path}.uid"))?,
                name: opt_string(o.get("name"), &format!("{path}.name"))?,
                avatar: opt_string(o.get("avatar"), &format!("{path}.avatar"))?,
            })
        }
        _ => Err(ApiError::invalid_field(
            path,
            "must be a uid or an object {uid, name?, avatar?}",
        )),
    }
}

fn parse_members(v: &Value, path: &str) -> ApiResult<Vec<MemberSpec>> {
    let items = v
        .as_array()
        .ok_or_else(|| ApiError::invalid_field(path, "must be an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, m)| parse_member(m, &format!("{path}[{i}]")))
        .collect()
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateBody {
    master: Uid,
    name: String,
    #[serde(rename = "super")]
    is_super: Option<Flag>,
    #[schema(value_type = Vec<super::openapi::schemas::Member>)]
    members: Value,
    group_id: Option<GroupId>,
}

/// POST /groups → `{group_id}`.
#[utoipa::path(
    post, path = "/groups", tag = "groups", security(("server" = [])),
    request_body = CreateBody,
    responses((status = 200, description = "success", body = Envelope<GroupCreated>)),
)]
pub async fn create(
    auth: ServerAuth,
    state: web::Data<AppState>,
    MembersDoc(b): MembersDoc<CreateBody>,
) -> ApiResult<HttpResponse> {
    check_name("name", b.name.as_str())?;
    let members = parse_members(&b.members, "members")?;
    let group = NewGroup {
        group_id: b.group_id.unwrap_or(GroupId(0)),
        master: b.master,
        name: b.name,
        is_super: b.is_super.is_some_and(|f| f.0),
        members,
        posted_members: b.members,
    };
    let gid = state
        .dispatcher
        .create_group(auth.0.id, group)
        .await
        .map_err(dispatch_error)?;
    Ok(ok(json!({ "group_id": gid })))
}

/// Members per page of `GET /groups/{gid}` unless `limit` says otherwise: every member of a
/// normal group at its default size, as before paging existed.
const PAGE_DEFAULT: usize = 2000;
const PAGE_MAX: usize = 10_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InfoQuery {
    /// `next_cursor` of the previous page (absent: the first page).
    cursor: Option<String>,
    /// Members per page, 1..=10000 (default 2000).
    limit: Option<usize>,
}

/// GET /groups/{gid}?cursor=&limit= → the group, `member_count`, a page of members in uid
/// order and `next_cursor` (pass it as `cursor` for the next page; null on the last).
#[utoipa::path(
    get, path = "/groups/{gid}", tag = "groups", security(("server" = [])),
    params(("gid" = GroupId, Path), InfoQuery),
    responses((status = 200, description = "success", body = Envelope<GroupInfo>)),
)]
pub async fn info(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    query: web::Query<InfoQuery>,
) -> ApiResult<HttpResponse> {
    let after = match query.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => crate::domain::parse_id(c)
            .map_err(|why| ApiError::bad_request("invalid_query", format!("`cursor` {why}")))?,
    };
    let limit = query.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` must be between 1 and {PAGE_MAX}"),
        ));
    }
    let view = state
        .dispatcher
        .group_info(auth.0.id, gid(&req)?, after, limit)
        .await
        .map_err(dispatch_error)?;
    Ok(ok(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RenameBody {
    name: String,
}

/// PATCH /groups/{gid} `{name}`
#[utoipa::path(
    patch, path = "/groups/{gid}", tag = "groups", security(("server" = [])),
    params(("gid" = GroupId, Path)),
    request_body = RenameBody,
    responses((status = 200, description = "success", body = Envelope<Null>)),
)]
pub async fn rename(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(b): JsonBody<RenameBody>,
) -> ApiResult<HttpResponse> {
    check_name("name", b.name.as_str())?;
    state
        .dispatcher
        .rename_group(auth.0.id, gid(&req)?, &b.name)
        .await
        .map_err(dispatch_error)?;
    Ok(ok_empty())
}

/// DELETE /groups/{gid}: disband.
#[utoipa::path(
    delete, path = "/groups/{gid}", tag = "groups", security(("server" = [])),
    params(("gid" = GroupId, Path)),
    responses((status = 200, description = "success", body = Envelope<Null>)),
)]
pub async fn disband(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    state
        .dispatcher
        .disband_group(auth.0.id, gid(&req)?)
        .await
        .map_err(dispatch_error)?;
    Ok(ok_empty())
}

/// POST /groups/{gid}/upgrade: normal → super.
#[utoipa::path(
    post, path = "/groups/{gid}/upgrade", tag = "groups", security(("server" = [])),
    params(("gid" = GroupId, Path)),
    responses((status = 200, description = "success", body = Envelope<Upgraded>)),
)]
pub async fn upgrade(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    state
        .dispatcher
        .upgrade_group(auth.0.id, gid(&req)?)
        .await
        .map_err(dispatch_error)?;
    Ok(ok(json!({ "super": true })))
}

/// POST /groups/{gid}/members: `{members:[…], inviter?}`, a bare array, or one member object.
#[utoipa::path(
    post, path = "/groups/{gid}/members", tag = "groups", security(("server" = [])),
    params(("gid" = GroupId, Path)),
    request_body = AddMembers,
    responses((status = 200, description = "success", body = Envelope<Added>)),
)]
pub async fn add_members(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    MembersDoc(body): MembersDoc<Value>,
) -> ApiResult<HttpResponse> {
    let gid = gid(&req)?;
    let (members, inviter) = match &body {
        Value::Array(_) => (parse_members(&body, "members")?, None),
        Value::Object(o) if o.contains_key("members") => {
            let inviter = match o.get("inviter") {
                None | Some(Value::Null) => None,
                Some(v @ Value::Object(_)) => {
                    let spec = parse_member(v, "inviter")?;
                    let mut inv = json!({ "uid": spec.uid });
                    if let Some(n) = spec.name {
                        inv["name"] = json!(n);
                    }
                    Some(inv)
                }
                Some(_) => {
                    return Err(ApiError::invalid_field(
                        "inviter",
                        "must be an object {uid, name?}",
                    ));
                }
            };
            (parse_members(&o["members"], "members")?, inviter)
        }
        Value::Object(_) => (vec![parse_member(&body, "member")?], None),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "body must be {\"members\": [...]}, an array of members, or one member object",
            ));
        }
    };
    let added = state
        .dispatcher
        .add_members(auth.0.id, gid, members, inviter)
        .await
        .map_err(dispatch_error)?;
    Ok(ok(json!({ "added": added })))
}

/// DELETE /groups/{gid}/members: an array of uids or member objects (or `{members:[…]}`).
#[utoipa::path(
    delete, path = "/groups/{gid}/members", tag = "groups", security(("server" = [])),
    params(("gid" = GroupId, Path)),
    request_body = RemoveMembers,
    responses((status = 200, description = "success", body = Envelope<Removed>)),
)]
pub async fn remove_members(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    MembersDoc(body): MembersDoc<Value>,
) -> ApiResult<HttpResponse> {
    let gid = gid(&req)?;
    let list = match &body {
        Value::Object(o) if o.contains_key("members") => &o["members"],
        other => other,
    };
    let members = parse_members(list, "members")?;
    if members.is_empty() {
        return Err(ApiError::bad_request(
            "no_members",
            "the list of members to remove is empty",
        ));
    }
    let removed = state
        .dispatcher
        .remove_members(auth.0.id, gid, members)
        .await
        .map_err(dispatch_error)?;
    Ok(ok(json!({ "removed": removed })))
}

/// DELETE /groups/{gid}/members/{mid}: a member leaves (the master too: the longest-standing
/// member takes over; the last member's leaving disbands the group).
#[utoipa::path(
    delete, path = "/groups/{gid}/members/{mid}", tag = "groups", security(("server" = [])),
    params(("gid" = GroupId, Path), ("mid" = Uid, Path)),
    responses((status = 200, description = "success", body = Envelope<Removed>)),
)]
pub async fn leave(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let gid = gid(&req)?;
    let mid = path_id(&req, "mid", Uid::parse)?;
    let spec = MemberSpec {
        uid: mid,
        name: None,
        avatar: None,
    };
    let removed = state
        .dispatcher
        .remove_members(auth.0.id, gid, vec![spec])
        .await
        .map_err(dispatch_error)?;
    Ok(ok(json!({ "removed": removed })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MemberBody {
    do_not_disturb: Option<Flag>,
    nickname: Option<String>,
    mute: Option<Flag>,
}

/// PATCH /groups/{gid}/members/{mid}: any of `do_not_disturb`, `nickname`, `mute`.
#[utoipa::path(
    patch, path = "/groups/{gid}/members/{mid}", tag = "groups", security(("server" = [])),
    params(("gid" = GroupId, Path), ("mid" = Uid, Path)),
    request_body = MemberBody,
    responses((status = 200, description = "success", body = Envelope<Null>)),
)]
pub async fn update_member(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(b): JsonBody<MemberBody>,
) -> ApiResult<HttpResponse> {
    let gid = gid(&req)?;
    let mid = path_id(&req, "mid", Uid::parse)?;
    check_name("nickname", b.nickname.as_deref())?;
    let patch = MemberPatch {
        mute: b.mute.map(|f| f.0),
        dnd: b.do_not_disturb.map(|f| f.0),
        nickname: b.nickname,
    };
    if patch == MemberPatch::default() {
        return Err(ApiError::bad_request(
            "no_action",
            "body must contain at least one of `do_not_disturb`, `nickname`, `mute`",
        ));
    }
    state
        .dispatcher
        .update_member(auth.0.id, gid, mid, patch)
        .await
        .map_err(dispatch_error)?;
    Ok(ok_empty())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct GroupMessageBody {
    sender: Uid,
    receiver: GroupId,
    #[schema(value_type = super::openapi::schemas::Content)]
    content: Value,
    client_msg_id: Option<Value>,
}

/// POST /messages/groups (S): the sender must be a member and not muted.
#[utoipa::path(
    post, path = "/messages/groups", operation_id = "send_group_message", tag = "messages",
    security(("server" = [])),
    params(IdempotencyKey),
    request_body = GroupMessageBody,
    responses((status = 200, description = "success", body = Envelope<MsgId>)),
)]
pub async fn send(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(b): JsonBody<GroupMessageBody>,
) -> ApiResult<HttpResponse> {
    let draft = draft(MessageKind::Group, b.sender, b.receiver.0, &b.content);
    let id = send_stored(&req, &state, &auth.0, "groups", draft, &b.client_msg_id).await?;
    Ok(ok(json!({ "msg_id": id })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct GroupNotificationBody {
    group_id: GroupId,
    #[schema(value_type = super::openapi::schemas::Content)]
    content: Value,
    client_msg_id: Option<Value>,
}

/// POST /messages/groups/notifications (S): an app-defined group notification.
#[utoipa::path(
    post, path = "/messages/groups/notifications", tag = "messages", security(("server" = [])),
    params(IdempotencyKey),
    request_body = GroupNotificationBody,
    responses((status = 200, description = "success", body = Envelope<MsgId>)),
)]
pub async fn notify(
    req: HttpRequest,
    auth: ServerAuth,
    state: web::Data<AppState>,
    JsonBody(b): JsonBody<GroupNotificationBody>,
) -> ApiResult<HttpResponse> {
    // No sender: the notification is the group's (the draft's sender is not used).
    let draft = draft(
        MessageKind::GroupNotification,
        Uid(0),
        b.group_id.0,
        &b.content,
    );
    let endpoint = "group_notifications";
    let id = send_stored(&req, &state, &auth.0, endpoint, draft, &b.client_msg_id).await?;
    Ok(ok(json!({ "msg_id": id })))
}
