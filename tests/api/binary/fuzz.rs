//! Bad and fuzzed binary frames: each closes the connection (or is answered) as the original
//! does, never panics the server, and leaves no connection behind.

use std::time::Duration;

use super::client::*;
use crate::helpers::*;

/// Every connection the server counted has been let go.
async fn no_connection_left(app: &TestApp) {
    let d = &app.state.dispatcher;
    for _ in 0..100 {
        if d.connection_count() == 0 && d.hub_connections() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "connections left: {} counted, {} in hubs",
        d.connection_count(),
        d.hub_connections()
    );
}

fn header(len: i32, cmd: u8, version: u8) -> Vec<u8> {
    let mut h = len.to_be_bytes().to_vec();
    h.extend_from_slice(&1i32.to_be_bytes());
    h.extend_from_slice(&[cmd, version, 0, 0]);
    h
}

#[actix_web::test]
async fn bad_frames_close_the_connection() {
    let app = spawn_app(Backend::Memory).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown command", header(0, 99, 1)),
        (
            "a server-only command",
            [header(4, AUTH_STATUS, 1), vec![0; 4]].concat(),
        ),
        (
            "a 32 KiB body",
            [header(32_768, IM, 1), vec![0; 32_768]].concat(),
        ),
        ("a negative length", header(-1, PING, 1)),
        ("a PING with a body", [header(1, PING, 1), vec![0]].concat()),
        ("a short SYNC", [header(3, SYNC, 1), vec![0; 3]].concat()),
        (
            "a short METADATA",
            [header(8, METADATA, 1), vec![0; 8]].concat(),
        ),
        (
            "an AUTH_TOKEN past its body",
            [header(4, AUTH_TOKEN, 1), vec![2, 9, 0, 0]].concat(),
        ),
    ];
    for over in [Over::Tcp, Over::Ws] {
        for (what, bytes) in &cases {
            let mut c = Client::connect(&app, over, 1).await;
            c.send_raw(bytes).await;
            assert!(c.closed().await, "{what} over {over:?} must close");
        }
        // A WebSocket message shorter than its header says.
        let mut c = Client::connect(&app, over, 1).await;
        c.send_raw(&[header(10, SYNC, 1), vec![0; 4]].concat())
            .await;
        if over == Over::Ws {
            assert!(c.closed().await, "a truncated WebSocket frame must close");
        }
    }
    // Over TCP a truncated frame waits for the rest; the client hanging up ends it.
    let mut c = Client::connect(&app, Over::Tcp, 1).await;
    c.send_raw(&header(100, IM, 1)[..7]).await;
    drop(c);
    no_connection_left(&app).await;
    // The server still serves.
    let mut c = Client::connect(&app, Over::Tcp, 1).await;
    c.send(PING, 0, &[]).await;
    assert_eq!(c.recv().await.cmd, PONG);
}

/// A small xorshift: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random frame: mostly whitelisted commands with random bodies, some lying about their
/// length, some unknown commands, some huge.
fn random_frame(r: &mut Rng, token: &str) -> Vec<u8> {
    const CMDS: [u8; 22] = [
        4, 5, 8, 13, 14, 15, 17, 18, 19, 20, 22, 24, 25, 26, 30, 34, 35, 37, 64, 3, 99, 255,
    ];
    let cmd = CMDS[r.below(CMDS.len() as u64) as usize];
    let version = r.below(4) as u8;
    let mut body: Vec<u8> = (0..r.below(48)).map(|_| r.next() as u8).collect();
    if cmd == 15 && r.below(2) == 0 {
        body = vec![2, token.len() as u8];
        body.extend_from_slice(token.as_bytes());
        body.push(0);
    }
    let len = match r.below(8) {
        0 => body.len() as i32 + 1 + r.below(64) as i32, // past the body
        1 => 32_768 + r.below(1000) as i32,
        2 => -(r.below(5) as i32) - 1,
        _ => body.len() as i32,
    };
    [header(len, cmd, version), body].concat()
}

#[actix_web::test]
async fn fuzzed_frames_never_panic_or_leak() {
    let app = spawn_app(Backend::Memory).await;
    let token = app.grant(1).await;
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    for case in 0..150 {
        let over = if case % 3 == 0 { Over::Ws } else { Over::Tcp };
        let mut c = Client::connect(&app, over, 1).await;
        for _ in 0..1 + r.below(4) {
            if !c.send_raw(&random_frame(&mut r, &token)).await {
                break;
            }
        }
        // Whatever it answered, it either still serves this connection or closed it.
        c.send(PING, 0, &[]).await;
        loop {
            match c.next(Duration::from_millis(500)).await {
                Some(f) if f.cmd == PONG => break,
                Some(_) => continue,
                None => break,
            }
        }
        drop(c);
    }
    no_connection_left(&app).await;
    let mut c = Client::online(&app, 2, Over::Tcp, 2).await;
    c.send(PING, 0, &[]).await;
    assert_eq!(
        c.recv().await.cmd,
        PONG,
        "the server still serves after the fuzz"
    );
}
