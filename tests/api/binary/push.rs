//! A binary send takes the push path of every send: an offline receiver gets a push job; a
//! receiver online on a binary mobile connection does not.

use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::Value;

use super::client::*;
use crate::helpers::*;

async fn push_queue(app: &TestApp, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let items: Vec<String> = app.redis().lrange("push_queue", 0, -1).unwrap_or_default();
        if items.len() >= n || Instant::now() > deadline {
            return items
                .iter()
                .filter_map(|s| serde_json::from_str(s).ok())
                .collect();
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn a_binary_send_is_pushed_to_an_offline_receiver_only() {
    let app = crate::push::push_app().await;
    app.bind_token(2).await;
    app.bind_token(3).await;
    let mut three = Client::online(&app, 3, Over::Tcp, 2).await; // Android: online
    let mut one = Client::online(&app, 1, Over::Tcp, 2).await;
    one.im(IM, 1, 3, 0, "you are online").await;
    one.until(ACK).await;
    three.until(SYNC_NOTIFY).await;
    one.im(IM, 1, 2, 0, "to the offline one").await;
    one.until(ACK).await;
    let q = push_queue(&app, 1).await;
    let contents: Vec<&str> = q.iter().filter_map(|j| j["content"].as_str()).collect();
    assert_eq!(contents, ["to the offline one"], "{q:?}");
    assert_eq!(q[0]["receiver"], 2);
}
