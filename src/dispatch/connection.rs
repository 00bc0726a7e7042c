//! One WebSocket connection (SPEC §5): the socket loop. It owns the TCP stream after the
//! upgrade, decodes client frames (`inbound.rs`), answers them (`requests.rs`), writes
//! whatever the connection's `Outbox` holds — every queued frame in one write — pings, and
//! ends the connection.
//!
//! An idle connection holds no buffers: the read buffer is dropped once everything read was
//! decoded, the write buffer once everything was written. That keeps thousands of idle
//! sockets cheap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::ws::{Codec, ProtocolError};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::outbox::{CloseReason, Drained, Frame, Outbox};
use super::unwritten::Unwritten;
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

/// How long a stored frame waits for an earlier seq before the gap is given up on.
const MAX_HOLD: Duration = Duration::from_secs(2);

/// How long a closing connection has to get its close frame out. A client that stopped
/// reading never takes it; past this the socket is dropped without it.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Bytes read per readiness event at most.
const READ_CHUNK: usize = 8 * 1024;

/// Scratch capacity a thread keeps between writes (one burst's chunk can grow it further).
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    /// Frames are encoded here and written from here; shared by the thread's connections.
    static SCRATCH: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::with_capacity(SCRATCH_KEEP));
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
            .register(info.user, info.platform, outbox.clone())
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
    /// Runs the connection on the current worker: `io` is the upgraded socket, `read` what was
    /// already read past the handshake.
    pub fn run(self, io: TcpStream, read: BytesMut) {
        actix_web::rt::spawn(self.conn.run(io, read));
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

impl Connection {
    async fn run(mut self, mut io: TcpStream, mut rbuf: BytesMut) {
        metrics::gauge!("imd_ws_connections").increment(1.0);
        // Frames are coalesced here already; Nagle would only add delay.
        let _ = io.set_nodelay(true);
        let limits = self.dispatcher.limits().clone();
        let mut codec = Codec::new().max_size(limits.ws_max_frame);
        let idle_timeout = Duration::from_secs(limits.ws_idle_timeout_secs);
        let ping_every = Duration::from_secs(limits.ws_ping_interval_secs);
        let mut tick = tokio::time::interval(ping_every.min(Duration::from_secs(5)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut last_seen, mut last_ping) = (Instant::now(), Instant::now());
        let mut wbuf = Unwritten::default();
        // Set while `wbuf` holds bytes: when the socket last took some.
        let mut write_stalled_since: Option<Instant> = None;
        // Set once closing is seen: when the close frame is given up on.
        let mut close_deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let mut peer_gone = false;
        let mut gave_up = false;
        loop {
            // Everything complete in the read buffer first; nothing more once closing.
            let closing = loop {
                if self.outbox.is_closing() {
                    break true;
                }
                match self.decode(&mut codec, &mut rbuf) {
                    Ok(Some(f)) => Box::pin(self.on_frame(f)).await,
                    Ok(None) => break false,
                    Err(ProtocolError::Overflow) => {
                        self.outbox.close(CloseReason::TooBig, "frame too large")
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "ws protocol error");
                        self.outbox.close(CloseReason::Protocol, "protocol error");
                    }
                }
            };
            if closing {
                // What a closing connection reads is never decoded: discard it, so a client
                // that keeps sending cannot grow the buffer.
                rbuf.clear();
                if close_deadline.is_none() {
                    close_deadline = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                }
            }
            if rbuf.is_empty() && rbuf.capacity() > 0 {
                rbuf = BytesMut::new();
            }
            // Then everything queued, in as few writes as the socket takes. Frames are encoded
            // into this thread's scratch buffer; only what the socket does not take at once is
            // kept (in `wbuf`), so a delivery costs no allocation. A large frame is written
            // from its shared bytes instead.
            let mut drained = Drained::More;
            if wbuf.is_empty() {
                let outcome = SCRATCH.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    scratch.clear();
                    drained = self.outbox.drain_into(&mut scratch);
                    if matches!(drained, Drained::Large(_))
                        && let Drained::Large(parts) =
                            std::mem::replace(&mut drained, Drained::More)
                    {
                        return wbuf.write_shared(&io, parts).map(drop);
                    }
                    if scratch.is_empty() {
                        return Ok(());
                    }
                    let n = match io.try_write(&scratch) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                        Err(e) => return Err(e),
                    };
                    wbuf.keep_copy(&scratch[n..]);
                    if scratch.capacity() > SCRATCH_KEEP {
                        *scratch = BytesMut::with_capacity(SCRATCH_KEEP);
                    }
                    Ok(())
                });
                if outcome.is_err() {
                    break;
                }
            } else {
                match wbuf.write(&io) {
                    Ok(true) => write_stalled_since = None, // restarted below if bytes remain
                    Ok(false) => {}
                    Err(_) => break,
                }
                if wbuf.is_empty() {
                    drained = Drained::More; // drain what queued up meanwhile
                }
            }
            if wbuf.is_empty() {
                write_stalled_since = None;
            } else if write_stalled_since.is_none() {
                write_stalled_since = Some(Instant::now());
            }
            if wbuf.is_empty() {
                match drained {
                    Drained::Finished => break,
                    _ if peer_gone => break,
                    // More than a chunk was queued: write the rest before waiting on anything.
                    Drained::More => continue,
                    Drained::Idle | Drained::Large(_) => wbuf = Unwritten::default(),
                }
            }
            // poll_read_ready / poll_write_ready, not readable() / writable(): they wait in the
            // socket's single reader/writer slot, replacing the waker actix-http's connection
            // task left there before the upgrade. Otherwise that finished task (3.7 KB) stays
            // allocated for as long as the WebSocket is idle.
            tokio::select! {
                biased;
                // Fixed order, cheapest check first; the queue is drained on every pass
                // whichever branch woke us, so none of them can starve it.
                () = async {
                    if let Some(deadline) = close_deadline.as_mut() {
                        deadline.await
                    }
                }, if close_deadline.is_some() => {
                    // The close frame did not get out in time (the client stopped reading).
                    gave_up = true;
                    break;
                }
                _ = tick.tick() => {
                    if last_seen.elapsed() >= idle_timeout {
                        self.outbox.close(CloseReason::Normal, "idle timeout");
                    } else if write_stalled_since.is_some_and(|t| t.elapsed() >= idle_timeout) {
                        // The client sends but has not read anything for as long: it would hold
                        // its slot until its queue overflowed, possibly never.
                        self.outbox.close(CloseReason::Normal, "write timeout");
                    } else if last_ping.elapsed() >= ping_every {
                        self.outbox.push(Frame::Ping);
                        last_ping = Instant::now();
                    }
                    self.outbox.release_stale(MAX_HOLD);
                }
                ready = std::future::poll_fn(|cx| io.poll_read_ready(cx)), if !peer_gone => {
                    if ready.is_err() {
                        break;
                    }
                    rbuf.reserve(READ_CHUNK);
                    match io.try_read_buf(&mut rbuf) {
                        Ok(0) => {
                            peer_gone = true;
                            self.outbox.close(CloseReason::Normal, "");
                        }
                        Ok(_) if closing => {} // discarded on the next pass
                        Ok(_) => last_seen = Instant::now(),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                }
                ready = std::future::poll_fn(|cx| io.poll_write_ready(cx)), if !wbuf.is_empty() => {
                    if ready.is_err() {
                        break;
                    }
                }
                _ = self.outbox.notified() => {}
            }
        }
        // Half-close and give the peer a moment to answer our close frame, so it reads the
        // frame instead of a reset. Not if the frame never went out: nothing to wait for.
        if !peer_gone && !gave_up {
            // Boxed, like the release below: the socket task's future is as large as its
            // largest state, and this one would otherwise be carried by every idle connection.
            let _ = Box::pin(tokio::time::timeout(Duration::from_secs(1), async {
                let _ = io.shutdown().await;
                let mut sink = [0u8; 512];
                while let Ok(Ok(n)) = tokio::time::timeout(
                    Duration::from_secs(1),
                    tokio::io::AsyncReadExt::read(&mut io, &mut sink),
                )
                .await
                {
                    if n == 0 {
                        break;
                    }
                }
            }))
            .await;
        }
        Box::pin(self.registration.release()).await;
        metrics::gauge!("imd_ws_connections").decrement(1.0);
    }
}
