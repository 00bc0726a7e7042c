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

/// What the loop does after a pass.
enum Step {
    /// Write again before waiting (more than a chunk was queued).
    Again,
    /// Wait for the socket, the outbox or a timer.
    Wait,
    /// The connection is over.
    End,
}

/// One connection's socket and the loop's state.
struct Socket {
    io: TcpStream,
    /// Read, not yet decoded.
    rbuf: BytesMut,
    /// Encoded, not yet taken by the socket.
    wbuf: Unwritten,
    reader: Reader,
    wire: Wire,
    outbox: Arc<Outbox>,
    idle_timeout: Duration,
    ping_every: Duration,
    last_seen: Instant,
    last_ping: Instant,
    /// Set while `wbuf` holds bytes: when the socket last took some.
    write_stalled_since: Option<Instant>,
    /// Set once closing is seen: when the close frame is given up on.
    close_deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// The client closed its side.
    peer_gone: bool,
    /// The close frame did not get out in time.
    gave_up: bool,
}

/// Runs one connection until it ends. `rbuf`: what was read past the handshake.
pub(super) async fn run(mut peer: Peer, io: TcpStream, rbuf: BytesMut, wire: Wire) {
    let gauge = match wire.transport {
        Transport::WebSocket => "imd_ws_connections",
        Transport::Tcp => "imd_tcp_connections",
    };
    metrics::gauge!(gauge).increment(1.0);
    // Frames are coalesced here already; Nagle would only add delay.
    let _ = io.set_nodelay(true);
    let limits = match &peer {
        Peer::Json(c) => c.dispatcher.limits().clone(),
        Peer::Binary(c) => c.dispatcher.limits().clone(),
    };
    let ping_every = Duration::from_secs(limits.ws_ping_interval_secs);
    let mut s = Socket {
        io,
        rbuf,
        wbuf: Unwritten::default(),
        reader: match wire.transport {
            Transport::WebSocket => Reader::websocket(limits.ws_max_frame),
            Transport::Tcp => Reader::Tcp,
        },
        wire,
        outbox: peer.outbox().clone(),
        idle_timeout: peer.idle_timeout(),
        ping_every,
        last_seen: Instant::now(),
        last_ping: Instant::now(),
        write_stalled_since: None,
        close_deadline: None,
        peer_gone: false,
        gave_up: false,
    };
    let mut tick = tokio::time::interval(ping_every.min(Duration::from_secs(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closing = s.read_pass(&mut peer).await;
        match s.write_pass() {
            Step::Again => continue,
            Step::End => break,
            Step::Wait => {}
        }
        if s.wait(&mut tick, closing).await {
            break;
        }
    }
    if !s.peer_gone && !s.gave_up {
        linger(&mut s.io).await;
    }
    Box::pin(peer.release()).await;
    metrics::gauge!(gauge).decrement(1.0);
}

impl Socket {
    /// Everything complete in the read buffer first; nothing more once closing. Whether the
    /// connection is closing.
    async fn read_pass(&mut self, peer: &mut Peer) -> bool {
        let closing = loop {
            if self.outbox.is_closing() {
                break true;
            }
            match self.reader.next(&mut self.rbuf) {
                Ok(Some(msg)) => peer.on_inbound(msg, &mut self.wire).await,
                Ok(None) => break false,
                Err(ReadError::TooBig) => self.outbox.close(CloseReason::TooBig, "frame too large"),
                Err(ReadError::Protocol) => {
                    self.outbox.close(CloseReason::Protocol, "protocol error")
                }
            }
        };
        if closing {
            // What a closing connection reads is never decoded: discard it, so a client
            // that keeps sending cannot grow the buffer.
            self.rbuf.clear();
            if self.close_deadline.is_none() {
                self.close_deadline = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
            }
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
        closing
    }

    /// Then everything queued (`write`), and what to do next.
    fn write_pass(&mut self) -> Step {
        let drained = match write(&self.outbox, &self.io, &mut self.wbuf, &mut self.wire) {
            Ok((d, progressed)) => {
                if progressed {
                    self.write_stalled_since = None; // restarted below if bytes remain
                }
                d
            }
            Err(()) => return Step::End,
        };
        if !self.wbuf.is_empty() {
            self.write_stalled_since.get_or_insert_with(Instant::now);
            return Step::Wait;
        }
        self.write_stalled_since = None;
        match drained {
            Drained::Finished => Step::End,
            _ if self.peer_gone => Step::End,
            // More than a chunk was queued: write the rest before waiting on anything.
            Drained::More => Step::Again,
            Drained::Idle | Drained::Large(_) => {
                self.wbuf = Unwritten::default();
                Step::Wait
            }
        }
    }

    /// Waits for the first of: the close deadline, a tick, readable bytes, room to write, new
    /// frames. True when the connection is over.
    async fn wait(&mut self, tick: &mut tokio::time::Interval, closing: bool) -> bool {
        let Socket {
            io,
            rbuf,
            wbuf,
            outbox,
            close_deadline,
            peer_gone,
            ..
        } = self;
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
                self.gave_up = true;
                true
            }
            _ = tick.tick() => {
                self.on_tick();
                false
            }
            ready = std::future::poll_fn(|cx| io.poll_read_ready(cx)), if !*peer_gone => {
                if ready.is_err() {
                    return true;
                }
                rbuf.reserve(READ_CHUNK);
                match io.try_read_buf(rbuf) {
                    Ok(0) => {
                        *peer_gone = true;
                        outbox.close(CloseReason::Normal, "");
                        false
                    }
                    Ok(_) if closing => false, // discarded on the next pass
                    Ok(_) => {
                        self.last_seen = Instant::now();
                        false
                    }
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                }
            }
            ready = std::future::poll_fn(|cx| io.poll_write_ready(cx)), if !wbuf.is_empty() => {
                ready.is_err()
            }
            _ = outbox.notified() => false,
        }
    }

    /// The idle limit, the write stall limit, the keep-alive ping, held frames given up on.
    fn on_tick(&mut self) {
        let outbox = &self.outbox;
        if self.last_seen.elapsed() >= self.idle_timeout {
            outbox.close(CloseReason::Normal, "idle timeout");
        } else if self
            .write_stalled_since
            .is_some_and(|t| t.elapsed() >= self.idle_timeout)
        {
            // The client sends but has not read anything for as long: it would hold its slot
            // until its queue overflowed, possibly never.
            outbox.close(CloseReason::Normal, "write timeout");
        } else if self.last_ping.elapsed() >= self.ping_every
            && self.wire.transport == Transport::WebSocket
        {
            // TCP clients have no ping: the binary protocol's own PING keeps them alive.
            outbox.push(Frame::Ping);
            self.last_ping = Instant::now();
        }
        outbox.release_stale(MAX_HOLD);
    }
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
