//! The outbound side of one WebSocket: a bounded queue that the dispatcher fills from any
//! thread and the connection's socket loop drains.
//!
//! - **Bounded:** past `capacity` frames the connection is closed (1013, "resync") instead of
//!   growing or silently dropping; the client reconnects and syncs (SPEC §5.5).
//! - **Coalesced:** one wake-up drains every queued frame into one buffer, so a burst is one
//!   socket write, not one per frame.
//! - **In seq order:** stored messages carry their inbox seq. Deliveries for one user can race
//!   (a group fan-out and a peer send finish in either order), so the outbox releases them in
//!   seq order, holding a frame briefly while an earlier seq is still on its way. A client can
//!   therefore treat the highest seq it has seen as its sync cursor. Frames at or below the
//!   `hello` seq are dropped: the client gets those by `sync`.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;

use super::frame::Spliced;
use super::wire::Wire;

/// One queued frame.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A complete JSON text frame.
    Text(Bytes),
    /// A message frame shared by many recipients; `u64` is this recipient's seq.
    Spliced(Arc<Spliced>, u64),
    /// WebSocket-level ping (keep-alive).
    Ping,
    /// WebSocket-level pong answering a client ping.
    Pong(Bytes),
    /// A binary-protocol frame; the connection numbers and versions it when writing.
    Gob(super::gob::Out),
    /// A message that is not stored (notification, room, RT), in both protocols: its JSON
    /// frame and its binary frame (their bodies are the same in every version).
    Dual {
        json: Bytes,
        binary: super::gob::Out,
    },
}

/// Why the server closes a connection (RFC 6455 close codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// 1000: idle timeout, or the client closed first.
    Normal,
    /// 1001: the server is shutting down; reconnect elsewhere.
    GoingAway,
    /// 1002: a frame that breaks RFC 6455.
    Protocol,
    /// 1008: too many bad frames, or the token was revoked.
    Policy,
    /// 1009: a frame over the size limit.
    TooBig,
    /// 1013: the outbound queue overflowed; reconnect and sync.
    Overflow,
}

impl CloseReason {
    pub(super) fn code(self) -> u16 {
        match self {
            CloseReason::Normal => 1000,
            CloseReason::GoingAway => 1001,
            CloseReason::Protocol => 1002,
            CloseReason::Policy => 1008,
            CloseReason::TooBig => 1009,
            CloseReason::Overflow => 1013,
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Frame>,
    /// Next inbox seq to release; `None` until the connection's `hello` seq is known.
    next_seq: Option<u64>,
    /// Stored-message frames that arrived ahead of an earlier seq, with when each arrived.
    held: BTreeMap<u64, (Frame, Instant)>,
    /// When the oldest frame still held arrived: how long the gap in front of the held frames
    /// has been known. Recomputed whenever frames leave `held`, so a gap that opened later
    /// is not given up on early for a frame that waited on an earlier one.
    held_since: Option<Instant>,
    /// Set once: the close frame to send after the queue drains.
    close: Option<(CloseReason, String)>,
    /// The close frame went out (or the peer is gone): the stream is over.
    finished: bool,
}

pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the socket loop: frames queued, or closing. A flag plus one waker slot, lock-free
    /// on both sides (the socket loop is the only waiter).
    pending: AtomicBool,
    waker: AtomicWaker,
    /// Frames queued or held before the connection is closed as too slow.
    capacity: usize,
    /// Called (on the delivering thread, without the lock) when a frame starts waiting for
    /// an earlier seq: several nodes set it to read the missing ones from the store
    /// (`cluster.rs`) instead of waiting for them.
    on_gap: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::default(),
            pending: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            capacity,
            on_gap: std::sync::OnceLock::new(),
        })
    }

    /// Sets the hook called when a gap opens (once; later calls are ignored).
    pub fn set_on_gap(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_gap.set(hook);
    }

    /// (released up to, last held) while frames wait for an earlier seq: everything between
    /// is stored (a frame is held only once stored), so one read fills every gap.
    pub fn gap(&self) -> Option<(u64, u64)> {
        let st = self.lock();
        let next = st.next_seq?;
        let (&last, _) = st.held.last_key_value()?;
        Some((next.saturating_sub(1), last))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a control or reply frame. False if the connection is closing.
    pub fn push(&self, frame: Frame) -> bool {
        let ok = self.put(frame);
        self.wake();
        ok
    }

    /// Queues a stored message with inbox seq `seq`, keeping seq order (see module docs).
    pub fn push_seq(&self, seq: u64, frame: Frame) -> bool {
        let ok = self.put_seq(seq, frame);
        self.wake();
        ok
    }

    /// `push` without waking the socket loop (a hub wakes it later, `hub.rs`): true when the
    /// caller must `wake_marked` it, false when it is already signalled.
    pub fn push_deferred(&self, frame: Frame) -> bool {
        self.put(frame);
        self.mark()
    }

    /// `push_deferred` of several frames, in order, under one lock.
    pub fn push_all_deferred<'a>(&self, frames: impl Iterator<Item = &'a Frame>) -> bool {
        let mut st = self.lock();
        for frame in frames {
            if !self.enqueue(&mut st, frame.clone()) {
                break;
            }
        }
        drop(st);
        self.mark()
    }

    /// `push_seq` without waking the socket loop; as `push_deferred`.
    pub fn push_seq_deferred(&self, seq: u64, frame: Frame) -> bool {
        self.put_seq(seq, frame);
        self.mark()
    }

    fn put(&self, frame: Frame) -> bool {
        let mut st = self.lock();
        self.enqueue(&mut st, frame)
    }

    fn put_seq(&self, seq: u64, frame: Frame) -> bool {
        let mut gap_opened = None;
        let mut st = self.lock();
        if st.close.is_some() {
            return false;
        }
        let ok = match st.next_seq {
            Some(next) if seq < next => true, // already covered by hello/sync or a duplicate
            Some(next) if seq == next => {
                st.next_seq = Some(seq + 1);
                let ok = self.enqueue(&mut st, frame);
                self.release_ready(&mut st);
                ok
            }
            _ => {
                let now = Instant::now();
                if st.held.is_empty()
                    && st.next_seq.is_some()
                    && let Some(hook) = self.on_gap.get()
                {
                    gap_opened = Some(hook);
                }
                st.held.insert(seq, (frame, now));
                st.held_since.get_or_insert(now);
                if st.queue.len() + st.held.len() > self.capacity {
                    self.overflow(&mut st);
                    false
                } else {
                    true
                }
            }
        };
        drop(st);
        if let Some(hook) = gap_opened {
            hook();
        }
        ok
    }

    /// The connection's `hello` seq is known: `hello` goes to the front of the queue, ahead of
    /// anything queued since the connection was registered; then frames at or below the seq
    /// are dropped (the client syncs them) and the ones after it are released in order. One
    /// lock for all of it, so the client's first frame is always its `hello` (SPEC §5.2).
    pub fn start_live(&self, hello_seq: u64, hello: Frame) {
        let mut st = self.lock();
        st.queue.push_front(hello);
        st.next_seq = Some(hello_seq + 1);
        st.held = st.held.split_off(&(hello_seq + 1));
        st.held_since = oldest(&st.held);
        self.release_ready(&mut st);
        let gap = !st.held.is_empty();
        drop(st);
        self.wake();
        if gap && let Some(hook) = self.on_gap.get() {
            hook();
        }
    }

    /// Releases held frames that waited longer than `max_wait` for an earlier seq that never
    /// came (e.g. a store write that timed out after assigning its seq). The client sees a seq
    /// gap and syncs it.
    pub fn release_stale(&self, max_wait: Duration) {
        let mut st = self.lock();
        if st.held_since.is_some_and(|t| t.elapsed() >= max_wait) && st.next_seq.is_some() {
            if let Some((&first, _)) = st.held.first_key_value() {
                st.next_seq = Some(first);
            }
            self.release_ready(&mut st);
            drop(st);
            self.wake();
        }
    }

    /// Starts closing: queued frames are still written, then the close frame. Idempotent.
    pub fn close(&self, reason: CloseReason, text: impl Into<String>) {
        let mut st = self.lock();
        if st.close.is_none() {
            st.close = Some((reason, text.into()));
            st.held.clear();
            st.held_since = None;
        }
        drop(st);
        self.wake();
    }

    pub fn is_closing(&self) -> bool {
        self.lock().close.is_some()
    }

    fn wake(&self) {
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Signals frames without waking: true if the socket loop was not signalled yet (then
    /// someone must `wake_marked` it; until then, any pass it makes drains them anyway).
    fn mark(&self) -> bool {
        !self.pending.swap(true, Ordering::AcqRel)
    }

    /// Wakes the socket loop after `push_deferred` / `push_seq_deferred` returned true.
    pub fn wake_marked(&self) {
        self.waker.wake();
    }

    /// Resolves when there is something to write (or a close to send) since the last drain.
    /// A wake that came while nobody waited is kept, so none is lost between drain and wait.
    pub fn notified(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.pending.swap(false, Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.pending.swap(false, Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// `live_seq`, or `None` before the `hello` seq is known (the connection is registering).
    pub fn live(&self) -> Option<u64> {
        self.lock().next_seq.map(|n| n.saturating_sub(1))
    }

    /// The highest seq released to the live stream so far (the `hello` seq at first).
    pub fn live_seq(&self) -> u64 {
        self.lock().next_seq.map_or(0, |n| n.saturating_sub(1))
    }

    /// Empties the queue without a socket (benchmarks drive outboxes that have none);
    /// returns how many frames were queued.
    pub fn drain(&self) -> usize {
        let mut st = self.lock();
        let n = st.queue.len();
        st.queue.clear();
        n
    }

    /// Frames waiting to be written (queued and held).
    pub fn backlog(&self) -> usize {
        let st = self.lock();
        st.queue.len() + st.held.len()
    }

    fn enqueue(&self, st: &mut State, frame: Frame) -> bool {
        if st.close.is_some() {
            return false;
        }
        if st.queue.len() + st.held.len() >= self.capacity {
            self.overflow(st);
            return false;
        }
        st.queue.push_back(frame);
        true
    }

    fn release_ready(&self, st: &mut State) {
        let mut released = false;
        while let Some(next) = st.next_seq {
            let Some((frame, _)) = st.held.remove(&next) else {
                break;
            };
            st.next_seq = Some(next + 1);
            st.queue.push_back(frame);
            released = true;
        }
        if released {
            // The frames left wait on a later gap: it is as old as the oldest of them.
            st.held_since = oldest(&st.held);
        }
    }

    fn overflow(&self, st: &mut State) {
        metrics::counter!("imd_ws_queue_overflows_total").increment(1);
        st.queue.clear();
        st.held.clear();
        st.held_since = None;
        st.close = Some((
            CloseReason::Overflow,
            "outbound queue overflow; reconnect and sync".into(),
        ));
    }
}

/// When the longest-waiting held frame arrived.
fn oldest(held: &BTreeMap<u64, (Frame, Instant)>) -> Option<Instant> {
    held.values().map(|(_, at)| *at).min()
}

/// Most bytes one drain encodes before the socket loop writes them.
const MAX_CHUNK: usize = 256 * 1024;

/// What a drain left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drained {
    /// The queue is empty (for now).
    Idle,
    /// More frames are queued than fit in one chunk (or a large frame waits its turn).
    More,
    /// A large frame, as the parts to write (its header, then its shared bytes): the buffer
    /// was empty, nothing was encoded into it.
    Large(Vec<Bytes>),
    /// The close frame was encoded: write it and end the connection.
    Finished,
}

impl Outbox {
    /// Encodes every queued frame (up to a chunk) into `buf` — a burst becomes one write — and,
    /// once the queue is empty and a close is pending, the close frame. A large frame is
    /// handed over by reference instead, on its own (`Drained::Large`).
    pub fn drain_into(&self, buf: &mut BytesMut, wire: &mut Wire) -> Drained {
        let mut st = self.lock();
        if st.finished {
            return Drained::Finished;
        }
        while let Some(frame) = st.queue.front() {
            if let Some(parts) = wire.large_parts(frame) {
                if !buf.is_empty() {
                    return Drained::More; // what is encoded goes first
                }
                st.queue.pop_front();
                return Drained::Large(parts);
            }
            if let Some(frame) = st.queue.pop_front() {
                wire.encode(&frame, buf);
            }
            if buf.len() >= MAX_CHUNK {
                return Drained::More;
            }
        }
        if st.queue.capacity() > 64 {
            st.queue = VecDeque::new(); // an idle connection keeps no big buffer
        }
        match &st.close {
            Some((reason, text)) => {
                wire.close(*reason, text, buf);
                st.finished = true;
                Drained::Finished
            }
            None => Drained::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::wire::LARGE;

    fn text(s: &'static str) -> Frame {
        Frame::Text(Bytes::from_static(s.as_bytes()))
    }

    fn queued(o: &Outbox) -> Vec<String> {
        o.lock()
            .queue
            .iter()
            .map(|f| match f {
                Frame::Text(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn stored_frames_are_released_in_seq_order_after_hello() {
        let o = Outbox::new(16);
        assert!(o.push_seq(5, text("5")));
        assert!(o.push_seq(7, text("7")));
        assert!(o.push_seq(4, text("4")));
        assert!(o.push(text("note")));
        o.start_live(4, text("hello")); // seq 4 and below come by sync
        assert_eq!(queued(&o), vec!["hello", "note", "5"]);
        assert!(o.push_seq(6, text("6")));
        assert_eq!(queued(&o), vec!["hello", "note", "5", "6", "7"]);
        assert!(o.push_seq(6, text("dup")));
        assert_eq!(queued(&o).len(), 5);
    }

    #[test]
    fn a_gap_that_never_fills_is_released_after_the_wait() {
        let o = Outbox::new(16);
        o.start_live(0, text("hello"));
        o.drain();
        o.push_seq(3, text("3"));
        assert!(queued(&o).is_empty());
        o.release_stale(Duration::ZERO);
        assert_eq!(queued(&o), vec!["3"]);
        o.push_seq(4, text("4"));
        assert_eq!(queued(&o), vec!["3", "4"]);
    }

    #[test]
    fn a_new_gap_gets_the_full_wait_even_while_older_frames_were_held() {
        let o = Outbox::new(16);
        o.start_live(2, text("hello"));
        o.drain();
        o.push_seq(4, text("4")); // waits for 3
        std::thread::sleep(Duration::from_millis(300));
        o.push_seq(6, text("6")); // waits for 5: a fresh gap
        o.push_seq(3, text("3")); // 3 and 4 go; 6 still waits for 5
        assert_eq!(queued(&o), vec!["3", "4"]);
        o.release_stale(Duration::from_millis(200));
        assert_eq!(
            queued(&o),
            vec!["3", "4"],
            "5 has been missing only briefly"
        );
        o.push_seq(5, text("5"));
        assert_eq!(queued(&o), vec!["3", "4", "5", "6"]);
    }

    #[test]
    fn a_large_frame_is_handed_over_by_reference_after_what_came_before() {
        let o = Outbox::new(16);
        let big = Bytes::from(vec![b'x'; LARGE + 1]);
        o.push(text("small"));
        o.push(Frame::Text(big.clone()));
        o.push(text("after"));
        let (mut buf, mut wire) = (BytesMut::new(), Wire::JSON_WS);
        assert_eq!(
            o.drain_into(&mut buf, &mut wire),
            Drained::More,
            "the small one first"
        );
        assert_eq!(&buf[2..], b"small");
        buf.clear();
        let Drained::Large(parts) = o.drain_into(&mut buf, &mut wire) else {
            panic!("expected the large frame");
        };
        assert!(buf.is_empty());
        assert_eq!(&parts[0][..2], &[0x81, 126], "a 16-bit length header");
        assert_eq!(
            parts[1].as_ptr(),
            big.as_ptr(),
            "the shared bytes, not a copy"
        );
        assert_eq!(o.drain_into(&mut buf, &mut wire), Drained::Idle);
        assert_eq!(&buf[2..], b"after");
    }

    #[test]
    fn overflow_closes_instead_of_growing() {
        let o = Outbox::new(2);
        assert!(o.push(text("a")));
        assert!(o.push(text("b")));
        assert!(!o.push(text("c")));
        assert!(o.is_closing());
        assert_eq!(o.backlog(), 0);
    }

    #[test]
    fn several_frames_queue_in_order_under_one_signal_and_overflow_as_one_by_one() {
        let o = Outbox::new(3);
        let frames = [text("a"), text("b")];
        assert!(o.push_all_deferred(frames.iter()), "first signal: wake it");
        assert!(
            !o.push_all_deferred(frames[..1].iter()),
            "already signalled"
        );
        assert_eq!(queued(&o), vec!["a", "b", "a"]);
        o.push_all_deferred(frames.iter());
        assert!(o.is_closing(), "a fourth frame overflows a queue of three");
        assert_eq!(o.backlog(), 0);
    }
}
