//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! request types they parse, served at `GET /openapi.json`.
//!
//! **Adding a route:** put it in `api::table`, give its handler a `#[utoipa::path(...)]`
//! (method, path as in the table, `tag`, `security(("server" = []))`, `security(("client" =
//! []))` or `security(())` for none, `request_body = <its body type, #[derive(ToSchema)]>`,
//! `responses((status = 200, body = Envelope<…>))`), and list the handler in `paths(...)`
//! below. `tests/api/openapi.rs` walks the route table and fails for any (method, path) the
//! document lacks. The error envelope (`default` response) and the `/v2` aliases are added by
//! `Conventions`, not by each annotation.

pub mod answers;
pub mod schemas;

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{customers, groups, health, media, messages, registration, rooms, users, ws};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "im-dispatcher",
        description = "The REST API of im-dispatcher (README \"HTTP API\"). Every success is \
            `{\"meta\":{\"code\":0,\"message\":\"ok\"},\"data\":…}`, every failure the error \
            envelope `{\"meta\":{\"code\",\"error\",\"message\"}}` with the HTTP status."
    ),
    paths(
        users::grant, users::update, users::bind, users::unbind, users::device_bind,
        users::device_unbind, users::revoke,
        messages::peers, messages::systems, messages::notifications, messages::history,
        messages::dequeue, messages::offline, rooms::send,
        groups::create, groups::info, groups::rename, groups::disband, groups::upgrade,
        groups::add_members, groups::remove_members, groups::leave, groups::update_member,
        groups::send, groups::notify,
        registration::register, registration::register_with_key, registration::lift_block,
        customers::add_supporter, customers::remove_supporter,
        customers::list_supporters, customers::my_supporter, customers::send,
        health::healthz, health::readyz, health::metrics, ws::connect, serve,
        media::upload::image_raw, media::upload::image_form, media::upload::audio_raw,
        media::upload::audio_form, media::upload::file_form,
        media::download::image, media::download::audio, media::download::mp3,
        media::download::file,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&Conventions),
    tags(
        (name = "users", description = "tokens, settings, push device tokens (SPEC §4.1)"),
        (name = "messages", description = "sending, history, offline counts (SPEC §4.3)"),
        (name = "groups", description = "group management (SPEC §4.2)"),
        (name = "customers", description = "customer service (SPEC §4.4)"),
        (name = "media", description = "uploads, downloads, thumbnails, MP3 (SPEC §11)"),
        (name = "websocket", description = "the client channel (SPEC §5)"),
        (name = "operations", description = "health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// `Idempotency-Key` of the send endpoints.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey {
    /// A retry with the same key within `limits.idempotency_ttl_secs` returns the first
    /// `msg_id` and sends nothing again (1 to 128 visible ASCII characters).
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// The conditional and range headers of the downloads.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct Conditional {
    /// An ETag this client has: 304 if it is the object's.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
    /// One byte range (`bytes=0-99`, `bytes=100-`, `bytes=-100`); several get the whole object.
    #[param(rename = "Range")]
    range: Option<String>,
    /// Honour `Range` only if this is the object's ETag.
    #[param(rename = "If-Range")]
    if_range: Option<String>,
}

/// What every operation shares, added to the generated document: the security schemes, the
/// error envelope as each operation's `default` response, and the `/v2` aliases of the route
/// table (the alias's path item is its original's, with `_v2` operation ids).
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "server",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "client",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // The original's `Basic base64(appid:appkey)` of `/customer/register`: a public key
        // that names the app, not a server credential.
        components.add_security_scheme(
            "app_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "token_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("token"))),
        );
        let error = ResponseBuilder::new()
            .description("an error: the HTTP status and the error envelope (SPEC §3)")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                op.responses
                    .responses
                    .entry("default".to_string())
                    .or_insert_with(|| error.clone().into());
            }
        }
        for entry in super::table(true) {
            let Some(item) = doc.paths.paths.get(entry.path).cloned() else {
                continue;
            };
            for alias in entry.aliases {
                let mut copy = item.clone();
                for op in operations(&mut copy) {
                    op.operation_id = op.operation_id.take().map(|id| format!("{id}_v2"));
                }
                doc.paths.paths.insert(alias.to_string(), copy);
            }
        }
        unique_operation_ids(doc);
    }
}

/// The operations of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    methods(item).into_iter().filter_map(|(_, op)| op.as_mut())
}

/// The operation slots of a path item, by method.
fn methods(item: &mut PathItem) -> [(&'static str, &mut Option<Operation>); 8] {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
}

/// One handler under several methods (`method(post, patch)`) gets one operation id per
/// method: the first keeps it, the others get `_<method>`.
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    let mut seen = std::collections::HashSet::new();
    for item in doc.paths.paths.values_mut() {
        for (method, op) in methods(item) {
            let Some(op) = op.as_mut() else { continue };
            if let Some(id) = op.operation_id.as_mut()
                && !seen.insert(id.clone())
            {
                id.push('_');
                id.push_str(method);
            }
        }
    }
}

/// The document as JSON (built once).
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi().to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document cannot be encoded");
            String::new()
        })
    })
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object))
)]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
