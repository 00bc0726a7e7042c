//! The HTTP side of the fuzz properties: requests drawn from the generators for the endpoints
//! of `endpoints`, sending them, and the verdict on each answer.

use std::time::Duration;

use im_dispatcher::domain::GroupId;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use serde_json::Value;

use super::bodies::{json_body, query, raw_body, segment};
use super::endpoints::{Auth, BODY_ENDPOINTS, Endpoint, IM_ROUTES, QUERIES, ROUTES};
use crate::helpers::*;

/// What a request carries in `Authorization`.
#[derive(Debug, Clone)]
pub enum Creds {
    /// What the endpoint wants (`Request::auth`).
    Proper,
    Header(String),
    Omitted,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    /// Path and query, percent-encoded.
    pub path: String,
    pub auth: Auth,
    pub creds: Creds,
    pub body: Vec<u8>,
    /// For the im HTTP API's listener (no credentials, `{"data":…}` successes).
    pub im: bool,
}

impl Request {
    /// For a failure report: the body as text, cut short.
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let shown: String = body.chars().take(1_500).collect();
        let cut = if shown.len() < body.len() {
            format!(" … ({} bytes)", self.body.len())
        } else {
            String::new()
        };
        format!(
            "{} {} ({:?}, {:?})\nbody: {shown}{cut}",
            self.method, self.path, self.auth, self.creds
        )
    }
}

/// Mostly the endpoint's own credentials; sometimes none, another app's, or garbage.
fn creds() -> BoxedStrategy<Creds> {
    let known = vec![
        String::new(),
        "Basic".into(),
        "Basic !!!".into(),
        "Basic Nzo=".into(),
        "Basic OjpAOg==".into(),
        "basic".into(),
        "Bearer".into(),
        "Bearer nope".into(),
        format!("Bearer {}", "x".repeat(300)),
        "Token abc".into(),
        basic(APP_A, "wrong"),
        basic(APP_B, SECRET_B),
        basic(99, SECRET_A),
    ];
    prop_oneof![
        30 => Just(Creds::Proper),
        2 => select(known).prop_map(Creds::Header),
        1 => "[ -~]{0,40}".prop_map(Creds::Header),
        1 => Just(Creds::Omitted),
    ]
    .boxed()
}

/// A path from a template: each `{name}` from `fill(name)`.
fn path(
    template: &'static str,
    fill: impl Fn(&str) -> BoxedStrategy<String>,
) -> BoxedStrategy<String> {
    let parts: Vec<BoxedStrategy<String>> = template
        .split('/')
        .map(|part| match part.strip_prefix('{') {
            Some(name) => fill(name.trim_end_matches('}')),
            None => Just(part.to_string()).boxed(),
        })
        .collect();
    parts.prop_map(|p| p.join("/")).boxed()
}

/// Ids that exist in the fixtures, sometimes anything.
fn fixture_id(name: &str) -> BoxedStrategy<String> {
    if name == "store_id" {
        prop_oneof![8 => Just(super::STORE.to_string()), 1 => Just("200".to_string()), 1 => segment()]
            .boxed()
    } else {
        prop_oneof![8 => (1u64..=12).prop_map(|n| n.to_string()), 1 => segment()].boxed()
    }
}

/// A request with a generated JSON body to any body-taking endpoint.
pub fn json_request() -> BoxedStrategy<Request> {
    body_request(|e| json_body(e.fields, e.members))
}

/// A request with a body that is not (valid) JSON to any body-taking endpoint.
pub fn raw_request() -> BoxedStrategy<Request> {
    body_request(|e| raw_body(e.fields))
}

/// A request to any body-taking endpoint, with a body from `body`.
fn body_request(
    body: impl Fn(&'static Endpoint) -> BoxedStrategy<Vec<u8>>,
) -> BoxedStrategy<Request> {
    Union::new(BODY_ENDPOINTS.iter().map(|e| {
        (path(e.path, fixture_id), creds(), body(e))
            .prop_map(move |(path, creds, body)| Request {
                method: e.method,
                path,
                auth: e.auth,
                creds,
                body,
                im: false,
            })
            .boxed()
    }))
    .boxed()
}

fn method() -> BoxedStrategy<&'static str> {
    select(vec!["GET", "POST", "PATCH", "DELETE", "PUT"]).boxed()
}

/// Any method on any route with random path segments and suffixes, random paths, and query
/// strings on the endpoints that read them.
pub fn path_or_query_request() -> BoxedStrategy<Request> {
    let small_body = select(vec![
        &b""[..],
        b"{}",
        br#"{"uid":1,"name":"n","members":[2],"content":"c","receiver":2,"sender":1}"#,
    ])
    .prop_map(<[u8]>::to_vec);
    let routed = Union::new(ROUTES.iter().map(|&(template, auth)| {
        (
            method(),
            path(template, |_| segment()),
            select(vec!["", "", "", "/", "/x", "//", "/..", "/%2e"]),
            creds(),
            small_body.clone(),
        )
            .prop_map(move |(method, path, suffix, creds, body)| Request {
                method,
                path: format!("{path}{suffix}"),
                auth,
                creds,
                body,
                im: false,
            })
            .boxed()
    }));
    let anywhere = (
        method(),
        proptest::collection::vec(segment(), 0..4),
        creds(),
    )
        .prop_map(|(method, segments, creds)| Request {
            method,
            path: format!("/{}", segments.join("/")),
            auth: Auth::Server,
            creds,
            body: Vec::new(),
            im: false,
        });
    let queried = Union::new(QUERIES.iter().map(|&(route, auth, keys)| {
        (query(keys), creds())
            .prop_map(move |(q, creds)| Request {
                method: "GET",
                path: format!("{route}?{q}"),
                auth,
                creds,
                body: Vec::new(),
                im: false,
            })
            .boxed()
    }));
    prop_oneof![3 => routed, 1 => anywhere, 3 => queried]
        .prop_filter("a URI the client can send", |r| {
            format!("http://127.0.0.1{}", r.path)
                .parse::<awc::http::Uri>()
                .is_ok()
        })
        .boxed()
}

/// A request to the im HTTP API: any method, a query of the route's keys (mostly for app 7),
/// a JSON body of its fields, a broken one, or content bytes of any kind.
pub fn im_request() -> BoxedStrategy<Request> {
    Union::new(IM_ROUTES.iter().map(|&(route, keys, fields)| {
        let app = prop_oneof![3 => Just("appid=7&"), 1 => Just(""), 1 => Just("appid=8&")];
        let body = prop_oneof![
            3 => json_body(fields, false),
            1 => raw_body(fields),
            2 => "\\PC{0,64}".prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..64),
        ];
        (method(), app, query(keys), body)
            .prop_map(move |(method, app, q, body)| Request {
                method,
                path: format!("{route}?{app}{q}"),
                auth: Auth::Public,
                creds: Creds::Omitted,
                body,
                im: true,
            })
            .boxed()
    }))
    .prop_filter("a URI the client can send", |r| {
        format!("http://127.0.0.1{}", r.path)
            .parse::<awc::http::Uri>()
            .is_ok()
    })
    .boxed()
}

/// Sends a request; a transport failure or no answer within 20 s is an error.
pub async fn send(app: &TestApp, auth: Option<&str>, r: &Request) -> Result<Res, String> {
    let method = awc::http::Method::from_bytes(r.method.as_bytes()).unwrap();
    let mut req = app
        .client
        .request(method, format!("{}{}", base(app, r), r.path))
        .insert_header(("Content-Type", "application/json"));
    if let Some(auth) = auth {
        req = req.insert_header(("Authorization", auth));
    }
    let exchange = async {
        let mut res = req
            .send_body(r.body.clone())
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let bytes = res
            .body()
            .limit(64 << 20)
            .await
            .map_err(|e| format!("reading the answer failed: {e}"))?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok(Res {
            status: res.status().as_u16(),
            body,
            headers: res.headers().clone(),
        })
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| "no answer within 20 s".to_string())?
}

/// Where `r` goes: the main listener, or the im HTTP API's.
fn base(app: &TestApp, r: &Request) -> String {
    match (r.im, app.im_http_addr) {
        (true, Some(addr)) => format!("http://{addr}"),
        _ => app.base.clone(),
    }
}

/// A success envelope, or a 4xx in the error envelope with `code` equal to the status; a group
/// created with an id of the app's choosing has exactly that id.
pub fn verdict(r: &Request, res: &Res) -> Result<(), String> {
    let fail = |why: &str| Err(format!("{why}: {} {}", res.status, res.body));
    let json = res
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return fail("answer is not application/json");
    }
    let meta = &res.body["meta"];
    if res.status == 200 && r.im {
        // The original im server's success shape: `{"data":…}` alone.
        if res.body.as_object().map(|o| o.len()) != Some(1) || res.body.get("data").is_none() {
            return fail("200 without {\"data\":…}");
        }
        return Ok(());
    }
    if res.status == 200 {
        if meta["code"] != 0 || meta["message"] != "ok" {
            return fail("200 without the success envelope");
        }
        let chosen = (r.method, r.path.as_str()) == ("POST", "/groups");
        let asked = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|b| serde_json::from_value::<GroupId>(b["group_id"].clone()).ok());
        if let Some(asked) = asked.filter(|_| chosen)
            && res.body["data"]["group_id"] != asked.0
        {
            return fail(&format!("group {asked} was created under another id"));
        }
        return Ok(());
    }
    if res.status >= 500 {
        return fail("server error");
    }
    if !(400..500).contains(&res.status) {
        return fail("neither 200 nor 4xx");
    }
    if res.body.as_object().map(|o| o.len()) != Some(1) || !meta.is_object() {
        return fail("error body is not {\"meta\":…}");
    }
    if meta["code"] != res.status {
        return fail("meta.code is not the status");
    }
    let snake = meta["error"].as_str().is_some_and(|e| {
        e.starts_with(|c: char| c.is_ascii_lowercase())
            && e.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    });
    if !snake {
        return fail("meta.error is not a snake_case code");
    }
    if meta["message"].as_str().is_none_or(str::is_empty) {
        return fail("meta.message is empty");
    }
    if meta.as_object().map(|o| o.len()) != Some(3) {
        return fail("meta has fields besides code, error, message");
    }
    if res.status == 429 && !res.headers.contains_key("retry-after") {
        return fail("429 without Retry-After");
    }
    Ok(())
}
