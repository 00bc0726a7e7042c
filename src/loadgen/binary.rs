//! The binary-protocol side of a simulated user (`--binary`): a token, a TCP connection (or a
//! tokenless `/ws`), AUTH_TOKEN in version 2 as the native SDKs send it, then every IM /
//! GROUP_IM body's content accounted like a JSON `message`. Written from the protocol
//! reference, independent of the server's codec.

use std::time::Instant;

use actix_codec::Framed;
use awc::ws::{Frame, Message};
use bytes::{Buf, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::payload::Payload;
use super::pool::Worker;
use super::seen::Seen;
use super::shared::BinaryTarget;
use super::ws::{counted, delivered, dropped, token};

const AUTH_STATUS: u8 = 3;
const IM: u8 = 4;
const GROUP_IM: u8 = 8;
const AUTH_TOKEN: u8 = 15;
const VERSION: u8 = 2;

/// One open binary-protocol connection.
pub enum BinConn {
    Tcp(TcpStream, BytesMut),
    Ws(Framed<awc::BoxedSocket, awc::ws::Codec>),
}

/// One frame: (cmd, body).
type Got = (u8, Vec<u8>);

impl BinConn {
    async fn write(&mut self, frame: Vec<u8>) -> Result<(), String> {
        match self {
            BinConn::Tcp(io, _) => io.write_all(&frame).await.map_err(|e| e.to_string()),
            BinConn::Ws(ws) => ws
                .send(Message::Binary(frame.into()))
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// The next frame; `Err` when the connection ended.
    async fn next(&mut self) -> Result<Got, String> {
        match self {
            BinConn::Tcp(io, buf) => loop {
                if buf.len() >= 12 {
                    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    let len = usize::try_from(len).map_err(|_| "a negative length".to_string())?;
                    if buf.len() >= 12 + len {
                        let cmd = buf[8];
                        buf.advance(12);
                        let body = buf.split_to(len).to_vec();
                        return Ok((cmd, body));
                    }
                }
                buf.reserve(8 * 1024);
                if io.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
                    return Err("connection ended".into());
                }
            },
            BinConn::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Frame::Binary(b))) if b.len() >= 12 => {
                        return Ok((b[8], b[12..].to_vec()));
                    }
                    Some(Ok(Frame::Ping(p))) => {
                        let _ = ws.send(Message::Pong(p)).await;
                    }
                    Some(Ok(Frame::Close(r))) => {
                        return Err(format!("closed by the server: {r:?}"));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("connection error: {e}")),
                    None => return Err("connection ended".into()),
                }
            },
        }
    }
}

/// AUTH_TOKEN: platform, token, device id.
fn auth_frame(platform: u8, token: &str, device: &str) -> Vec<u8> {
    let mut body = vec![platform, token.len() as u8];
    body.extend_from_slice(token.as_bytes());
    body.push(device.len() as u8);
    body.extend_from_slice(device.as_bytes());
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&1i32.to_be_bytes());
    f.extend_from_slice(&[AUTH_TOKEN, VERSION, 0, 0]);
    f.extend_from_slice(&body);
    f
}

async fn open(w: &Worker, uid: u64, token: &str, platform: u8) -> Result<BinConn, String> {
    let shared = &w.shared;
    let _permit = shared
        .connect_gate
        .acquire()
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let timeout = shared.timeout;
    let connect = async {
        let mut conn = match shared.binary {
            Some(BinaryTarget::Tcp(addr)) => {
                let io = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("tcp {addr}: {e}"))?;
                let _ = io.set_nodelay(true);
                BinConn::Tcp(io, BytesMut::new())
            }
            _ => {
                let url = format!("{}/ws", shared.ws_base(uid));
                let (_, framed) = w
                    .clients
                    .ws(uid)
                    .ws(url)
                    .connect()
                    .await
                    .map_err(|e| format!("ws upgrade: {e}"))?;
                BinConn::Ws(framed)
            }
        };
        conn.write(auth_frame(platform, token, &format!("lg{uid}")))
            .await?;
        match conn.next().await? {
            (AUTH_STATUS, body) if body == [0, 0, 0, 0] => Ok(conn),
            (cmd, body) => Err(format!("expected AUTH_STATUS 0, got cmd {cmd} {body:?}")),
        }
    };
    let conn = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| format!("binary auth: no answer within {timeout:?}"))??;
    let micros = started.elapsed().as_micros() as u64;
    w.stats.borrow_mut().connect.saturating_record(micros);
    Ok(conn)
}

/// Token + connection + AUTH_STATUS for `uid`; failures are counted and kept as samples.
pub async fn connect(w: &Worker, uid: u64, platform: u8) -> Option<BinConn> {
    let result = match token(w, uid).await {
        Ok(t) => open(w, uid, &t, platform).await,
        Err(e) => Err(e),
    };
    counted(w, result)
}

/// Reads frames until the run stops or the server ends the connection.
pub async fn receive(w: &Worker, mut conn: BinConn) {
    let mut stop = w.shared.stop.clone();
    let stopped = stop.wait_for(|s| *s); // made once, as in `ws::receive`
    tokio::pin!(stopped);
    let mut seen = Seen::default();
    loop {
        tokio::select! {
            biased;
            got = conn.next() => match got {
                Ok((IM | GROUP_IM, body)) => {
                    // v2 layout: sender, receiver, timestamp, msgid, then the content.
                    let payload = body
                        .get(24..)
                        .and_then(|c| std::str::from_utf8(c).ok())
                        .and_then(Payload::decode);
                    delivered(w, &mut seen, payload);
                }
                Ok(_) => {}
                Err(e) => return dropped(w, e),
            },
            _ = &mut stopped => return,
        }
    }
}
