//! A GoBelieve binary-protocol client written from the reference (gobelieve-protocol.md),
//! independent of the server's codec: frames are built and read byte by byte here, over TCP
//! (a stream of frames) or a WebSocket (one frame per binary message).

use std::time::Duration;

use actix_codec::Framed;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, WAIT};

pub const AUTH_STATUS: u8 = 3;
pub const IM: u8 = 4;
pub const ACK: u8 = 5;
pub const GROUP_NOTIFICATION: u8 = 7;
pub const GROUP_IM: u8 = 8;
pub const PING: u8 = 13;
pub const PONG: u8 = 14;
pub const AUTH_TOKEN: u8 = 15;
pub const RT: u8 = 17;
pub const ENTER_ROOM: u8 = 18;
pub const LEAVE_ROOM: u8 = 19;
pub const ROOM_IM: u8 = 20;
pub const SYSTEM: u8 = 21;
pub const UNREAD_COUNT: u8 = 22;
pub const SYNC: u8 = 26;
pub const SYNC_BEGIN: u8 = 27;
pub const SYNC_END: u8 = 28;
pub const SYNC_NOTIFY: u8 = 29;
pub const SYNC_GROUP: u8 = 30;
pub const SYNC_GROUP_BEGIN: u8 = 31;
pub const SYNC_GROUP_END: u8 = 32;
pub const SYNC_GROUP_NOTIFY: u8 = 33;
pub const SYNC_KEY: u8 = 34;
pub const GROUP_SYNC_KEY: u8 = 35;
pub const NOTIFICATION: u8 = 36;
pub const METADATA: u8 = 37;

pub const SELF: u8 = 0x08;
pub const PUSH: u8 = 0x10;
pub const SUPER_GROUP: u8 = 0x20;

/// One server frame as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub seq: i32,
    pub cmd: u8,
    pub version: u8,
    pub flag: u8,
    pub body: Vec<u8>,
}

impl Got {
    pub fn i64_at(&self, at: usize) -> i64 {
        i64::from_be_bytes(
            self.body[at..at + 8]
                .try_into()
                .unwrap_or_else(|_| panic!("{self:?}")),
        )
    }
    pub fn i32_at(&self, at: usize) -> i32 {
        i32::from_be_bytes(
            self.body[at..at + 4]
                .try_into()
                .unwrap_or_else(|_| panic!("{self:?}")),
        )
    }
}

enum Link {
    Tcp(TcpStream),
    Ws(Framed<awc::BoxedSocket, awc::ws::Codec>),
}

pub struct Client {
    link: Link,
    /// The version byte this client writes.
    pub version: u8,
    seq: i32,
}

/// The transports a test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Tcp,
    Ws,
}

impl Client {
    pub async fn connect(app: &TestApp, over: Over, version: u8) -> Client {
        let link = match over {
            Over::Tcp => {
                let addr = app
                    .binary_addr
                    .unwrap_or_else(|| panic!("no binary listener"));
                Link::Tcp(
                    TcpStream::connect(addr)
                        .await
                        .unwrap_or_else(|e| panic!("{e}")),
                )
            }
            Over::Ws => {
                // As the JS SDK: no token, no subprotocol, no query string.
                let (_, framed) = awc::Client::new()
                    .ws(format!("ws://{}/ws", app.addr))
                    .connect()
                    .await
                    .unwrap_or_else(|e| panic!("ws connect: {e}"));
                Link::Ws(framed)
            }
        };
        Client {
            link,
            version,
            seq: 0,
        }
    }

    /// Connects and authenticates with a fresh token of `uid`; returns the AUTH_STATUS frame.
    pub async fn online(app: &TestApp, uid: u64, over: Over, version: u8) -> Client {
        let token = app.grant(uid).await;
        let mut c = Client::connect(app, over, version).await;
        c.auth(2, &token, &format!("device-{uid}")).await;
        let st = c.recv().await;
        assert_eq!((st.cmd, st.i32_at(0)), (AUTH_STATUS, 0), "{st:?}");
        assert_eq!(
            st.version, version,
            "AUTH_STATUS 0 carries the client's version"
        );
        c
    }

    /// Writes one frame with the next client seq; returns that seq.
    pub async fn send(&mut self, cmd: u8, flag: u8, body: &[u8]) -> i32 {
        self.seq += 1;
        let mut f = Vec::with_capacity(12 + body.len());
        f.extend_from_slice(&(body.len() as i32).to_be_bytes());
        f.extend_from_slice(&self.seq.to_be_bytes());
        f.extend_from_slice(&[cmd, self.version, flag, 0]);
        f.extend_from_slice(body);
        self.send_raw(&f).await;
        self.seq
    }

    /// Writes bytes as they are (one WebSocket message on a WebSocket). False once closed.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> bool {
        match &mut self.link {
            Link::Tcp(io) => io.write_all(bytes).await.is_ok(),
            Link::Ws(ws) => ws
                .send(awc::ws::Message::Binary(bytes.to_vec().into()))
                .await
                .is_ok(),
        }
    }

    pub async fn auth(&mut self, platform: u8, token: &str, device: &str) -> i32 {
        let mut b = vec![platform, token.len() as u8];
        b.extend_from_slice(token.as_bytes());
        b.push(device.len() as u8);
        b.extend_from_slice(device.as_bytes());
        self.send(AUTH_TOKEN, 0, &b).await
    }

    /// IM or GROUP_IM in this client's version's layout.
    pub async fn im(&mut self, cmd: u8, sender: u64, receiver: u64, msgid: i32, text: &str) -> i32 {
        let mut b = Vec::new();
        b.extend_from_slice(&(sender as i64).to_be_bytes());
        b.extend_from_slice(&(receiver as i64).to_be_bytes());
        if self.version > 0 {
            b.extend_from_slice(&0i32.to_be_bytes());
        }
        b.extend_from_slice(&msgid.to_be_bytes());
        b.extend_from_slice(text.as_bytes());
        self.send(cmd, 0, &b).await
    }

    pub async fn key(&mut self, cmd: u8, key: u64) -> i32 {
        self.send(cmd, 0, &(key as i64).to_be_bytes()).await
    }

    pub async fn group_key(&mut self, cmd: u8, gid: u64, key: u64) -> i32 {
        let mut b = (gid as i64).to_be_bytes().to_vec();
        b.extend_from_slice(&(key as i64).to_be_bytes());
        self.send(cmd, 0, &b).await
    }

    /// The next frame, or `None` when the server closed the connection (or nothing came).
    pub async fn next(&mut self, within: Duration) -> Option<Got> {
        let raw = match &mut self.link {
            Link::Tcp(io) => {
                let mut h = [0u8; 12];
                tokio::time::timeout(within, io.read_exact(&mut h))
                    .await
                    .ok()?
                    .ok()?;
                let len = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
                let mut body = vec![0u8; usize::try_from(len).ok()?];
                tokio::time::timeout(within, io.read_exact(&mut body))
                    .await
                    .ok()?
                    .ok()?;
                [h.to_vec(), body].concat()
            }
            Link::Ws(ws) => loop {
                match tokio::time::timeout(within, ws.next()).await.ok()?? {
                    Ok(awc::ws::Frame::Binary(b)) => break b.to_vec(),
                    Ok(awc::ws::Frame::Ping(_) | awc::ws::Frame::Pong(_)) => continue,
                    Ok(other) => {
                        assert!(matches!(other, awc::ws::Frame::Close(_)), "{other:?}");
                        return None;
                    }
                    Err(_) => return None,
                }
            },
        };
        let len = i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        assert_eq!(raw.len(), 12 + len as usize, "one frame per message, whole");
        assert_eq!(raw[11], 0, "reserved byte");
        Some(Got {
            seq: i32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
            cmd: raw[8],
            version: raw[9],
            flag: raw[10],
            body: raw[12..].to_vec(),
        })
    }

    pub async fn recv(&mut self) -> Got {
        self.next(WAIT).await.unwrap_or_else(|| panic!("no frame"))
    }

    /// Frames up to and including the first with `cmd`.
    pub async fn until(&mut self, cmd: u8) -> Vec<Got> {
        let mut out = Vec::new();
        loop {
            let f = self.recv().await;
            let done = f.cmd == cmd;
            out.push(f);
            if done {
                return out;
            }
        }
    }

    /// Asserts nothing arrives for `d`.
    pub async fn silence(&mut self, d: Duration) {
        if let Some(f) = self.next(d).await {
            panic!("unexpected frame {f:?}");
        }
    }

    /// True if the server closed the connection within `WAIT` (frames before it are skipped).
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if self.next(WAIT).await.is_none() {
                return true;
            }
        }
        false
    }
}

/// The IM fields of a frame in `version`'s layout: (sender, receiver, timestamp, msgid, text).
pub fn im_fields(f: &Got, version: u8) -> (i64, i64, Option<i32>, i32, String) {
    let (ts, msgid, text_at) = if version == 0 {
        (None, f.i32_at(16), 20)
    } else {
        (Some(f.i32_at(16)), f.i32_at(20), 24)
    };
    let text = String::from_utf8(f.body[text_at..].to_vec()).unwrap_or_else(|e| panic!("{e}"));
    (f.i64_at(0), f.i64_at(8), ts, msgid, text)
}

/// METADATA's (sync_key, prev_sync_key), asserting its 32-byte layout.
pub fn metadata(f: &Got) -> (i64, i64) {
    assert_eq!(f.cmd, METADATA, "{f:?}");
    assert_eq!(f.body.len(), 32, "{f:?}");
    assert_eq!(&f.body[16..], &[0u8; 16]);
    (f.i64_at(0), f.i64_at(8))
}

/// A field of user `uid`'s hash `users_<appid>_<uid>` (redis-backed apps), where the original
/// kept sync keys and unread counts.
pub fn user_field(app: &TestApp, uid: u64, field: &str) -> String {
    redis::cmd("HGET")
        .arg(format!("users_{}_{uid}", crate::helpers::APP_A))
        .arg(field)
        .query(&mut app.redis())
        .unwrap_or_else(|e| panic!("{e}"))
}
