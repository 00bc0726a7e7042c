//! Which endpoints take which bodies and query strings, and what credentials each wants
//! (README tables: Users, Messages, Groups, Customer service).

use super::values::Fields;
use super::values::Hint::*;

/// The credentials an endpoint wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// App A's `Basic` header.
    Server,
    /// User 1's bearer token.
    Client,
    /// A customer's bearer token.
    Customer,
    /// App A's key (`Basic base64(appid:appkey)`, customer registration).
    AppKey,
    Public,
}

/// An endpoint that takes a JSON body.
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub auth: Auth,
    pub fields: Fields,
    /// Also takes a bare array of members or one member object.
    pub members: bool,
}

const fn ep(method: &'static str, path: &'static str, auth: Auth, fields: Fields) -> Endpoint {
    Endpoint {
        method,
        path,
        auth,
        fields,
        members: false,
    }
}

const USER: Fields = &[
    ("name", Text),
    ("avatar", Text),
    ("do_not_disturb", Dnd),
    ("mute", Flag),
    ("forbidden", Flag),
];
const TOKENS: Fields = &[
    ("apns_device_token", Token),
    ("pushkit_device_token", Token),
    ("xg_device_token", Token),
    ("xm_device_token", Token),
    ("hw_device_token", Token),
    ("gcm_device_token", Token),
    ("jp_device_token", Token),
];
const PEER: Fields = &[
    ("sender", Id),
    ("receiver", Id),
    ("content", Content),
    ("client_msg_id", Ref),
];

/// Every endpoint that takes a body (README: Users, Messages, Groups, Customer service).
pub const BODY_ENDPOINTS: &[Endpoint] = &[
    ep(
        "POST",
        "/auth/grant",
        Auth::Server,
        &[
            ("uid", Id),
            ("user_name", Text),
            ("platform_id", Seq),
            ("device_id", Text),
        ],
    ),
    ep("POST", "/users/{uid}", Auth::Server, USER),
    ep("PATCH", "/users/{uid}", Auth::Server, USER),
    ep("POST", "/users/{uid}/bind", Auth::Server, TOKENS),
    ep("POST", "/users/{uid}/unbind", Auth::Server, TOKENS),
    ep("POST", "/device/bind", Auth::Client, TOKENS),
    ep("POST", "/device/unbind", Auth::Client, TOKENS),
    ep("POST", "/messages/peers", Auth::Server, PEER),
    ep("POST", "/messages/groups", Auth::Server, PEER),
    ep(
        "POST",
        "/messages/systems",
        Auth::Server,
        &[
            ("receiver", Id),
            ("content", Content),
            ("client_msg_id", Ref),
        ],
    ),
    ep(
        "POST",
        "/messages/notifications",
        Auth::Server,
        &[("receiver", Id), ("content", Content)],
    ),
    ep(
        "POST",
        "/messages/groups/notifications",
        Auth::Server,
        &[("group_id", Id), ("content", Content)],
    ),
    ep("POST", "/messages/customers", Auth::Server, PEER),
    ep("POST", "/messages/rooms", Auth::Server, PEER),
    ep(
        "POST",
        "/groups",
        Auth::Server,
        &[
            ("master", Id),
            ("name", Text),
            ("super", Flag),
            ("members", Members),
            ("group_id", Id),
        ],
    ),
    ep("PATCH", "/groups/{gid}", Auth::Server, &[("name", Text)]),
    Endpoint {
        members: true,
        ..ep(
            "POST",
            "/groups/{gid}/members",
            Auth::Server,
            &[("members", Members), ("inviter", Inviter)],
        )
    },
    Endpoint {
        members: true,
        ..ep(
            "DELETE",
            "/groups/{gid}/members",
            Auth::Server,
            &[("members", Members)],
        )
    },
    ep(
        "PATCH",
        "/groups/{gid}/members/{mid}",
        Auth::Server,
        &[("do_not_disturb", Flag), ("nickname", Text), ("mute", Flag)],
    ),
    ep(
        "POST",
        "/stores/{store_id}/supporters",
        Auth::Server,
        &[("uid", Id), ("name", Text), ("avatar", Text)],
    ),
    ep(
        "POST",
        "/auth/customer",
        Auth::Public,
        &[
            ("appid", App),
            ("customer_id", Ref),
            ("name", Text),
            ("avatar", Text),
            ("platform_id", Seq),
            ("device_id", Text),
        ],
    ),
    ep(
        "POST",
        "/customer/register",
        Auth::AppKey,
        &[
            ("appid", App),
            ("customer_id", Ref),
            ("uid", Ref),
            ("name", Text),
            ("avatar", Text),
            ("expires", Seq),
            ("signature", Text),
        ],
    ),
];

/// Every route (for wrong methods and random path segments).
pub const ROUTES: &[(&str, Auth)] = &[
    ("/healthz", Auth::Public),
    ("/readyz", Auth::Public),
    ("/auth/grant", Auth::Server),
    ("/users/{uid}", Auth::Server),
    ("/users/{uid}/bind", Auth::Server),
    ("/users/{uid}/unbind", Auth::Server),
    ("/device/bind", Auth::Client),
    ("/device/unbind", Auth::Client),
    ("/ws", Auth::Client),
    ("/messages", Auth::Client),
    ("/auth/customer", Auth::Public),
    ("/customer/register", Auth::AppKey),
    ("/v2/customer/register", Auth::AppKey),
    ("/auth/customers/{uid}/block", Auth::Server),
    ("/supporters", Auth::Customer),
    ("/stores/{store_id}/supporters", Auth::Server),
    ("/stores/{store_id}/supporters/{uid}", Auth::Server),
    ("/messages/customers", Auth::Server),
    ("/messages/offline", Auth::Server),
    ("/messages/peers", Auth::Server),
    ("/messages/systems", Auth::Server),
    ("/messages/rooms", Auth::Server),
    ("/messages/notifications", Auth::Server),
    ("/messages/groups", Auth::Server),
    ("/messages/groups/notifications", Auth::Server),
    ("/groups", Auth::Server),
    ("/groups/{gid}", Auth::Server),
    ("/groups/{gid}/upgrade", Auth::Server),
    ("/groups/{gid}/members", Auth::Server),
    ("/groups/{gid}/members/{mid}", Auth::Server),
    ("/messages/dequeue", Auth::Client),
    ("/v2/device/bind", Auth::Client),
    ("/v2/supporters", Auth::Customer),
    ("/images", Auth::Client),
    ("/v2/images", Auth::Client),
    ("/audios", Auth::Client),
    ("/v2/audios", Auth::Client),
    ("/files", Auth::Client),
    ("/images/{name}", Auth::Public),
    ("/audios/{name}", Auth::Public),
    ("/files/{name}", Auth::Public),
];

/// Endpoints that read a query string, with their keys.
pub const QUERIES: &[(&str, Auth, &[&str])] = &[
    ("/messages", Auth::Client, &["limit", "before"]),
    (
        "/messages/offline",
        Auth::Server,
        &["uid", "customer_id", "platform_id", "device_id"],
    ),
    ("/supporters", Auth::Customer, &["store_id"]),
    ("/ws", Auth::Client, &["token", "platform_id", "device_id"]),
];

/// The im server's HTTP API (README "The im server's HTTP API"): each route, the query keys it
/// reads and the fields of its JSON body (`RAW`: the body is the content).
const RAW: Fields = &[("content", Content)];

pub const IM_ROUTES: &[(&str, &[&str], Fields)] = &[
    ("/post_peer_message", &["sender", "receiver"], RAW),
    ("/post_group_message", &["sender", "receiver"], RAW),
    ("/post_notification", &["uid"], RAW),
    ("/post_room_message", &["uid", "room"], RAW),
    ("/post_realtime_message", &["sender", "receiver"], RAW),
    (
        "/post_group_notification",
        &["appid"],
        &[
            ("appid", App),
            ("group_id", Id),
            ("notification", Content),
            ("members", Members),
            ("super", Flag),
        ],
    ),
    (
        "/post_system_message",
        &["uid"],
        &[("appid", App), ("receivers", Members), ("content", Content)],
    ),
    (
        "/post_customer_message",
        &["appid"],
        &[
            ("sender_appid", App),
            ("sender", Id),
            ("receiver_appid", App),
            ("receiver", Id),
            ("content", Content),
        ],
    ),
    (
        "/get_offline_count",
        &["uid", "sync_key", "platform_id", "device_id"],
        RAW,
    ),
    ("/load_latest_message", &["uid", "limit"], RAW),
    ("/load_history_message", &["uid", "last_id"], RAW),
    ("/summary", &["appid"], RAW),
];
