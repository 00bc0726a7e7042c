//! Schemas of the OpenAPI document that no request type gives by itself: the domain ids (a
//! number or a decimal string), the envelopes, the `data` of each answer, and the bodies that
//! handlers take as loose JSON (device tokens, member lists).

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::{AppId, Flag, GroupId, PushProvider, Uid};

/// A positive id: a JSON number, or the same number as a decimal string.
fn id_schema(what: &str) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[1-9][0-9]{0,18}$")),
        )
        .description(Some(format!(
            "{what}: a positive integer up to 2^63-1, or the same as a decimal string"
        )))
        .into()
}

macro_rules! id_schemas {
    ($($ty:ty => $what:literal),* $(,)?) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                id_schema($what)
            }
        }
        impl ToSchema for $ty {}
    )*};
}

id_schemas!(Uid => "user id", GroupId => "group id", AppId => "app id");

impl PartialSchema for Flag {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .enum_values(Some([0, 1])),
            )
            .description(Some("a boolean, or 0 / 1"))
            .into()
    }
}
impl ToSchema for Flag {}

/// `data: null`.
pub struct Null;

impl PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}
impl ToSchema for Null {}

/// `meta` of a success.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OkMeta {
    /// Always 0.
    code: u16,
    /// Always "ok".
    message: String,
}

/// The success envelope (SPEC §3).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Envelope<T: ToSchema> {
    meta: OkMeta,
    data: T,
}

/// A message's content: a string, or an object (stored as its JSON text).
pub struct Content;

impl PartialSchema for Content {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Object))
            .description(Some(
                "a string, or an object sent as its JSON text (at most limits.content bytes)",
            ))
            .into()
    }
}
impl ToSchema for Content {}

/// Bind/unbind bodies: one optional string per push provider (built from the providers the
/// handler reads, so the two cannot drift apart).
pub struct DeviceTokens;

impl PartialSchema for DeviceTokens {
    fn schema() -> RefOr<Schema> {
        let mut o = ObjectBuilder::new().description(Some(
            "at least one provider's token (a non-empty string of at most 4096 bytes)",
        ));
        for p in PushProvider::ALL {
            o = o.property(
                p.token_field(),
                ObjectBuilder::new().schema_type(Type::String),
            );
        }
        o.min_properties(Some(1)).into()
    }
}
impl ToSchema for DeviceTokens {}

/// A member: a uid, or `{uid, name?, avatar?}`.
pub struct Member;

impl PartialSchema for Member {
    fn schema() -> RefOr<Schema> {
        let object = ObjectBuilder::new()
            .property("uid", Uid::schema())
            .property("name", ObjectBuilder::new().schema_type(Type::String))
            .property("avatar", ObjectBuilder::new().schema_type(Type::String))
            .required("uid");
        OneOfBuilder::new().item(Uid::schema()).item(object).into()
    }
}
impl ToSchema for Member {}

fn members() -> ArrayBuilder {
    ArrayBuilder::new().items(Member::schema())
}

/// POST /groups/{gid}/members: `{members, inviter?}`, a bare array, or one member.
pub struct AddMembers;

impl PartialSchema for AddMembers {
    fn schema() -> RefOr<Schema> {
        let inviter = ObjectBuilder::new()
            .property("uid", Uid::schema())
            .property("name", ObjectBuilder::new().schema_type(Type::String))
            .required("uid");
        let wrapped = ObjectBuilder::new()
            .property("members", members())
            .property("inviter", inviter)
            .required("members");
        OneOfBuilder::new()
            .item(wrapped)
            .item(members())
            .item(Member::schema())
            .into()
    }
}
impl ToSchema for AddMembers {}

/// DELETE /groups/{gid}/members: an array of members, or `{members}`.
pub struct RemoveMembers;

impl PartialSchema for RemoveMembers {
    fn schema() -> RefOr<Schema> {
        let wrapped = ObjectBuilder::new()
            .property("members", members())
            .required("members");
        OneOfBuilder::new().item(members()).item(wrapped).into()
    }
}
impl ToSchema for RemoveMembers {}

/// A stored message as history and sync return it (the WebSocket `message` frame without
/// `type`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StoredMessage {
    id: u64,
    /// The recipient's inbox position (absent on a super group's timeline, which has
    /// `group_seq`).
    seq: Option<u64>,
    /// `peer`, `group`, `system`, `customer` or `group_notification`.
    kind: String,
    sender: Option<u64>,
    receiver: u64,
    group_id: Option<u64>,
    /// The content as stored text.
    content: String,
    /// Milliseconds since the epoch.
    timestamp: u64,
}

/// A binary download (images, audios, files).
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .content_media_type("application/octet-stream")
            .into()
    }
}
impl ToSchema for Binary {}

/// The multipart body of the form uploads: the part `file`.
pub struct FileForm;

impl PartialSchema for FileForm {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property("file", Binary::schema())
            .required("file")
            .description(Some(
                "multipart/form-data; the part `file` (its Content-Type types an image upload, its file name's extension a file upload)",
            ))
            .into()
    }
}
impl ToSchema for FileForm {}
