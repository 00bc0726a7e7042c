//! The `data` of each success, as the handlers build it (they answer with `json!`, so these
//! shapes are documentation; `tests/api/openapi.rs` checks a real answer of each against them).

#![allow(dead_code)]

use utoipa::ToSchema;

use super::schemas::OkMeta;
use crate::api::media::upload::Uploaded;
use crate::domain::{GroupId, Uid};

#[derive(ToSchema)]
pub struct Token {
    /// The same token for the same (app, uid) every time; 32 URL-safe characters.
    token: String,
}

#[derive(ToSchema)]
pub struct MsgId {
    /// The stored message's id.
    msg_id: u64,
}

#[derive(ToSchema)]
pub struct NotificationSent {
    msg_id: u64,
    /// Connections it was written to.
    devices: u64,
}

#[derive(ToSchema)]
pub struct Removed {
    /// How many went.
    removed: u64,
}

#[derive(ToSchema)]
pub struct Revoked {
    revoked: bool,
    /// A customer is also blocked from registering again until the app server lifts it.
    blocked: bool,
}

#[derive(ToSchema)]
pub struct Added {
    /// How many were not members yet.
    added: u64,
}

#[derive(ToSchema)]
pub struct GroupCreated {
    group_id: GroupId,
}

#[derive(ToSchema)]
pub struct Upgraded {
    #[schema(rename = "super")]
    is_super: bool,
}

#[derive(ToSchema)]
pub struct Offline {
    /// Inbox messages after the device's acknowledged seq.
    count: u64,
    /// 1 if count > 0, else 0.
    new: u8,
}

#[derive(ToSchema)]
pub struct MemberInfo {
    uid: Uid,
    nickname: Option<String>,
    mute: bool,
    do_not_disturb: bool,
}

#[derive(ToSchema)]
pub struct GroupInfo {
    group_id: GroupId,
    name: String,
    master: Uid,
    #[schema(rename = "super")]
    is_super: bool,
    /// Members in all.
    member_count: u64,
    /// This page of them, ascending by uid.
    members: Vec<MemberInfo>,
    /// `cursor` of the next page; null on the last.
    next_cursor: Option<Uid>,
}

#[derive(ToSchema)]
pub struct CustomerToken {
    token: String,
    store_id: u64,
    /// The customer's uid (customers.uid_base + n).
    client_id: u64,
}

#[derive(ToSchema)]
pub struct Lifted {
    /// The customer was blocked (and may now register again).
    lifted: bool,
}

#[derive(ToSchema)]
pub struct SupporterAdded {
    uid: Uid,
}

#[derive(ToSchema)]
pub struct SupporterRow {
    uid: Uid,
    name: String,
    avatar: String,
    /// Customers assigned to this supporter.
    assigned: u64,
    /// `online` or `offline`.
    status: String,
}

#[derive(ToSchema)]
pub struct MySupporter {
    seller_id: Uid,
    name: String,
    avatar: String,
    status: String,
}

#[derive(ToSchema)]
pub struct Health {
    status: String,
}

#[derive(ToSchema)]
pub struct Ready {
    status: String,
    /// `memory` or `redis`.
    store: String,
    /// This node's name among the nodes sharing the store (null with the memory store).
    node: Option<String>,
}

#[derive(ToSchema)]
pub struct Dequeued {
    success: bool,
}

/// An upload's answer: the envelope, with `src` and `src_url` also at the top level where the
/// original's clients read them.
#[derive(ToSchema)]
pub struct UploadAnswer {
    meta: OkMeta,
    data: Uploaded,
    src: String,
    src_url: String,
}
