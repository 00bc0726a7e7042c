//! CUSTOMER_V2 between a customer and their assigned supporter, over the binary protocol.

use super::client::*;
use crate::helpers::*;

const CUSTOMER_V2: u8 = 64;

/// sender_appid, sender, receiver_appid, receiver, timestamp, content.
fn customer_body(app: u64, sender: u64, receiver: u64, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [app, sender, app, receiver] {
        b.extend_from_slice(&(v as i64).to_be_bytes());
    }
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(text.as_bytes());
    b
}

#[actix_web::test]
async fn a_customer_and_their_supporter_talk_with_customer_v2() {
    let app = help_desk_app().await;
    let (token, customer) = customer_with_supporter(&app).await;
    let bearer = format!("Bearer {token}");
    app.call(
        "GET",
        &format!("/supporters?store_id={HELP_DESK}"),
        Some(&bearer),
        None,
    )
    .await
    .data();
    let mut agent = Client::online(&app, 500, Over::Tcp, 2).await;
    let mut shopper = Client::connect(&app, Over::Ws, 1).await;
    shopper.auth(3, &token, "").await;
    assert_eq!(shopper.recv().await.i32_at(0), 0, "AUTH_STATUS 0");
    let seq = shopper
        .send(
            CUSTOMER_V2,
            0,
            &customer_body(APP_A, customer, 500, "help?"),
        )
        .await;
    let frames = shopper.until(ACK).await;
    assert_eq!(metadata(&frames[0]).0, 1);
    assert_eq!(frames[1].body, seq.to_be_bytes(), "v1: 4-byte ACK");
    let meta = agent.recv().await;
    let got = agent.recv().await;
    assert_eq!(
        (got.cmd, got.flag, got.seq),
        (CUSTOMER_V2, PUSH, meta.seq + 1)
    );
    assert_eq!(
        (got.i64_at(0), got.i64_at(8), got.i64_at(16), got.i64_at(24)),
        (APP_A as i64, customer as i64, APP_A as i64, 500)
    );
    assert_eq!(&got.body[36..], b"help?", "36-byte prefix, no msgid");
    // A customer may not send anything else: a peer IM is dropped without an ACK.
    shopper.im(IM, customer, 500, 0, "peer?").await;
    shopper.send(PING, 0, &[]).await;
    let frames = shopper.until(PONG).await;
    assert!(frames.iter().all(|f| f.cmd != ACK), "{frames:?}");
}
