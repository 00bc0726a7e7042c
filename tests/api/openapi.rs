//! `GET /openapi.json`: every route of the route table is in it with its auth scheme, its
//! parameters and the error envelope, and real answers have the documented shapes.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};

use crate::helpers::*;

async fn document(app: &TestApp) -> Value {
    let res = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.headers.get("content-type").unwrap().to_str().unwrap(),
        "application/json"
    );
    res.body
}

/// Follows `$ref`s into `components`.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        schema = &doc["components"]["schemas"][name];
    }
    schema
}

/// What the document lacks or gets wrong for each (method, path) of the route table.
fn problems(doc: &Value, routes: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let schemes = &doc["components"]["securitySchemes"];
    let mut ids = HashSet::new();
    for (method, path) in routes {
        let op = &doc["paths"][path][method.to_lowercase()];
        let at = format!("{method} {path}");
        if !op.is_object() {
            out.push(format!("{at}: not in the document"));
            continue;
        }
        match op["security"].as_array() {
            Some(reqs) if !reqs.is_empty() => {
                for name in reqs
                    .iter()
                    .filter_map(Value::as_object)
                    .flat_map(|o| o.keys())
                {
                    if !schemes[name].is_object() {
                        out.push(format!("{at}: unknown security scheme {name}"));
                    }
                }
            }
            _ => out.push(format!(
                "{at}: no security (public routes say security(()))"
            )),
        }
        let error = &op["responses"]["default"]["content"]["application/json"]["schema"];
        if resolve(doc, error)["properties"]["meta"].is_null() {
            out.push(format!("{at}: no error envelope as its default response"));
        }
        let params: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let in_path: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split('}').next())
            .collect();
        if params != in_path {
            out.push(format!(
                "{at}: path parameters {params:?}, path says {in_path:?}"
            ));
        }
        match op["operationId"].as_str() {
            Some(id) if ids.insert(id.to_string()) => {}
            id => out.push(format!("{at}: operationId {id:?} missing or not unique")),
        }
    }
    out
}

fn route_table() -> Vec<(String, String)> {
    im_dispatcher::api::route_list(true)
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

#[actix_web::test]
async fn every_route_of_the_route_table_is_documented_with_its_auth_and_errors() {
    let app = spawn_app(Backend::Memory).await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let routes = route_table();
    assert!(routes.len() >= 49, "the whole table: {}", routes.len());
    let found = problems(&doc, &routes);
    assert!(found.is_empty(), "{}", found.join("\n"));
    // Nothing documented that the service does not route.
    let routed: HashSet<_> = routes.iter().cloned().collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let key = (method.to_uppercase(), path.clone());
            assert!(routed.contains(&key), "documented but not routed: {key:?}");
        }
    }
    // The test bites: a document without one route fails it.
    let mut short = doc.clone();
    short["paths"].as_object_mut().unwrap().remove("/images");
    let found = problems(&short, &routes);
    assert_eq!(found, vec!["POST /images: not in the document".to_string()]);
}

#[actix_web::test]
async fn the_documented_auth_and_bodies_are_the_handlers() {
    let app = spawn_app(Backend::Memory).await;
    let doc = document(&app).await;
    let op = |m: &str, p: &str| doc["paths"][p][m].clone();
    assert_eq!(
        op("post", "/auth/grant")["security"],
        json!([{"server": []}])
    );
    assert_eq!(op("get", "/messages")["security"], json!([{"client": []}]));
    assert_eq!(op("get", "/images/{name}")["security"], json!([{}]));
    assert_eq!(
        op("post", "/v2/device/bind")["operationId"],
        "device_bind_v2"
    );
    let grant = &op("post", "/auth/grant")["requestBody"]["content"]["application/json"];
    let grant = resolve(&doc, &grant["schema"]);
    assert_eq!(grant["required"], json!(["uid"]));
    let fields: Vec<_> = grant["properties"].as_object().unwrap().keys().collect();
    assert_eq!(fields, ["uid", "user_name"], "GrantBody's fields");
    let bind = &op("post", "/device/bind")["requestBody"]["content"]["application/json"];
    let bind = resolve(&doc, &bind["schema"]);
    for provider in im_dispatcher::domain::PushProvider::ALL {
        assert!(
            bind["properties"][provider.token_field()].is_object(),
            "{bind}"
        );
    }
    let upload = &op("post", "/images")["requestBody"]["content"];
    assert!(upload["image/png"].is_object() && upload["image/jpeg"].is_object());
    let form = &op("post", "/v2/images")["requestBody"]["content"]["multipart/form-data"];
    assert_eq!(resolve(&doc, &form["schema"])["required"], json!(["file"]));
    let error = resolve(&doc, &doc["components"]["schemas"]["ErrorBody"]);
    let meta = resolve(&doc, &error["properties"]["meta"]);
    let keys: BTreeSet<_> = meta["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let real = app
        .call("POST", "/auth/grant", Some(&app.auth_a()), None)
        .await;
    let got: BTreeSet<_> = real.body["meta"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, got, "the error envelope as documented");
}

/// The documented schema of `data` in the 200 answer of `method path`.
fn data_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let ok = &doc["paths"][path][method]["responses"]["200"]["content"]["application/json"];
    resolve(doc, &resolve(doc, &ok["schema"])["properties"]["data"])
}

/// The keys of a real answer's `data` are the documented properties (optional ones may be
/// absent) and include every required one.
#[track_caller]
fn conforms(doc: &Value, method: &str, path: &str, data: &Value) {
    let mut schema = data_schema(doc, method, path);
    let mut data = data;
    if schema["type"] == "array" {
        schema = resolve(doc, &schema["items"]);
        data = &data[0];
    }
    let documented: BTreeSet<&str> = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path}: data has no documented properties: {schema}"))
        .keys()
        .map(String::as_str)
        .collect();
    let got: BTreeSet<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        got.is_subset(&documented),
        "{method} {path}: {got:?} vs documented {documented:?}"
    );
    for r in schema["required"].as_array().into_iter().flatten() {
        assert!(
            got.contains(r.as_str().unwrap()),
            "{method} {path}: {r} missing from {data}"
        );
    }
}

#[actix_web::test]
async fn real_answers_have_the_documented_shapes() {
    let (mut s, _) = test_settings(Backend::Memory);
    s.apps[0].store_id = 100;
    let app = spawn_with(s, None).await;
    let doc = document(&app).await;
    let token = app.grant(1).await;
    let bearer = format!("Bearer {token}");
    let check = |m: &'static str, p: &'static str, res: Res| {
        conforms(&doc, m, p, res.data());
    };
    check(
        "post",
        "/auth/grant",
        app.post("/auth/grant", json!({"uid": 2})).await,
    );
    check(
        "post",
        "/messages/peers",
        app.post(
            "/messages/peers",
            json!({"sender": 2, "receiver": 1, "content": "x"}),
        )
        .await,
    );
    check(
        "post",
        "/messages/notifications",
        app.post(
            "/messages/notifications",
            json!({"receiver": 1, "content": "x"}),
        )
        .await,
    );
    check(
        "get",
        "/messages",
        app.call("GET", "/messages", Some(&bearer), None).await,
    );
    check(
        "get",
        "/messages/offline",
        app.get("/messages/offline?uid=1").await,
    );
    check(
        "post",
        "/messages/dequeue",
        app.call("POST", "/messages/dequeue", Some(&bearer), None)
            .await,
    );
    let bind = json!({"apns_device_token": "t"});
    check(
        "post",
        "/users/{uid}/unbind",
        app.post("/users/1/unbind", bind).await,
    );
    let group = app
        .post(
            "/groups",
            json!({"master": 1, "name": "g", "members": [2, 3]}),
        )
        .await;
    let gid = group.data()["group_id"].clone();
    check("post", "/groups", group);
    check(
        "get",
        "/groups/{gid}",
        app.get(&format!("/groups/{gid}")).await,
    );
    check(
        "post",
        "/groups/{gid}/members",
        app.post(&format!("/groups/{gid}/members"), json!([4]))
            .await,
    );
    check(
        "post",
        "/groups/{gid}/upgrade",
        app.post(&format!("/groups/{gid}/upgrade"), json!({})).await,
    );
    let (leave, auth) = (format!("/groups/{gid}/members/4"), app.auth_a());
    let leave = app.call("DELETE", &leave, Some(&auth), None).await;
    check("delete", "/groups/{gid}/members/{mid}", leave);
    check(
        "post",
        "/stores/{store_id}/supporters",
        app.post("/stores/100/supporters", json!({"uid": 9, "name": "n"}))
            .await,
    );
    check(
        "get",
        "/stores/{store_id}/supporters",
        app.get("/stores/100/supporters").await,
    );
    let customer = app
        .call(
            "POST",
            "/auth/customer",
            None,
            Some(json!({"appid": APP_A, "customer_id": "c"})),
        )
        .await;
    let ct = format!("Bearer {}", customer.data()["token"].as_str().unwrap());
    check("post", "/auth/customer", customer);
    check(
        "get",
        "/supporters",
        app.call("GET", "/supporters?store_id=100", Some(&ct), None)
            .await,
    );
    check(
        "get",
        "/healthz",
        app.call("GET", "/healthz", None, None).await,
    );
    check(
        "get",
        "/readyz",
        app.call("GET", "/readyz", None, None).await,
    );
    check(
        "delete",
        "/auth/tokens/{uid}",
        app.call("DELETE", "/auth/tokens/2", Some(&app.auth_a()), None)
            .await,
    );
    let png = super::media::picture(2, 2, image::ImageFormat::Png);
    let up = super::media::upload_raw(&app, &token, "/images", "image/png", &png).await;
    let up = up.json();
    conforms(&doc, "post", "/images", &up["data"]);
    let answer =
        &doc["paths"]["/images"]["post"]["responses"]["200"]["content"]["application/json"];
    let top: BTreeSet<_> = resolve(&doc, &answer["schema"])["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let got: BTreeSet<_> = up.as_object().unwrap().keys().cloned().collect();
    assert_eq!(top, got, "the upload answer's top level");
}
