//! The socket loop every connection runs, whatever its transport and codec: read what the
//! socket has, hand each complete message (`transport.rs`) to the connection's protocol
//! (`Peer`: the JSON protocol, or the GoBelieve binary one), write whatever its `Outbox` holds
//! through its `Wire` — every queued frame in one write — ping, time out, and end.
//!
//! An idle connection holds no buffers: the read buffer is dropped once everything read was
//! decoded, the write buffer once everything was written. That keeps thousands of idle
//! sockets cheap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::connection::Connection;
use super::gob::conn::BinaryConnection;
use super::outbox::{CloseReason, Drained, Frame, Outbox};
use super::transport::{Inbound, ReadError, Reader};
use super::unwritten::Unwritten;
use super::wire::{Transport, Wire};

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

/// The protocol a connection speaks: what its client messages mean.
pub(super) enum Peer {
    Json(Connection),
    Binary(BinaryConnection),
}

impl Peer {
    fn outbox(&self) -> &Arc<Outbox> {
        match self {
            Peer::Json(c) => &c.outbox,
            Peer::Binary(c) => &c.outbox,
        }
    }

    /// Silence after which the connection is closed.
    fn idle_timeout(&self) -> Duration {
        let limits = match self {
            Peer::Json(c) => c.dispatcher.limits(),
            Peer::Binary(c) => c.dispatcher.limits(),
        };
        Duration::from_secs(match self {
            Peer::Json(_) => limits.ws_idle_timeout_secs,
            Peer::Binary(_) => limits.binary_idle_timeout_secs,
        })
    }

    async fn on_inbound(&mut self, msg: Inbound, wire: &mut Wire) {
        match (self, msg) {
            (Peer::Json(c), Inbound::Ws(f)) => Box::pin(c.on_frame(f)).await,
            (Peer::Json(c), Inbound::Binary(_)) => c
                .outbox
                .close(CloseReason::Protocol, "unexpected binary frame"),
            (Peer::Binary(c), msg) => Box::pin(c.on_inbound(msg, wire)).await,
        }
    }

    async fn release(&mut self) {
        match self {
            Peer::Json(c) => c.registration.release().await,
            Peer::Binary(c) => c.release().await,
        }
    }
}

/// Runs one connection until it ends. `rbuf`: what was read past the handshake.
pub(super) async fn run(mut peer: Peer, mut io: TcpStream, mut rbuf: BytesMut, mut wire: Wire) {
    let gauge = match wire.transport {
        Transport::WebSocket => "imd_ws_connections",
        Transport::Tcp => "imd_tcp_connections",
    };
    metrics::gauge!(gauge).increment(1.0);
    // Frames are coalesced here already; Nagle would only add delay.
    let _ = io.set_nodelay(true);
    let outbox = peer.outbox().clone();
    let limits = match &peer {
        Peer::Json(c) => c.dispatcher.limits().clone(),
        Peer::Binary(c) => c.dispatcher.limits().clone(),
    };
    let mut reader = match wire.transport {
        Transport::WebSocket => Reader::websocket(limits.ws_max_frame),
        Transport::Tcp => Reader::Tcp,
    };
    let idle_timeout = peer.idle_timeout();
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
            if outbox.is_closing() {
                break true;
            }
            match reader.next(&mut rbuf) {
                Ok(Some(msg)) => peer.on_inbound(msg, &mut wire).await,
                Ok(None) => break false,
                Err(ReadError::TooBig) => outbox.close(CloseReason::TooBig, "frame too large"),
                Err(ReadError::Protocol) => outbox.close(CloseReason::Protocol, "protocol error"),
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
        let drained = match write(&outbox, &io, &mut wbuf, &mut wire) {
            Ok((d, progressed)) => {
                if progressed {
                    write_stalled_since = None; // restarted below if bytes remain
                }
                d
            }
            Err(()) => break,
        };
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
                    outbox.close(CloseReason::Normal, "idle timeout");
                } else if write_stalled_since.is_some_and(|t| t.elapsed() >= idle_timeout) {
                    // The client sends but has not read anything for as long: it would hold
                    // its slot until its queue overflowed, possibly never.
                    outbox.close(CloseReason::Normal, "write timeout");
                } else if last_ping.elapsed() >= ping_every && wire.transport == Transport::WebSocket {
                    outbox.push(Frame::Ping);
                    last_ping = Instant::now();
                }
                outbox.release_stale(MAX_HOLD);
            }
            ready = std::future::poll_fn(|cx| io.poll_read_ready(cx)), if !peer_gone => {
                if ready.is_err() {
                    break;
                }
                rbuf.reserve(READ_CHUNK);
                match io.try_read_buf(&mut rbuf) {
                    Ok(0) => {
                        peer_gone = true;
                        outbox.close(CloseReason::Normal, "");
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
            _ = outbox.notified() => {}
        }
    }
    if !peer_gone && !gave_up {
        linger(&mut io).await;
    }
    Box::pin(peer.release()).await;
    metrics::gauge!(gauge).decrement(1.0);
}

/// Everything queued, in as few writes as the socket takes. Frames are encoded into this
/// thread's scratch buffer; only what the socket does not take at once is kept (in `wbuf`), so
/// a delivery costs no allocation. A large frame is written from its shared bytes instead.
/// With whether the socket took some of what was left from before; `Err` when it failed.
fn write(
    outbox: &Outbox,
    io: &TcpStream,
    wbuf: &mut Unwritten,
    wire: &mut Wire,
) -> Result<(Drained, bool), ()> {
    if !wbuf.is_empty() {
        // `More`: once the rest is out, drain what queued up meanwhile.
        return wbuf.write(io).map(|p| (Drained::More, p)).map_err(drop);
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        let drained = outbox.drain_into(&mut scratch, wire);
        if let Drained::Large(parts) = drained {
            wbuf.write_shared(io, parts).map_err(drop)?;
            return Ok((Drained::More, false));
        }
        if scratch.is_empty() {
            return Ok((drained, false));
        }
        let n = match io.try_write(&scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => return Err(()),
        };
        wbuf.keep_copy(&scratch[n..]);
        if scratch.capacity() > SCRATCH_KEEP {
            *scratch = BytesMut::with_capacity(SCRATCH_KEEP);
        }
        Ok((drained, false))
    })
}

/// Half-closes and gives the peer a moment to answer our close, so it reads the last frames
/// instead of a reset. Boxed: the socket task's future is as large as its largest state, and
/// this one would otherwise be carried by every idle connection.
async fn linger(io: &mut TcpStream) {
    let _ = Box::pin(tokio::time::timeout(Duration::from_secs(1), async {
        let _ = io.shutdown().await;
        let mut sink = [0u8; 512];
        while let Ok(Ok(n)) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::io::AsyncReadExt::read(&mut *io, &mut sink),
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
