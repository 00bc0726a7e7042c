//! The original's client API beyond media (reference §4.0, §4.4): the `/v2` aliases of the
//! endpoints it mounted twice, `POST /messages/dequeue` and `GET /messages?store=`.

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn the_v2_aliases_answer_as_the_endpoints_they_alias() {
    let app = help_desk_app().await;
    let token = app.grant(1).await;
    let bearer = format!("Bearer {token}");
    let bind = json!({"apns_device_token": "tok-v2"});
    app.call("POST", "/v2/device/bind", Some(&bearer), Some(bind.clone()))
        .await
        .data();
    let res = app
        .call("POST", "/device/unbind", Some(&bearer), Some(bind.clone()))
        .await;
    assert_eq!(res.data()["removed"], 1, "bound through the alias");
    app.call("POST", "/device/bind", Some(&bearer), Some(bind.clone()))
        .await
        .data();
    let res = app
        .call("POST", "/v2/device/unbind", Some(&bearer), Some(bind))
        .await;
    assert_eq!(res.data()["removed"], 1, "unbound through the alias");
    app.call("POST", "/v2/device/bind", None, Some(json!({})))
        .await
        .assert_error(401, "unauthorized");

    let (customer, _) = customer_with_supporter(&app).await;
    let customer = format!("Bearer {customer}");
    let path = format!("/supporters?store_id={HELP_DESK}");
    let plain = app.call("GET", &path, Some(&customer), None).await;
    let v2 = app
        .call("GET", &format!("/v2{path}"), Some(&customer), None)
        .await;
    assert_eq!(plain.data()["seller_id"], 500);
    assert_eq!(v2.data(), plain.data());
    app.call("DELETE", "/v2/supporters", Some(&customer), None)
        .await
        .assert_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn dequeue_is_a_successful_no_op_for_old_clients() {
    let app = spawn_app(Backend::Memory).await;
    let token = app.grant(1).await;
    let bearer = format!("Bearer {token}");
    let res = app
        .call(
            "POST",
            "/messages/dequeue",
            Some(&bearer),
            Some(json!({"msgid": 12})),
        )
        .await;
    assert_eq!(res.data(), &json!({"success": true}));
    let res = app
        .raw("POST", "/messages/dequeue", Some(&bearer), b"")
        .await;
    assert_eq!(res.data(), &json!({"success": true}), "no body needed");
    app.call("POST", "/messages/dequeue", None, None)
        .await
        .assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn history_with_store_lists_only_that_help_desks_customer_messages() {
    let app = help_desk_app().await;
    let (token, uid) = customer_with_supporter(&app).await;
    let bearer = format!("Bearer {token}");
    app.call(
        "GET",
        &format!("/supporters?store_id={HELP_DESK}"),
        Some(&bearer),
        None,
    )
    .await
    .data();
    app.post(
        "/messages/customers",
        json!({"sender": 500, "receiver": uid, "content": "how can I help?"}),
    )
    .await
    .data();
    app.post(
        "/messages/peers",
        json!({"sender": 9, "receiver": uid, "content": "a peer message"}),
    )
    .await
    .data();
    let all = app.call("GET", "/messages", Some(&bearer), None).await;
    assert_eq!(all.data().as_array().unwrap().len(), 2);
    let desk = app
        .call(
            "GET",
            &format!("/messages?store={HELP_DESK}"),
            Some(&bearer),
            None,
        )
        .await;
    let desk = desk.data().as_array().unwrap().clone();
    assert_eq!(desk.len(), 1, "{desk:?}");
    assert_eq!(desk[0]["kind"], "customer");
    assert_eq!(desk[0]["content"], "how can I help?");
    let other = app
        .call("GET", "/messages?store=200", Some(&bearer), None)
        .await;
    assert_eq!(other.data(), &json!([]), "another app's desk");
    app.call("GET", "/messages?store=abc", Some(&bearer), None)
        .await
        .assert_error(400, "invalid_query");
}
