//! One JSON-protocol WebSocket connection (SPEC §5): registered before the upgrade is
//! answered, then run by the shared socket loop (`socket.rs`); its frames are handled in
//! `inbound.rs` (WebSocket framing), `requests.rs` and `send.rs`.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::frame;
use super::outbox::{Frame, Outbox};
use super::socket::{self, Peer};
use super::wire::Wire;
use super::{ConnectionSlot, DispatchError, Dispatcher, Registration};
use crate::domain::{Platform, UserKey};
use crate::store::device_key;

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub user: UserKey,
    /// The user's app: its send budget applies to WebSocket sends too.
    pub app: Arc<crate::apps::App>,
    pub platform: Platform,
    pub device_id: String,
    /// A customer (`POST /auth/customer`): may only send `kind: "customer"` to their supporter.
    pub customer: bool,
}

impl ConnectionInfo {
    /// The connection of `user`'s device `device_id` on `platform`.
    pub fn new(
        user: UserKey,
        app: Arc<crate::apps::App>,
        platform: Platform,
        device_id: String,
        customer: bool,
    ) -> ConnectionInfo {
        ConnectionInfo {
            user,
            app,
            platform,
            device_id,
            customer,
        }
    }

    /// This device's tag (`App::device_tag`), which its peer and customer messages carry.
    /// Computed when needed rather than kept: a connection's task is allocated in size classes,
    /// and a kept tag grew every idle connection by ~860 B (`scripts/bench idle`).
    pub fn device_tag(&self) -> Option<String> {
        self.app
            .device_tag(self.user.uid, self.platform.0, &self.device_id)
    }
}

/// A connection registered with its session, waiting for the 101 to be written.
pub struct Accepted {
    conn: Connection,
}

impl Dispatcher {
    /// Registers a WebSocket before the upgrade is answered (so a refusal can still be an HTTP
    /// error); its `hello` is queued ahead of everything else.
    pub async fn accept(&self, info: ConnectionInfo) -> Result<Accepted, DispatchError> {
        let limits = self.limits();
        let slot = self.connection_slot()?;
        let outbox = Outbox::new(limits.outbound_queue);
        let (registration, hello_seq) = self
            .register(info.user, info.platform, outbox.clone(), |seq| {
                Frame::Text(frame::hello(
                    info.user.app,
                    info.user.uid,
                    seq,
                    info.device_tag().as_deref(),
                ))
            })
            .await?;
        Ok(Accepted {
            conn: Connection {
                _slot: slot,
                dispatcher: self.clone(),
                device: device_key(info.platform.0, &info.device_id),
                info,
                registration,
                hello_seq,
                outbox,
                bad_frames: 0,
                bad_window: Instant::now(),
                fragments: None,
            },
        })
    }
}

impl Accepted {
    /// Runs the connection on the current (connection) thread: `io` is the upgraded socket,
    /// `read` what was already read past the handshake.
    pub fn run(self, io: TcpStream, read: BytesMut) {
        actix_web::rt::spawn(socket::run(Peer::Json(self.conn), io, read, Wire::JSON_WS));
    }

    /// The upgrade could not be answered: unregister. (Dropping an `Accepted` unregisters too,
    /// without waiting for the session.)
    pub async fn abandon(mut self) {
        self.conn.registration.release().await;
    }
}

pub(super) struct Connection {
    /// Counts this connection against `limits.ws_max_connections` until dropped.
    _slot: ConnectionSlot,
    pub(super) dispatcher: Dispatcher,
    pub(super) info: ConnectionInfo,
    /// `<platform>:<device_id>`: whose acknowledged position `ack` moves.
    pub(super) device: String,
    /// The connection's id; unregisters the connection when it ends, however it ends.
    pub(super) registration: Registration,
    /// Live frames start after this seq; `sync` covers up to it.
    pub(super) hello_seq: u64,
    pub(super) outbox: Arc<Outbox>,
    /// Bad frames in the current one-minute window.
    pub(super) bad_frames: u32,
    pub(super) bad_window: Instant,
    /// A fragmented text message being received.
    pub(super) fragments: Option<BytesMut>,
}
