//! One binary-protocol connection, over TCP or a WebSocket upgraded without a token. It starts
//! unauthenticated: PING is answered, AUTH_TOKEN resolves the token (`access_token_<token>`,
//! through the API's token check) and registers the connection like a JSON one, with
//! AUTH_STATUS as its first frame; every other command waits for that. Frames are handled
//! strictly one at a time, so the SYNC that clients pipeline behind AUTH_TOKEN is served
//! after it.

use std::sync::Arc;

use actix_http::ws::Frame as WsFrame;
use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use tokio::net::TcpStream;

use super::codec::{self, Bad, Command};
use super::{HEADER, Header, Out, cmd};
use crate::apps::App;
use crate::dispatch::outbox::{CloseReason, Frame, Outbox};
use crate::dispatch::socket::{self, Peer};
use crate::dispatch::transport::Inbound;
use crate::dispatch::wire::{Codec, Transport, Wire};
use crate::dispatch::{ConnectionInfo, ConnectionSlot, DispatchError, Dispatcher, Registration};
use crate::domain::{AppId, Platform, UserKey};
use crate::store::device_key;

/// Whose token it is: the user, their app, and whether they are a customer.
pub struct TokenOwner {
    pub user: UserKey,
    pub app: Arc<App>,
    pub customer: bool,
}

/// The API's token check, handed to binary connections (which authenticate after connecting).
pub type ResolveToken = Arc<dyn Fn(String) -> LocalBoxFuture<'static, Option<TokenOwner>>>;

/// An authenticated binary connection's identity.
pub(super) struct Authed {
    pub info: ConnectionInfo,
    /// `<platform>:<device_id>`: whose acknowledged position SYNC_KEY moves.
    pub device: String,
    /// Unregisters the connection when it ends, however it ends.
    pub registration: Registration,
}

pub struct BinaryConnection {
    /// Counts this connection against `limits.ws_max_connections` until dropped.
    _slot: ConnectionSlot,
    pub(in crate::dispatch) dispatcher: Dispatcher,
    pub(in crate::dispatch) outbox: Arc<Outbox>,
    resolve: ResolveToken,
    transport: Transport,
    /// Set by AUTH_TOKEN.
    pub(super) authed: Option<Authed>,
}

impl Dispatcher {
    /// A binary-protocol connection, not authenticated yet (it counts as a connection from
    /// here); `resolve` checks the token of its AUTH_TOKEN frame.
    pub fn accept_binary(
        &self,
        transport: Transport,
        resolve: ResolveToken,
    ) -> Result<BinaryConnection, DispatchError> {
        let slot = self.connection_slot()?;
        Ok(BinaryConnection {
            _slot: slot,
            dispatcher: self.clone(),
            outbox: Outbox::new(self.limits().outbound_queue),
            resolve,
            transport,
            authed: None,
        })
    }
}

impl BinaryConnection {
    /// Runs the connection on the current (connection) thread: `read` is what was read past
    /// a handshake.
    pub fn run(self, io: TcpStream, read: BytesMut) {
        let wire = Wire {
            transport: self.transport,
            codec: Codec::Binary {
                version: 0,
                seq: 0,
                app: AppId(0),
            },
        };
        actix_web::rt::spawn(socket::run(Peer::Binary(self), io, read, wire));
    }

    pub(in crate::dispatch) async fn release(&mut self) {
        if let Some(a) = &mut self.authed {
            a.registration.release().await;
        }
    }

    pub(super) fn reply(&self, out: Out) {
        self.outbox.push(Frame::Gob(out));
    }

    fn close(&self, reason: CloseReason, why: &str) {
        metrics::counter!("imd_binary_bad_frames_total").increment(1);
        tracing::debug!(why, "binary connection closed");
        self.outbox.close(reason, why.to_string());
    }

    pub(in crate::dispatch) async fn on_inbound(&mut self, msg: Inbound, wire: &mut Wire) {
        match msg {
            Inbound::Binary(frame) | Inbound::Ws(WsFrame::Binary(frame)) => {
                self.on_frame(&frame, wire).await
            }
            Inbound::Ws(WsFrame::Ping(data)) => {
                self.outbox.push(Frame::Pong(data));
            }
            Inbound::Ws(WsFrame::Pong(_)) => {}
            Inbound::Ws(WsFrame::Close(_)) => self.outbox.close(CloseReason::Normal, ""),
            Inbound::Ws(WsFrame::Text(_)) => self.close(
                CloseReason::Policy,
                "a text frame on a binary-protocol connection: JSON clients authenticate at the upgrade (Authorization: Bearer or ?token=)",
            ),
            Inbound::Ws(WsFrame::Continuation(_)) => self.close(
                CloseReason::Protocol,
                "fragmented messages are not part of the binary protocol",
            ),
        }
    }

    /// One binary frame: a WebSocket message holds exactly one (bytes after it are ignored,
    /// as the original does); a TCP frame arrives whole.
    async fn on_frame(&mut self, frame: &Bytes, wire: &mut Wire) {
        let Some(h) = Header::read(frame) else {
            return self.close(CloseReason::Protocol, "a frame shorter than its header");
        };
        let Some(len) = h.body_len() else {
            return self.close(CloseReason::TooBig, "a body length outside 0..32768");
        };
        let Some(body) = frame.get(HEADER..HEADER + len) else {
            return self.close(CloseReason::Protocol, "a body shorter than its header says");
        };
        match codec::decode(&h, body) {
            Ok(command) => self.command(&h, command, wire).await,
            Err(Bad::Command(c)) => {
                self.close(CloseReason::Policy, &format!("command {c} is not accepted"))
            }
            Err(Bad::Body(c)) => {
                self.close(CloseReason::Protocol, &format!("a malformed command {c}"))
            }
        }
    }

    async fn command(&mut self, h: &Header, command: Command<'_>, wire: &mut Wire) {
        match command {
            Command::Ping => self.reply(Out::new(cmd::PONG, Bytes::new())),
            Command::Ignored => {}
            Command::Auth {
                platform,
                token,
                device,
            } => self.auth(h.version, platform, token, device, wire).await,
            // Unauthenticated: ignored, as the original does.
            _ if self.authed.is_none() => {}
            other => self.request(h, other, wire).await,
        }
    }

    /// AUTH_TOKEN: AUTH_STATUS 0 and registration, or AUTH_STATUS 1 (version 0, the
    /// connection stays open unauthenticated). A second AUTH_TOKEN is ignored.
    async fn auth(
        &mut self,
        version: u8,
        platform: u8,
        token: &[u8],
        device: &[u8],
        wire: &mut Wire,
    ) {
        if self.authed.is_some() {
            return;
        }
        let owner = match std::str::from_utf8(token) {
            Ok(t) if !t.is_empty() => (self.resolve)(t.to_string()).await,
            _ => None,
        };
        let Some(owner) = owner else {
            return self.reply(status(1));
        };
        let device_id = String::from_utf8_lossy(device.get(..128).unwrap_or(device)).into_owned();
        let info = ConnectionInfo::new(
            owner.user,
            owner.app,
            Platform(platform),
            device_id,
            owner.customer,
        );
        let registered = self
            .dispatcher
            .register(info.user, info.platform, self.outbox.clone(), |_| {
                Frame::Gob(status(0))
            })
            .await;
        match registered {
            Ok((registration, _)) => {
                // As the original: a fresh login resets the reported unread count.
                let store = self.dispatcher.store();
                if let Err(e) = store.set_unread(info.user, 0).await {
                    tracing::debug!(error = %e, "unread count not reset");
                }
                if let Codec::Binary {
                    version: v, app, ..
                } = &mut wire.codec
                {
                    *v = version;
                    *app = info.user.app;
                }
                self.authed = Some(Authed {
                    device: device_key(info.platform.0, &info.device_id),
                    info,
                    registration,
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "binary connection refused");
                self.reply(status(1));
                self.outbox.close(CloseReason::Policy, e.to_string());
            }
        }
    }
}

/// AUTH_STATUS.
fn status(code: i32) -> Out {
    Out::new(
        cmd::AUTH_STATUS,
        Bytes::copy_from_slice(&code.to_be_bytes()),
    )
}
